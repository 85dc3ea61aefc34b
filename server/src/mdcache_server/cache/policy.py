"""The cache policy between the service and the worker pool.

Reads go to the hot tier first; what it does not hold is read from the store on a
worker, whole series at once when they fit the tier (so that the next read of any
window of them is served from memory), else just the window asked. Writes and purges
go to the store, then keep the hot tier correct. Every series read is counted.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from mdcache_server.cache.hot import HeldSeries, HotTier
from mdcache_server.cache.retention import RetentionRules
from mdcache_server.cache.stats import ClusterUsage, HitStats, wall_ms
from mdcache_server.cache.writes import GroupWriter
from mdcache_server.model import (
    PurgeFilter,
    Record,
    SeriesKey,
    SeriesRead,
    StoreCounts,
    Usage,
    Window,
)
from mdcache_server.pool import WorkerPool
from mdcache_server.store.base import StoreConnection


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Stats as the service answers them."""

    counts: StoreCounts
    usage: ClusterUsage
    hot_tier: HotTier
    evicted_series: int
    evicted_records: int
    uptime_seconds: float
    store: str
    store_version: str
    retention: RetentionRules


@dataclass(slots=True)
class Fill:
    """What a cold read needs from the store: whole series (to hold, with their encoded
    records) or windows (series too large to hold)."""

    whole: list[SeriesRead]
    encoded: list[list[bytes] | None]
    windows: list[SeriesRead]


class CachePolicy:
    """Runs each call on the pool, keeps the hot tier correct and counts reads."""

    def __init__(
        self,
        pool: WorkerPool,
        *,
        hot: HotTier,
        stats: HitStats,
        retention: RetentionRules,
        max_group_records: int = 100_000,
    ) -> None:
        self.pool = pool
        self.writer = GroupWriter(pool, max_records=max_group_records)
        self.hot = hot
        self.stats = stats
        self.retention = retention
        self.others: list[Usage] = []  # other replicas' counters, as last loaded
        self.store_version = ""  # learnt once, when the store is prepared at start-up
        self.evicted_series = 0
        self.evicted_records = 0
        self.started = time.monotonic()

    async def write(self, batches: Sequence[tuple[SeriesKey, Sequence[Record]]]) -> int:
        written = await self.writer.write(batches)
        for key, records in batches:
            self.hot.written(key, records)
        return written

    async def read(self, series: Sequence[SeriesKey], window: Window) -> list[SeriesRead]:
        results: list[SeriesRead | None] = [None] * len(series)
        cold: list[int] = []
        if self.hot.enabled:
            for i, key in enumerate(series):
                held = self.hot.get(key)
                if held is None:
                    cold.append(i)
                else:
                    results[i] = held.window(window)
        else:
            cold = list(range(len(series)))
        if cold:
            found = await self._read_cold([series[i] for i in cold], window)
            for i, result in zip(cold, found, strict=True):
                results[i] = result
        now = wall_ms()
        done = [r for r in results if r is not None]
        assert len(done) == len(series)
        for key, result in zip(series, done, strict=True):
            self.stats.record(key, hit=bool(result.records), now_ms=now)
        return done

    async def _read_cold(self, keys: list[SeriesKey], window: Window) -> list[SeriesRead]:
        if not self.hot.enabled or all(self.hot.too_large(key) for key in keys):
            return await self.pool.run(lambda conn: conn.read(keys, window))
        tickets = [self.hot.ticket(key) for key in keys]
        got = await self.fetch_whole(keys, window)
        windows = iter(got.windows)
        results = []
        for key, ticket, read, encoded in zip(keys, tickets, got.whole, got.encoded, strict=True):
            if read.truncated:
                self.hot.found_too_large(key)
                results.append(next(windows))
                continue
            self.hot.fill(key, read.records, ticket, encoded)
            results.append(HeldSeries.of(read.records, 0.0, encoded).window(window))
        return results

    async def fetch_whole(self, keys: list[SeriesKey], window: Window | None = None) -> Fill:
        """Whole series from the store, encoded for the hot tier, in one worker call; for
        those too large to hold, ``window`` of them instead (when given)."""
        whole = Window(limit=self.hot.max_series_records)
        encode = self.hot.encode

        def fill(conn: StoreConnection) -> Fill:  # on a worker: encoding stays off the loop
            held = conn.read(keys, whole)
            large = [k for k, r in zip(keys, held, strict=True) if r.truncated]
            encoded = [
                encode(r.records) if encode is not None and not r.truncated else None for r in held
            ]
            windows = conn.read(large, window) if large and window is not None else []
            return Fill(held, encoded, windows)

        return await self.pool.run(fill)

    async def purge(self, purge: PurgeFilter) -> int:
        try:
            return await self.pool.run(lambda conn: conn.purge(purge))
        finally:
            self.hot.forget(purge.matches)

    async def drop(self, series: Sequence[SeriesKey]) -> int:
        """Deletes whole series (capacity eviction)."""
        dropped = set(series)
        try:
            return await self.pool.run(lambda conn: conn.drop_series(series))
        finally:
            self.hot.forget(dropped.__contains__)

    async def probe(self) -> None:
        """One round trip that fails when the store cannot serve."""
        await self.pool.run(lambda conn: conn.probe())

    def usage(self) -> ClusterUsage:
        return ClusterUsage.combine(self.stats.as_usage(), self.others)

    async def snapshot(self) -> CacheStats:
        counts = await self.pool.run(lambda conn: conn.counts())
        return CacheStats(
            counts=counts,
            usage=self.usage(),
            hot_tier=self.hot,
            evicted_series=self.evicted_series,
            evicted_records=self.evicted_records,
            uptime_seconds=time.monotonic() - self.started,
            store=self.pool.store.name,
            store_version=self.store_version,
            retention=self.retention,
        )
