"""Keeping hit statistics across restarts and replicas: load, flush, reset."""

from __future__ import annotations

import structlog

from mdcache_server.cache.policy import CachePolicy
from mdcache_server.cache.stats import RESET_MARKER, split_stored, wall_ms
from mdcache_server.model import Usage
from mdcache_server.store.base import StoreConnection

log = structlog.get_logger(__name__)


async def load(policy: CachePolicy) -> None:
    """At start-up: continue this replica's stored counters, and learn the others'."""
    stats = policy.stats
    stored = await policy.pool.run(lambda conn: conn.load_usage(), "usage")
    mine, others, reset_ms = split_stored(stored, stats.replica)
    if mine is not None and mine.since_ms >= reset_ms:
        stats.resume(mine)
    policy.others_seen(others)
    log.info(
        "usage_loaded",
        replica=stats.replica,
        resumed=mine is not None,
        hits=stats.hits,
        misses=stats.misses,
        series=len(stats.series),
        other_replicas=len(others),
    )


async def flush(policy: CachePolicy) -> None:
    """Stores this replica's counters and reloads every replica's, in one store call; obeys
    a reset made elsewhere (what was just saved from before it is then forgotten)."""
    stats = policy.stats
    usage = stats.to_flush()

    def save_and_load(conn: StoreConnection) -> list[Usage]:
        conn.save_usage(usage)
        return conn.load_usage()

    _, others, reset_ms = split_stored(await policy.pool.run(save_and_load, "usage"), stats.replica)
    policy.others_seen(others)
    if reset_ms > stats.since_ms:
        stats.reset(reset_ms)
        await policy.pool.run(lambda conn: conn.reset_usage(stats.replica), "usage")
        log.info("usage_reset_seen", replica=stats.replica, since_ms=reset_ms)


async def reset(policy: CachePolicy) -> None:
    """Starts every replica's counters anew (the others when they next flush)."""
    now = wall_ms()
    marker = Usage(RESET_MARKER, now, 0, 0, {})
    replica = policy.stats.replica

    def reset_all(conn: StoreConnection) -> None:
        conn.reset_usage(None)
        conn.save_usage(marker)

    await policy.pool.run(reset_all, "usage")
    policy.stats.reset(now)
    policy.others_seen([])
    log.info("usage_reset", replica=replica, since_ms=now)
