"""Warming: at start-up, the most read series (by the stored counters) into the hot tier."""

from __future__ import annotations

import time
from functools import partial

import structlog

from mdcache_server.cache.policy import CachePolicy
from mdcache_server.model import SeriesKey, SeriesRead, Window
from mdcache_server.store.base import StoreConnection

log = structlog.get_logger(__name__)
BATCH = 32


def _read(conn: StoreConnection, keys: list[SeriesKey], window: Window) -> list[SeriesRead]:
    return conn.read(keys, window)


async def warm(policy: CachePolicy, seconds: float) -> int:
    """Fills the hot tier with the hottest series until it is full or ``seconds`` pass.

    Returns how many series were warmed; a series that does not fit is passed over.
    """
    hot = policy.hot
    if not hot.enabled or seconds <= 0:
        return 0
    started = time.monotonic()
    order = policy.usage().hottest_series()
    whole = Window(limit=hot.max_series_records)
    warmed = 0
    for i in range(0, len(order), BATCH):
        if time.monotonic() - started > seconds or hot.bytes >= hot.capacity_bytes:
            break
        keys = order[i : i + BATCH]
        tickets = [hot.ticket(key) for key in keys]
        reads = await policy.pool.run(partial(_read, keys=keys, window=whole))
        for key, ticket, read in zip(keys, tickets, reads, strict=True):
            fits = hot.bytes + sum(len(r.payload) for r in read.records) < hot.capacity_bytes
            if read.records and not read.truncated and fits and hot.fill(key, read.records, ticket):
                warmed += 1
    log.info(
        "warmed",
        series=warmed,
        candidates=len(order),
        bytes=hot.bytes,
        seconds=round(time.monotonic() - started, 3),
    )
    return warmed
