"""Background work on intervals: retention, capacity, statistics flushes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from mdcache_server.cache.policy import CachePolicy
from mdcache_server.cache.stats import wall_ms
from mdcache_server.errors import MdcacheError

log = structlog.get_logger(__name__)


async def apply_retention(policy: CachePolicy) -> int:
    """Purges what the retention rules no longer keep; returns records deleted."""
    started = time.perf_counter()
    listed = await policy.pool.run(lambda conn: conn.list_series(), "list")
    purges = policy.retention.purges((key for key, _ in listed), wall_ms())
    deleted = 0
    for purge in purges:
        deleted += await policy.purge(purge)
    log.info(
        "retention_applied",
        deleted=deleted,
        purges=len(purges),
        series=len(listed),
        rules=policy.retention.days,
        seconds=round(time.perf_counter() - started, 3),
    )
    return deleted


async def every(interval: float, name: str, job: Callable[[], Awaitable[object]]) -> None:
    """Runs ``job`` every ``interval`` seconds until cancelled. A run that fails with a
    domain error (the store unreachable) is logged and the next one comes; anything else
    is raised, to the supervisor (``supervisor.py``), which logs it and starts again."""
    while True:
        await asyncio.sleep(interval)
        try:
            await job()
        except MdcacheError as exc:
            log.warning("maintenance_failed", job=name, error=str(exc))
