"""The cache policy between the service and the worker pool."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from mdcache_server.cache.stats import HitStats
from mdcache_server.model import PurgeFilter, Record, SeriesKey, SeriesRead, StoreCounts, Window
from mdcache_server.pool import WorkerPool


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Stats as the service answers them."""

    counts: StoreCounts
    hits: int
    misses: int
    hit_rate: float
    hot_symbols: list[tuple[str, int]]
    uptime_seconds: float
    store: str
    store_version: str
    counting_since_ms: int
    replicas: int


class CachePolicy:
    """Runs each call on the pool and keeps the hit statistics."""

    def __init__(self, pool: WorkerPool, stats: HitStats | None = None) -> None:
        self.pool = pool
        self.stats = stats or HitStats()
        self.started = time.monotonic()

    async def write(self, batches: Sequence[tuple[SeriesKey, Sequence[Record]]]) -> int:
        return await self.pool.run(lambda conn: conn.write(batches))

    async def read(self, series: Sequence[SeriesKey], window: Window) -> list[SeriesRead]:
        results = await self.pool.run(lambda conn: conn.read(series, window))
        for key, result in zip(series, results, strict=True):
            self.stats.record(key.symbol, hit=bool(result.records))
        return results

    async def purge(self, purge: PurgeFilter) -> int:
        return await self.pool.run(lambda conn: conn.purge(purge))

    async def probe(self) -> str:
        """The store's version: one round trip to it."""
        return await self.pool.run(lambda conn: conn.server_version())

    async def snapshot(self, top_n: int, *, reset: bool = False) -> CacheStats:
        counts, version = await self.pool.run(lambda conn: (conn.counts(), conn.server_version()))
        stats = CacheStats(
            counts=counts,
            hits=self.stats.hits,
            misses=self.stats.misses,
            hit_rate=self.stats.hit_rate,
            hot_symbols=self.stats.hottest(top_n),
            uptime_seconds=time.monotonic() - self.started,
            store=self.pool.store.name,
            store_version=version,
            counting_since_ms=self.stats.since_ms,
            replicas=1,
        )
        if reset:
            self.stats = HitStats()
        return stats
