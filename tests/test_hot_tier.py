"""The hot tier: reads served from memory, kept correct by writes and purges, bounded in bytes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from harness.poll import eventually
from mdcache_client import AsyncClient, MdcacheError, Record, Series
from mdcache_server.app import Server
from mdcache_server.model import Record as StoreRecord
from mdcache_server.model import SeriesKey
from mdcache_server.store.base import Store, StoreConnection
from mdcache_server.store.url import open_store

from .faults import FaultyStore
from .market_data import aapl_daily_2017, sse_daily_2019, sse_minutes_20190201
from .support import server_config, settled


async def serve(tmp_path: Path, **settings: str) -> Server:
    url = f"sqlite:///{tmp_path / 'cache.sqlite3'}"
    server = Server(server_config(url, **settings), open_store(url))
    await server.start()
    await settled(server)
    return server


@pytest.fixture
async def hot(tmp_path: Path) -> AsyncIterator[tuple[Server, AsyncClient]]:
    server = await serve(tmp_path, hot_tier_max_age="600")
    try:
        async with AsyncClient(f"127.0.0.1:{server.port}") as client:
            yield server, client
    finally:
        await server.stop(grace=1)


async def test_a_hot_read_reads_no_records_from_the_store(tmp_path: Path) -> None:
    """A held series answers from memory: the store is asked only whether it changed
    (``cache/freshness.py``), never for its records."""
    url = f"sqlite:///{tmp_path / 'cache.sqlite3'}"
    faulty = FaultyStore(open_store(url), {"read", "read_answer"}, RuntimeError)
    server = Server(server_config(url, hot_tier_max_age="600"), faulty.as_store())
    await server.start()
    await settled(server)
    try:
        async with AsyncClient(f"127.0.0.1:{server.port}") as client:
            series, bars = sse_daily_2019()
            await client.write(series, bars)
            first = await client.read(series, start_ms=bars[10].ts_ms, end_ms=bars[19].ts_ms)
            assert (await client.stats()).hot_tier.series == 1
            faulty.broken.set()  # from here on, any read of records fails
            hits = server.cache.hot.hits
            again = await client.read(series, start_ms=bars[10].ts_ms, end_ms=bars[19].ts_ms)
            assert again.records == first.records
            latest = await client.read(series, newest_first=True, limit=2)
            assert [r.ts_ms for r in latest.records] == [bars[-1].ts_ms, bars[-2].ts_ms]
            assert latest.truncated
            assert server.cache.hot.hits == hits + 2
            with pytest.raises(MdcacheError):
                await client.read(Series("AAPL", "kline", "1d"))  # cold: needs the store
    finally:
        await server.stop(grace=1)


async def test_writes_merge_into_held_series(hot: tuple[Server, AsyncClient]) -> None:
    _, client = hot
    series, bars = sse_minutes_20190201()
    await client.write(series, bars[:100])
    assert len((await client.read(series)).records) == 100  # now held
    await client.write(series, [*bars[100:], Record(bars[5].ts_ms, '{"replaced": true}')])
    result = await client.read(series)
    assert len(result.records) == len(bars)
    assert result.records[5].payload == '{"replaced": true}'
    assert [r.ts_ms for r in result.records] == [b.ts_ms for b in bars]
    tier = (await client.stats()).hot_tier
    assert (tier.hits, tier.misses, tier.series) == (1, 1, 1)


async def test_a_purge_drops_what_it_touches(hot: tuple[Server, AsyncClient]) -> None:
    _, client = hot
    daily, bars = sse_daily_2019()
    apple, apple_bars = aapl_daily_2017()
    await client.write_many({daily: bars, apple: apple_bars})
    await client.read_many([daily, apple])
    assert await client.purge(before_ms=bars[100].ts_ms, symbol=daily.symbol) == 100
    assert (await client.stats()).hot_tier.series == 1
    assert len((await client.read(daily)).records) == 144
    assert len((await client.read(apple)).records) == len(apple_bars)


async def test_a_miss_is_held_too_until_a_write(hot: tuple[Server, AsyncClient]) -> None:
    _, client = hot
    series = Series("000001", "quote", "snapshot")
    assert not (await client.read(series)).hit
    assert not (await client.read(series)).hit
    await client.write(series, [Record(1_700_000_000_000, '{"price": 10.5}')])
    assert (await client.read(series)).hit
    stats = await client.stats()
    assert (stats.hot_tier.hits, stats.hot_tier.misses) == (2, 1)
    assert (stats.hits, stats.misses) == (1, 2)


async def test_the_tier_stays_within_its_bytes(tmp_path: Path) -> None:
    server = await serve(tmp_path, hot_tier_bytes="230000")
    try:
        async with AsyncClient(f"127.0.0.1:{server.port}") as client:
            data = [sse_daily_2019(), sse_minutes_20190201(), aapl_daily_2017()]
            await client.write_many(dict(data))
            for _ in range(2):
                for series, _bars in data:
                    await client.read(series)
            tier = (await client.stats()).hot_tier
            assert tier.capacity_bytes == 230_000
            assert 0 < tier.bytes <= 230_000
            assert tier.evictions > 0
            assert tier.series < 3
    finally:
        await server.stop(grace=1)


async def test_large_series_are_read_from_the_store(tmp_path: Path) -> None:
    server = await serve(tmp_path, hot_tier_max_series_records="100")
    try:
        async with AsyncClient(f"127.0.0.1:{server.port}") as client:
            series, bars = sse_daily_2019()
            await client.write(series, bars)
            for _ in range(2):
                result = await client.read(series, start_ms=bars[150].ts_ms, limit=3)
                assert [r.ts_ms for r in result.records] == [b.ts_ms for b in bars[150:153]]
            tier = (await client.stats()).hot_tier
            assert (tier.series, tier.hits, tier.misses) == (0, 0, 2)
    finally:
        await server.stop(grace=1)


async def test_the_tier_can_be_off(tmp_path: Path) -> None:
    server = await serve(tmp_path, hot_tier_bytes="0")
    try:
        async with AsyncClient(f"127.0.0.1:{server.port}") as client:
            series, bars = aapl_daily_2017()
            await client.write(series, bars)
            assert len((await client.read(series)).records) == len(bars)
            assert len((await client.read(series, limit=1)).records) == 1
            tier = (await client.stats()).hot_tier
            assert (tier.enabled, tier.series, tier.hits, tier.misses) == (False, 0, 0, 0)
    finally:
        await server.stop(grace=1)


def store_calls(server: Server) -> float:
    count = server.metrics.registry.get_sample_value("mdcache_store_call_duration_seconds_count")
    assert count is not None
    return count


class GatedStore:
    """The real SQLite store, whose reads can be held after reading (to have one in flight)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.open = threading.Event()
        self.open.set()
        self.held = threading.Semaphore(0)  # released by each read held at the gate

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def connect(self) -> StoreConnection:
        conn, gate, held = self.store.connect(), self.open, self.held

        class Gated:
            def __getattr__(self, name: str) -> Any:
                return getattr(conn, name)

            def read(self, *args: Any) -> Any:
                found = conn.read(*args)
                if not gate.is_set():
                    held.release()
                    gate.wait(10)
                return found

        return cast(StoreConnection, Gated())


