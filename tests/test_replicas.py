"""Replicas sharing one store, on every store (and on a REPLICA 3 database of a three-node
TDengine cluster): capacity evictions they agree on, and a write through one replica read
through each other at once by a strict Read (issue 15; bounded Reads: test_freshness.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest

from harness.poll import eventually
from mdcache_client import AsyncClient, Record, Series
from mdcache_server.app import Server

from .conftest import CLUSTER, STORES, store_url_of
from .support import running


@pytest.fixture(params=[*STORES, CLUSTER])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every store of conftest's, and a REPLICA 3 database on a three-node cluster."""
    yield from store_url_of(request.param, request, tmp_path)


MINUTE = 60_000
START = 1_700_000_000_000


def kline(symbol: str, n: int = 600) -> tuple[Series, list[Record]]:
    """``n`` one-minute bars of a symbol."""
    series = Series(symbol, "kline", "1m")
    bars = [
        Record(START + i * MINUTE, json.dumps({"close": 10 + i / 100, "volume": i}))
        for i in range(n)
    ]
    return series, bars


@asynccontextmanager
async def replicas(
    store_url: str, n: int, **settings: str
) -> AsyncIterator[list[tuple[Server, AsyncClient]]]:
    """``n`` servers on the one store, each with a client; all stopped on the way out."""
    async with AsyncExitStack() as stack:
        settings = {"subscribe_relay": "on", **settings}  # on SQLite too: replicas
        started = await asyncio.gather(
            *(stack.enter_async_context(running(store_url, **settings)) for _ in range(n))
        )
        yield list(started)


@pytest.mark.parametrize("count", [2, 3])
async def test_replicas_evict_exactly_the_never_read_series(store_url: str, count: int) -> None:
    """Fault 1 of issue 15: 3 x 600 bars under a bound of 1,500, two series read, one never.
    Every replica checks capacity at the same moments; together they evict the one series
    never read, and nothing else."""
    settings = {"max_records": "1500", "capacity_interval": "0.5", "usage_flush_interval": "0.3"}
    async with replicas(store_url, count, **settings) as group:
        writer = group[0][1]
        read_a, read_b, never = kline("600001.SH"), kline("600002.SH"), kline("600003.SH")
        await writer.write_many(dict([read_a, read_b]))
        for _ in range(3):
            for i, (_, client) in enumerate(group):
                await client.read((read_a, read_b)[i % 2][0], limit=10)
        reads = 3 * count

        async def flushed() -> bool:  # each replica sees every read: all of them stored
            each = [await client.stats() for _, client in group]
            return all(s.hits + s.misses >= reads and s.replicas == count for s in each)

        await eventually(flushed, 15)
        await writer.write(*never)  # 1,800 records: over the bound by 300

        async def evicted() -> bool:
            return (await writer.stats()).records <= 1500

        await eventually(evicted, 15)
        await asyncio.sleep(1.2)  # two more rounds of checks by every replica
        stats = await writer.stats()
        assert stats.records == 1200

        async def counted() -> bool:  # every replica's Stats sums every replica's evictions
            each = [await client.stats() for _, client in group]
            return all(s.evicted_series for s in each)

        await eventually(counted, 15)
        each = [await client.stats() for _, client in group]
        assert [(s.evicted_series, s.evicted_records) for s in each] == [(1, 600)] * count
        assert not (await writer.read(never[0])).hit
        for series, _ in (read_a, read_b):
            assert len((await writer.read(series)).records) == 600


@pytest.mark.parametrize("count", [2, 3])
async def test_a_write_through_one_replica_is_read_through_every_other_at_once(
    store_url: str, count: int
) -> None:
    """Strict Reads across replicas: each replica holds the series in its hot tier, and a
    write acknowledged by one is in the very next strict read through any other, answered
    from its held copy (kept by the change feed)."""
    async with replicas(store_url, count, hot_tier_max_age="600") as group:
        series, bars = kline("600519.SH", 50)
        await group[0][1].write(series, bars)
        for _, client in group:
            assert len((await client.read(series)).records) == 50  # held by each
        stamp = START + 50 * MINUTE
        for step in range(3 * count):
            _, writer = group[step % count]
            record = Record(stamp + step * MINUTE, json.dumps({"close": step}))
            await writer.write(series, [record])
            for _, reader in group:
                latest = await reader.read(series, newest_first=True, limit=1, consistency="strict")
                assert latest.records == [record], (step, reader)
        for server, _ in group:
            assert series in server.cache.hot  # merged from the feed, held still
            assert server.cache.hot.misses <= 2  # never read again from the store
