"""The asyncio client."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TypeVar

import grpc

from mdcache.v1 import cache_pb2_grpc as pb_grpc
from mdcache_client import _calls
from mdcache_client._errors import from_rpc_error
from mdcache_client._types import ReadResult, Record, Series, Stats

R = TypeVar("R")
DEFAULT_TIMEOUT = 5.0


class AsyncClient:
    """An asyncio client of one mdcache server.

    >>> async with AsyncClient("localhost:50051") as cache:        # doctest: +SKIP
    ...     await cache.write(Series("600519", "kline", "1d"), [Record.of(ts, bar)])
    ...     result = await cache.read(Series("600519", "kline", "1d"), last_days=30)

    Every call has a deadline (``timeout`` seconds unless given per call) and raises
    a :class:`~mdcache_client.MdcacheError` subclass when it fails.
    """

    def __init__(
        self,
        target: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self.timeout = timeout
        self._channel = channel or grpc.aio.insecure_channel(target)
        self._stub = pb_grpc.MarketDataCacheStub(self._channel)

    async def _run(self, call: _calls.Call[R], timeout: float | None) -> R:
        method = getattr(self._stub, call.method)
        try:
            response = await method(call.request, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return call.result(response)

    async def write(
        self, series: Series, records: Iterable[Record], *, timeout: float | None = None
    ) -> int:
        """Upserts records into a series; returns how many were written."""
        return await self._run(_calls.write({series: records}), timeout)

    async def write_many(
        self, batches: Mapping[Series, Iterable[Record]], *, timeout: float | None = None
    ) -> int:
        """Upserts records into several series in one call."""
        return await self._run(_calls.write(batches), timeout)

    async def read(
        self,
        series: Series,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        last_days: int = 0,
        limit: int = 0,
        newest_first: bool = False,
        timeout: float | None = None,
    ) -> ReadResult:
        """Reads a window of one series (inclusive at both ends)."""
        results = await self.read_many(
            [series],
            start_ms=start_ms,
            end_ms=end_ms,
            last_days=last_days,
            limit=limit,
            newest_first=newest_first,
            timeout=timeout,
        )
        return results[0]

    async def read_many(
        self,
        series: Iterable[Series],
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        last_days: int = 0,
        limit: int = 0,
        newest_first: bool = False,
        timeout: float | None = None,
    ) -> list[ReadResult]:
        """Reads the same window of several series in one call, in the order given."""
        call = _calls.read(
            series,
            start_ms=start_ms,
            end_ms=end_ms,
            last_days=last_days,
            limit=limit,
            newest_first=newest_first,
        )
        return await self._run(call, timeout)

    async def purge(
        self,
        *,
        before_ms: int | None = None,
        older_than_days: int = 0,
        symbol: str = "",
        data_type: str = "",
        timeout: float | None = None,
    ) -> int:
        """Deletes records older than the cutoff (default 7 days); returns how many."""
        call = _calls.purge(
            before_ms=before_ms,
            older_than_days=older_than_days,
            symbol=symbol,
            data_type=data_type,
        )
        return await self._run(call, timeout)

    async def stats(
        self, *, top_n: int = 10, reset: bool = False, timeout: float | None = None
    ) -> Stats:
        """What the cache holds and how it is used; ``reset`` starts the counters anew."""
        return await self._run(_calls.stats(top_n, reset), timeout)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
