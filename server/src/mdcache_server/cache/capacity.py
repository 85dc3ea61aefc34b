"""Capacity: when the store holds more records than allowed, evict whole series,
never read first, then least recently read, by every replica's counters.

Replicas sharing a store must not together evict more than the bound asks, nor a series
read more recently than one they keep. Each check first stores this replica's counters
(so the decision sees them), then counts, reads every replica's counters from the store
and evicts in one store call (``StoreConnection.evict``):

- on SQLite that call is one write transaction: replicas check one after another, each
  from the count the one before left, so a second replica finds nothing left to do;
- TDengine has no transactions, so one replica at a time checks: the *leader*, the
  replica of smallest name among those whose heartbeat is fresh and that have been up
  for a heartbeat's lifetime (:class:`Leadership`). Every replica writes its heartbeat
  at each check, so all agree on the leader; one that stops leads no more once its
  heartbeat is stale, and the next takes over.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog

from mdcache_server.cache.policy import CachePolicy
from mdcache_server.cache.stats import ClusterUsage, split_stored, wall_ms
from mdcache_server.cache.usage import flush
from mdcache_server.errors import MdcacheError
from mdcache_server.model import PurgeFilter, SeriesKey, Usage
from mdcache_server.store.base import Eviction, StoreConnection

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


@dataclass
class Leadership:
    """Which replica may check capacity on a store without transactions: each call to
    :meth:`leads` stores this replica's heartbeat and reads every replica's."""

    lifetime_ms: int  # a heartbeat older than this is stale
    first_ms: int = 0  # when this replica first beat

    async def leads(self, policy: CachePolicy) -> bool:
        replica = policy.stats.replica
        now = wall_ms()
        self.first_ms = self.first_ms or now
        first = self.first_ms
        seen = await policy.pool.run(lambda conn: conn.heartbeat(replica, first, now), "heartbeat")
        settled = [
            name
            for name, (since, beat) in seen.items()
            if now - beat <= self.lifetime_ms and now - since >= self.lifetime_ms
        ]
        return bool(settled) and min(settled) == replica


async def enforce(
    policy: CachePolicy, max_records: int, leadership: Leadership | None = None
) -> int:
    """Evicts until the store is under ``max_records``; returns records evicted. With
    ``leadership`` (a store without transactions) only while this replica leads."""
    if leadership is not None and not await leadership.leads(policy):
        return 0
    started = time.perf_counter()
    await flush(policy)  # this replica's reads count in the decision
    mine = policy.stats.as_usage()

    def choose(
        listed: list[tuple[SeriesKey, int]], stored: list[Usage], bound: int
    ) -> list[SeriesKey]:
        _, others, _ = split_stored(stored, mine.replica)
        return victims(listed, ClusterUsage.combine(mine, others), bound)

    def evict(conn: StoreConnection) -> Eviction:
        return conn.evict(max_records, choose)

    try:
        done = await policy.pool.run(evict, "evict")
    except MdcacheError:
        # Some series may be gone: every held copy is dropped, here and in every replica.
        await policy.forgotten([PurgeFilter(0)])
        raise
    if not done.chosen:
        return 0
    await policy.forgotten([PurgeFilter(0, *key) for key in done.chosen])
    policy.evicted(len(done.chosen), done.dropped)
    log.info(
        "capacity_evicted",
        series=len(done.chosen),
        records=done.dropped,
        max_records=max_records,
        stored_before=sum(n for _, n in done.listed),
        first="/".join(done.chosen[0]),
        seconds=round(time.perf_counter() - started, 3),
    )
    return done.dropped