@pytest.fixture
async def gated(tmp_path: Path) -> AsyncIterator[tuple[Server, GatedStore]]:
    url = f"sqlite:///{tmp_path / 'cache.sqlite3'}"
    store = GatedStore(open_store(url))
    quiet = {"health_interval": "3600", "usage_flush_interval": "3600"}  # no other store call
    server = Server(server_config(url, hot_tier_max_age="600", **quiet), cast(Store, store))
    await server.start()
    await settled(server)
    try:
        yield server, store
    finally:
        store.open.set()
        await server.stop(grace=1)


async def test_concurrent_misses_share_one_store_read(gated: tuple[Server, GatedStore]) -> None:
    server, store = gated
    async with AsyncClient(f"127.0.0.1:{server.port}") as client:
        series, bars = sse_daily_2019()
        await client.write(series, bars)
        before = store_calls(server)
        store.open.clear()
        windows = [(bars[i].ts_ms, bars[i + 9].ts_ms) for i in range(0, 200, 10)]
        reads = asyncio.gather(*(client.read(series, start_ms=lo, end_ms=hi) for lo, hi in windows))
        deadline = time.monotonic() + 10
        while server.cache.hot.misses < len(windows):  # all 20 wait for the store
            assert time.monotonic() < deadline, server.cache.hot.misses
            await asyncio.sleep(0.01)
        store.open.set()
        results = await reads
        assert store_calls(server) - before == 1  # 20 readers, one whole-series read
        for (lo, hi), result in zip(windows, results, strict=True):
            expected = [b.ts_ms for b in bars if lo <= b.ts_ms <= hi]
            assert [r.ts_ms for r in result.records] == expected
        tier = (await client.stats()).hot_tier
        assert (tier.series, tier.misses, tier.hits) == (1, 20, 0)


async def test_a_reader_after_a_write_never_joins_an_older_shared_read(
    gated: tuple[Server, GatedStore],
) -> None:
    server, store = gated
    async with AsyncClient(f"127.0.0.1:{server.port}") as client:
        series, bars = sse_daily_2019()
        await client.write(series, bars[:100])
        store.open.clear()
        before = asyncio.ensure_future(client.read(series))
        assert await asyncio.to_thread(store.held.acquire, timeout=10)  # it read 100 bars
        await client.write(series, bars[100:])  # on the other worker, acknowledged
        after = asyncio.ensure_future(client.read(series))
        assert await asyncio.to_thread(store.held.acquire, timeout=10)  # a read of its own
        store.open.set()
        assert len((await before).records) == 100  # began before the write: either is right
        assert len((await after).records) == len(bars)
        assert len((await client.read(series)).records) == len(bars)  # nothing stale held


async def test_a_hit_never_reaches_the_store_and_a_write_behind_its_back_shows_by_max_age(
    tmp_path: Path,
) -> None:
    """One server alone on its store answers held series with no store call at all; a
    write made behind its back (not through it, nor through the change feed) shows once
    the held copy is read again, ``max_age`` after it was read: the safety net."""
    server = await serve(tmp_path, hot_tier_max_age="0.5")
    try:
        async with AsyncClient(f"127.0.0.1:{server.port}") as client:
            series, bars = sse_daily_2019()
            await client.write(series, bars[:100])
            await client.read(series)  # held from here on
            await asyncio.sleep(0.1)  # the read's background work done
            calls = store_calls(server)
            for _ in range(50):
                assert len((await client.read(series, limit=10)).records) == 10
            assert store_calls(server) == calls  # 50 hits, no store call
            other = open_store(f"sqlite:///{tmp_path / 'cache.sqlite3'}")  # behind its back
            conn = other.connect()
            key = SeriesKey(*series)
            conn.write([(key, [StoreRecord(b.ts_ms, b.payload) for b in bars[100:]])])
            conn.close()

            async def shown() -> bool:
                return len((await client.read(series)).records) == len(bars)

            await eventually(shown, 5)
    finally:
        await server.stop(grace=1)
