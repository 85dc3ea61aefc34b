"""Cache-aside (asyncio flavour): ``get_or_load``'s reads, top-ups and shared loads.

:class:`AsyncCacheAside` is the part of a client that reads a window from the cache,
asks a loader for what it lacks (:mod:`mdcache_client._topup`), writes that back, and
shares work between concurrent callers (:mod:`mdcache_client._flight_aio`). It reaches
the cache through the client's own ``read`` and ``write``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol, cast

from mdcache_client._coverage import covers, stamp, within
from mdcache_client._errors import DeadlineExceededError, MdcacheError, UnavailableError
from mdcache_client._flight_aio import AsyncRangeFlight, AsyncSingleFlight
from mdcache_client._topup import (
    EmptyRanges,
    Newest,
    Seams,
    answer,
    coalesce,
    missing,
    takes_ranges,
)
from mdcache_client._types import (
    AsyncLoader,
    AsyncRangesLoader,
    LoadResult,
    ReadResult,
    Record,
    Series,
    Source,
    Window,
)

log = logging.getLogger("mdcache_client")


class AsyncCache(Protocol):
    """What cache-aside needs of a client: its reads and writes."""

    async def read(
        self,
        series: Series,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 0,
        newest_first: bool = False,
        resample: str = "",
        timeout: float | None = None,
    ) -> ReadResult: ...

    async def write(
        self, series: Series, records: Iterable[Record], *, timeout: float | None = None
    ) -> int: ...


class AsyncCacheAside:
    """``get_or_load`` of a client (its documentation is the client's).

    Holds what this process knows beyond the cache: the calls and loads in flight, the
    ranges the upstream answered empty (for ``empty_range_seconds``), the newest record
    seen and the seams of each series.
    """

    def __init__(self, cache: AsyncCache, empty_range_seconds: float) -> None:
        self._cache = cache
        self.flight: AsyncSingleFlight[LoadResult] = AsyncSingleFlight()
        self._ranges = AsyncRangeFlight()
        self._empty = EmptyRanges(empty_range_seconds)
        self._newest = Newest()
        self._seams = Seams()

    async def get_or_load(
        self,
        series: Series,
        window: Window,
        loader: AsyncLoader | AsyncRangesLoader,
        tolerance_ms: int,
        fallback: bool,
        resample_from: str | None,
        timeout: float | None,
    ) -> LoadResult:
        if tolerance_ms < 0:
            raise ValueError("tolerance_ms must be 0 or more")

        async def load() -> LoadResult:
            # From before the read: a load that ends between the read and this call's own
            # loads is shared like one in flight (the read may have missed its records).
            with self._ranges.watching(series) as mark:
                try:
                    if resample_from is not None:
                        finer = Series(series.symbol, series.data_type, resample_from)
                        covered = await self._covering(
                            finer, window, tolerance_ms, timeout, resample=series.timeframe
                        )
                        if covered is not None:
                            return LoadResult(
                                series, covered.records, Source.CACHE, covered.truncated
                            )
                    held, newest = await self._held(series, window, timeout)
                except (UnavailableError, DeadlineExceededError) as exc:
                    if not fallback:
                        raise
                    log.warning(
                        "mdcache unreachable, loading %s from the loader without caching: %s",
                        "/".join(series),
                        exc,
                    )
                    loaded = await self._call_loader(loader, series, [window])
                    return LoadResult(series, within(loaded, window), Source.FALLBACK)
                stamps = [stamp(r) for r in held.records]
                self._newest.saw(series, stamps if newest is None else [newest])
                found = missing(window, stamps, tolerance_ms, newest)
                gaps = self._newest.joined(series, window, found)
                if gaps == [window]:  # nothing known around it: a hole may be left beside it
                    self._seams.opened(series, window)
                suspects = self._seams.suspects(series, window, stamps)
                if suspects:
                    gaps = coalesce(
                        sorted([*gaps, *suspects], key=lambda w: w.start_ms), tolerance_ms
                    )
                gaps = self._empty.unknown(series, gaps)
                if not gaps:
                    return LoadResult(series, held.records, Source.CACHE, held.truncated)
                loaded = await self._ranges.load(
                    series,
                    gaps,
                    lambda ranges: self._top_up(series, ranges, loader, tolerance_ms, timeout),
                    mark,
                )
                through = stamps[-1] if held.truncated else None
                records = answer(held.records, loaded, window, through)
                return LoadResult(series, records, Source.LOADER, held.truncated)

        return await self.flight.run((series, window, tolerance_ms, fallback, resample_from), load)

    async def _top_up(
        self,
        series: Series,
        ranges: list[Window],
        loader: AsyncLoader | AsyncRangesLoader,
        tolerance_ms: int,
        timeout: float | None,
    ) -> list[Record]:
        """Loads the missing ranges, writes back what came, remembers what came empty."""
        records = await self._call_loader(loader, series, ranges)
        stamps = [stamp(r) for r in records]
        for asked in ranges:
            self._empty.remember(series, asked, stamps, tolerance_ms)
        if not records:
            self._seams.closed(series, ranges)
        else:
            try:
                await self._cache.write(series, records, timeout=timeout)
                self._newest.saw(series, stamps)
                self._seams.closed(series, ranges)
            except MdcacheError as exc:
                log.warning(
                    "mdcache write-back of %d records to %s failed: %s",
                    len(records),
                    "/".join(series),
                    exc,
                )
        return records

    async def _covering(
        self,
        series: Series,
        window: Window,
        tolerance_ms: int,
        timeout: float | None,
        resample: str = "",
    ) -> ReadResult | None:
        """The cached records of the window if they cover it, else None."""
        start_ms, end_ms = window.start_ms, window.end_ms
        result = await self._cache.read(
            series, start_ms=start_ms, end_ms=end_ms, resample=resample, timeout=timeout
        )
        if not result.hit:
            return None
        first, last = result.records[0], result.records[-1]
        if result.truncated:  # the newest record of the window is not in this answer
            newest = await self._cache.read(
                series,
                start_ms=start_ms,
                end_ms=end_ms,
                limit=1,
                newest_first=True,
                resample=resample,
                timeout=timeout,
            )
            last = newest.records[0]
        return result if covers(window, stamp(first), stamp(last), tolerance_ms) else None

    @staticmethod
    async def _call_loader(
        loader: AsyncLoader | AsyncRangesLoader, series: Series, ranges: list[Window]
    ) -> list[Record]:
        if takes_ranges(loader):
            return list(await cast(AsyncRangesLoader, loader)(series, ranges))
        records: list[Record] = []
        for window in ranges:
            records.extend(await cast(AsyncLoader, loader)(series, window))
        return records

    async def _held(
        self, series: Series, window: Window, timeout: float | None
    ) -> tuple[ReadResult, int | None]:
        """The cached records of the window, and its newest record's time when truncated."""
        start_ms, end_ms = window.start_ms, window.end_ms
        result = await self._cache.read(series, start_ms=start_ms, end_ms=end_ms, timeout=timeout)
        if not result.truncated:
            return result, None
        newest = await self._cache.read(
            series, start_ms=start_ms, end_ms=end_ms, limit=1, newest_first=True, timeout=timeout
        )
        return result, stamp(newest.records[0])
