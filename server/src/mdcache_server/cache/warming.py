"""Warming: at start-up, the most read series (by the stored counters) into the hot tier."""

from __future__ import annotations

import time

import structlog

from mdcache_server.cache.policy import CachePolicy

log = structlog.get_logger(__name__)
BATCH = 32


async def warm(policy: CachePolicy, seconds: float) -> int:
    """Fills the hot tier with the hottest series until it is full or ``seconds`` pass.

    Returns how many series were warmed; a series that does not fit is passed over.
    """
    hot = policy.hot
    if not hot.enabled or seconds <= 0:
        return 0
    started = time.monotonic()
    order = policy.usage().hottest_series()
    warmed = 0
    for i in range(0, len(order), BATCH):
        if time.monotonic() - started > seconds or hot.bytes >= hot.capacity_bytes:
            break
        keys = order[i : i + BATCH]
        tickets = [hot.ticket(key) for key in keys]
        got = await policy.fetch_whole(keys)
        for key, ticket, held in zip(keys, tickets, got, strict=True):
            if held is not None and held.ts and hot.bytes + held.size < hot.capacity_bytes:
                warmed += hot.fill(key, held, ticket)
    log.info(
        "warmed",
        series=warmed,
        candidates=len(order),
        bytes=hot.bytes,
        seconds=round(time.monotonic() - started, 3),
    )
    return warmed
