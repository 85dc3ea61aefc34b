"""Capacity: when the store holds more records than allowed, evict whole series,
least recently read first (across every replica's counters, as last flushed)."""

from __future__ import annotations

import time

import structlog

from mdcache_server.cache.policy import CachePolicy
from mdcache_server.cache.stats import ClusterUsage
from mdcache_server.model import SeriesKey

log = structlog.get_logger(__name__)


def victims(
    series: list[tuple[SeriesKey, int]], usage: ClusterUsage, max_records: int
) -> list[SeriesKey]:
    """The series to evict so that at most ``max_records`` remain: never read first, then
    least recently read (ties by series)."""
    total = sum(n for _, n in series)

    def last_read(item: tuple[SeriesKey, int]) -> tuple[int, SeriesKey]:
        seen = usage.series.get(item[0])
        return (seen.last_read_ms if seen else 0, item[0])

    chosen = []
    for key, n in sorted(series, key=last_read):
        if total <= max_records:
            break
        chosen.append(key)
        total -= n
    return chosen


async def enforce(policy: CachePolicy, max_records: int) -> int:
    """Evicts until the store is under ``max_records``; returns records evicted."""
    started = time.perf_counter()
    listed = await policy.pool.run(lambda conn: conn.list_series())
    chosen = victims(listed, policy.usage(), max_records)
    if not chosen:
        return 0
    dropped = await policy.drop(chosen)
    policy.evicted(len(chosen), dropped)
    log.info(
        "capacity_evicted",
        series=len(chosen),
        records=dropped,
        max_records=max_records,
        stored_before=sum(n for _, n in listed),
        first="/".join(chosen[0]),
        seconds=round(time.perf_counter() - started, 3),
    )
    return dropped
