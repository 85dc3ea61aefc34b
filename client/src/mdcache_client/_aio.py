"""The asyncio client."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc

from mdcache.v1 import cache_pb2_grpc as pb_grpc
from mdcache_client import _calls, _session
from mdcache_client._cacheaside_aio import AsyncCacheAside
from mdcache_client._errors import from_rpc_error
from mdcache_client._live_aio import AsyncSubscription
from mdcache_client._transport import Transport
from mdcache_client._types import (
    AsyncLoader,
    AsyncRangesLoader,
    LoadResult,
    ReadResult,
    Record,
    Series,
    Stats,
    Window,
)

R = TypeVar("R")
DEFAULT_TIMEOUT = 5.0
DEFAULT_KEEPALIVE = 30.0
DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_EMPTY_RANGE_SECONDS = 600.0


class AsyncClient:
    """An asyncio client of mdcache.

    >>> async with AsyncClient("localhost:50051") as cache:        # doctest: +SKIP
    ...     await cache.write(Series("600519", "kline", "1d"), [Record.of(ts, bar)])
    ...     result = await cache.read(Series("600519", "kline", "1d"), last_days=30)

    Every call has a deadline (``timeout`` seconds unless given per call) and raises
    a :class:`~mdcache_client.MdcacheError` subclass when it fails. A call that fails
    UNAVAILABLE is retried, up to ``max_attempts`` in all, with backoff, within its deadline.

    ``target`` is ``host:port``, or ``dns:///host:port`` for every address of a name,
    spread over by ``load_balancing`` (``round_robin``, or ``pick_first``). ``tls=True``
    uses TLS with the system's root certificates; ``root_certificates`` (PEM) trusts
    others, ``client_certificate`` is ``(certificate chain PEM, private key PEM)`` for
    servers that ask for one; either implies TLS. ``token`` is sent as
    ``authorization: Bearer <token>``. ``keepalive`` is seconds between pings on an idle
    connection (None: none). ``fallback`` is the default of :meth:`get_or_load`;
    ``empty_range_seconds`` how long it remembers a range the loader answered empty (0: not).
    ``options`` are extra gRPC channel options; ``channel`` replaces the client's own.
    """

    def __init__(
        self,
        target: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        token: str | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        client_certificate: tuple[bytes, bytes] | None = None,
        keepalive: float | None = DEFAULT_KEEPALIVE,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        load_balancing: str = "round_robin",
        fallback: bool = True,
        empty_range_seconds: float = DEFAULT_EMPTY_RANGE_SECONDS,
        options: Sequence[tuple[str, Any]] = (),
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self.timeout = timeout
        self.fallback = fallback
        transport = Transport(
            token,
            tls,
            root_certificates,
            client_certificate,
            keepalive,
            max_attempts,
            load_balancing,
            options,
        )
        if channel is None:
            credentials = transport.credentials()
            channel_options = transport.channel_options()
            channel = (
                grpc.aio.insecure_channel(target, options=channel_options)
                if credentials is None
                else grpc.aio.secure_channel(target, credentials, options=channel_options)
            )
            self._metadata = transport.metadata(own_channel=True)
        else:
            self._metadata = transport.metadata(own_channel=False)
        self._channel = channel
        self._stub = pb_grpc.MarketDataCacheStub(channel)
        self.session_token = ""  # the latest of this client's Writes (``_session.py``)
        self._cache_aside = AsyncCacheAside(self, empty_range_seconds)

    @property
    def channel(self) -> grpc.aio.Channel:
        """The gRPC channel (for its connectivity state, or other services of the server)."""
        return self._channel

    async def _run(self, call: _calls.Call[R], timeout: float | None) -> R:
        method = getattr(self._stub, call.method)
        metadata = self._metadata
        if call.method == "Read" and self.session_token:
            metadata = (*(metadata or ()), (_session.HEADER, self.session_token))
        try:
            response = await method(
                call.request, timeout=timeout or self.timeout, metadata=metadata
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        if call.method in ("Write", "Purge"):
            self.session_token = _session.merged(self.session_token, response.session_token)
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
        resample: str = "",
        adjust: str = "",
        adjust_factors: Series | None = None,
        as_of_ms: int | None = None,
        adjust_volume: bool = False,
        consistency: str = "",
        timeout: float | None = None,
    ) -> ReadResult:
        """Reads a window of one series (inclusive at both ends).

        ``resample`` (``"5m"``, ``"60m"``, ``"1d"``, ``"1w"``, ``"1M"``...) answers the
        series' OHLCV bars made into bars of that coarser timeframe by the server, along
        the market's trading sessions; the window, limit and order apply to the new bars.

        ``adjust`` (``"forward"`` or ``"qfq"``, ``"backward"`` or ``"hfq"``) answers bars
        with adjusted prices, computed by the server from the raw bars and the factor series
        ``adjust_factors`` (default: the symbol's ``adj_factor``/``1d``); forward relative
        to the factor in force at ``as_of_ms`` (default: at ``end_ms``, or the latest);
        ``adjust_volume`` also divides volumes by the price ratio. With ``resample``: the
        bars are adjusted, then resampled.

        ``consistency`` (where replicas share the store): ``"bounded"`` (every Write
        acknowledged the server's freshness bound before, and this client's own) or
        ``"strict"`` (every Write acknowledged before the call); default: the server's.
        """
        results = await self.read_many(
            [series],
            start_ms=start_ms,
            end_ms=end_ms,
            last_days=last_days,
            limit=limit,
            newest_first=newest_first,
            resample=resample,
            adjust=adjust,
            adjust_factors=adjust_factors,
            as_of_ms=as_of_ms,
            adjust_volume=adjust_volume,
            consistency=consistency,
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
        resample: str = "",
        adjust: str = "",
        adjust_factors: Series | None = None,
        as_of_ms: int | None = None,
        adjust_volume: bool = False,
        consistency: str = "",
        timeout: float | None = None,
    ) -> list[ReadResult]:
        """Reads the same window of several series in one call, in the order given
        (``resample``, ``adjust``...: as :meth:`read`; each series adjusted by its own
        symbol's factors unless ``adjust_factors`` names a symbol)."""
        call = _calls.read(
            series,
            start_ms=start_ms,
            end_ms=end_ms,
            last_days=last_days,
            limit=limit,
            newest_first=newest_first,
            resample=resample,
            adjust=adjust,
            adjust_factors=adjust_factors,
            as_of_ms=as_of_ms,
            adjust_volume=adjust_volume,
            consistency=consistency,
        )
        return await self._run(call, timeout)

    async def get_or_load(
        self,
        series: Series,
        window: Window,
        loader: AsyncLoader | AsyncRangesLoader,
        *,
        tolerance_ms: int = 0,
        fallback: bool | None = None,
        resample_from: str | None = None,
        timeout: float | None = None,
    ) -> LoadResult:
        """The series' records in the window: from the cache, topped up by ``loader``.

        The window is read from the cache, and the loader is asked only for the ranges the
        cache lacks: at the edges (no record at or before ``start_ms + tolerance_ms``, or at
        or after ``end_ms - tolerance_ms``), and, with a positive tolerance, between two
        records further apart than twice ``tolerance_ms``; less the ranges it answered empty in
        the last ``empty_range_seconds``. ``loader(series, range)`` is called once per
        missing range, or ``loader(series, [range, ...])`` once when it is marked with
        :func:`~mdcache_client.ranges_loader`. Everything it returns is written back, and
        the answer is the window's records held and loaded merged (``Source.LOADER``), or
        the held ones when nothing was missing (``Source.CACHE``); a failed write-back is
        logged, and the answer stands. When the cache cannot be reached (UNAVAILABLE or
        DEADLINE_EXCEEDED), the loader's records of the whole window are the answer
        (``Source.FALLBACK``), logged as a warning; with ``fallback=False`` the error is
        raised instead. Records are oldest first, one per timestamp.

        Concurrent calls with the same series, window, tolerance and fallback share one
        execution in this process; calls whose missing ranges overlap share the loads of
        the overlap (a load that ended after a call read the cache counts as in flight for
        it). A loader's exception propagates as it is, to every caller sharing it.

        ``resample_from`` names a finer timeframe (e.g. ``"1m"`` for ``series`` of
        ``"60m"``): when the cache holds the finer series over the window, its bars made
        into ``series``' timeframe by the server are the answer (``Source.CACHE``); else
        the series itself is read and topped up, as above.
        """
        fallback = self.fallback if fallback is None else fallback
        return await self._cache_aside.get_or_load(
            series, window, loader, tolerance_ms, fallback, resample_from, timeout
        )

    async def subscribe(
        self,
        series: Iterable[Series] = (),
        *,
        symbol: str = "",
        since_ms: int | None = None,
    ) -> AsyncSubscription:
        """Each record written to ``series`` (or every series of ``symbol``), as written.

        Returns once the server follows them (a write made after is given), an iterator
        to close (or use as a context manager) to hang up. With ``since_ms`` the records
        held from then are replayed first, oldest first (``StreamedRecord.replayed``). An
        iterator without end: it reconnects after UNAVAILABLE and
        resumes after the last change received (see :mod:`mdcache_client._live`); any other
        error (RESOURCE_EXHAUSTED for a subscriber that fell behind) is raised.

        >>> quotes = Series("600519", "quote", "tick")
        >>> async with await cache.subscribe([quotes]) as live:  # doctest: +SKIP
        ...     async for change in live:
        ...         print(change.series, change.record.json())
        """
        subscription = AsyncSubscription(self._stub, self._metadata, series, symbol, since_ms)
        await subscription.open()
        return subscription

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
