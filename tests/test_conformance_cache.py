"""Cache behaviour that depends on the store, on every store: retention, capacity eviction,
hit statistics across restarts, warming."""

from __future__ import annotations

import asyncio
import json
import time

from harness.poll import eventually
from mdcache_client import Record, Series

from .market_data import aapl_daily_2017, sse_daily_2019, sse_minutes_20190201
from .support import running

DAY = 86_400_000


async def test_retention_rules_by_data_type_and_timeframe(store_url: str) -> None:
    now = time.time_ns() // 1_000_000
    ages = (0.5, 2, 10, 40)  # days
    series = {
        Series("000001", "quote", "snapshot"): 1,  # quote=1
        Series("000001", "fund_flow", "1d"): 7,  # *=7
        Series("000001", "kline", "1m"): 30,  # kline/1m=30
        Series("000001", "kline", "1d"): 0,  # kline=0: kept
    }
    async with running(store_url, retention="*=7,quote=1,kline=0,kline/1m=30") as (_, client):
        await client.write_many(
            {s: [Record(now - int(d * DAY), json.dumps(d)) for d in ages] for s in series}
        )
    async with running(store_url, retention="*=7,quote=1,kline=0,kline/1m=30") as (_, client):
        expected = {
            "quote/snapshot": [0.5],
            "fund_flow/1d": [2, 0.5],
            "kline/1m": [10, 2, 0.5],
            "kline/1d": [40, 10, 2, 0.5],
        }

        async def applied() -> bool:  # retention runs in the background at start-up
            results = await client.read_many(list(series), newest_first=False)
            kept = {f"{r.series.data_type}/{r.series.timeframe}": r.values() for r in results}
            return kept == {k: sorted(v, reverse=True) for k, v in expected.items()}

        await eventually(applied)
        stats = await client.stats()
        assert stats.retention == {"*": 7, "quote": 1, "kline": 0, "kline/1m": 30}


async def test_retention_runs_on_its_interval(store_url: str) -> None:
    async with running(store_url, retention="*=1", retention_interval="0.2") as (_, client):
        series = Series("600519", "quote", "1m")
        now = time.time_ns() // 1_000_000
        await client.write(series, [Record(now - 2 * DAY, "1"), Record(now, "2")])

        async def purged() -> bool:
            return [r.payload for r in (await client.read(series)).records] == ["2"]

        await eventually(purged)


async def test_capacity_evicts_least_recently_read_series(store_url: str) -> None:
    daily, bars = sse_daily_2019()  # 244
    minutes, minute_bars = sse_minutes_20190201()  # 239
    apple, apple_bars = aapl_daily_2017()  # 251
    settings = {"max_records": "500", "capacity_interval": "0.2", "usage_flush_interval": "0.1"}
    async with running(store_url, **settings) as (_, client):
        await client.write_many({daily: bars, minutes: minute_bars})
        await client.read(minutes, limit=1)
        await asyncio.sleep(0.01)
        await client.read(daily, limit=1)
        await client.write(apple, apple_bars)  # 734 records: over by 234

        async def evicted() -> bool:
            return (await client.stats()).evicted_series > 0

        await eventually(evicted)
        stats = await client.stats()
        # apple was never read and goes first; then minutes, read before daily.
        assert (stats.evicted_series, stats.evicted_records) == (1, 251)
        assert stats.records == 483
        assert not (await client.read(apple)).hit
        assert (await client.read(daily)).hit


async def test_hit_statistics_survive_a_restart(store_url: str) -> None:
    series, bars = aapl_daily_2017()
    # A generous freshness bound: on TDengine a replica just started answers from the store
    # while its feed's watermark is older than the bound, which a busy machine can make it.
    settings = {"replica_id": "replica-a", "warm_seconds": "5", "read_freshness": "30"}
    async with running(store_url, **settings) as (_, client):
        await client.write(series, bars)
        for _ in range(3):
            await client.read(series, limit=1)
        await client.read(Series("AAPL", "quote", "1m"))
        first = await client.stats()
    async with running(store_url, **settings) as (server, client):
        assert series in server.cache.hot  # warmed from the stored statistics
        stats = await client.stats()
        assert (stats.hits, stats.misses, stats.replicas) == (3, 1, 1)
        assert stats.hot_symbols == {"AAPL": 4}
        assert stats.counting_since_ms == first.counting_since_ms
        await client.read(series, limit=1)
        assert (await client.stats()).hot_tier.hits == 1  # served from the warmed tier
        await client.stats(reset=True)
    async with running(store_url, **settings) as (server, client):
        stats = await client.stats()
        assert (stats.hits, stats.misses, stats.hot_symbols) == (0, 0, {})
        assert stats.counting_since_ms > first.counting_since_ms
        assert len(server.cache.hot) == 0  # nothing read since the reset: nothing to warm


async def test_stats_add_up_replicas_on_one_store(store_url: str) -> None:
    series, bars = sse_daily_2019()
    # Replicas follow the change feed (SQLite: its journal); without it a second server
    # on one SQLite file does not start (tests/test_sqlite_servers.py).
    fast = {"usage_flush_interval": "0.1", "subscribe_relay": "on"}
    async with (
        running(store_url, replica_id="a", **fast) as (_, a),
        running(store_url, replica_id="b", **fast) as (_, b),
    ):
        await a.write(series, bars)
        await a.read(series, limit=1)
        await b.read(series, limit=1)
        await b.read(series, limit=1)
        await b.read(Series("X", "kline", "1d"))

        async def summed() -> bool:
            stats = await a.stats()
            return (stats.replicas, stats.hits, stats.misses) == (2, 3, 1)

        await eventually(summed)
        assert (await a.stats()).hot_symbols == {"000001.SH": 3, "X": 1}
        await b.stats(reset=True)

        async def reset_everywhere() -> bool:
            stats = await a.stats()
            return (stats.hits, stats.misses) == (0, 0)

        await eventually(reset_everywhere)
