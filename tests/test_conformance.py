"""The conformance suite: every store, through the real server and client, answers alike.

Runs on SQLite always, on TDengine when MDCACHE_TEST_TDENGINE_URL is set, and on a REPLICA 3
database of a three-node TDengine cluster when a bundle is at hand (MDCACHE_TEST_TDENGINE_HOME).
Windows are inclusive at both ends; a purge deletes records with ts < cutoff.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from mdcache_client import AsyncClient, InvalidArgumentError, Record, Series
from mdcache_server.app import Server
from mdcache_server.store.url import open_store

from .conftest import CLUSTER, STORES, store_url_of
from .market_data import aapl_daily_2017, sse_daily_2019, sse_minutes_20190201
from .support import server_config


@pytest.fixture(params=[*STORES, CLUSTER])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every store of conftest's, and a REPLICA 3 database on a three-node cluster."""
    yield from store_url_of(request.param, request, tmp_path)


@pytest.fixture(params=["hot tier", "store only"])
def server_settings(request: pytest.FixtureRequest) -> dict[str, str]:
    """Every test twice: with the hot tier (the default), and without it, every Read
    answered by the store (``read_answer``: records encoded by SQLite in one step)."""
    return {"hot_tier_bytes": "0"} if request.param == "store only" else {}


DAY = 86_400_000
HOSTILE = Series("000001'; DROP TABLE records; --", 'fund"flow\\n\\', "1分钟 `x`")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def test_write_then_read_returns_every_record_verbatim(client: AsyncClient) -> None:
    series, bars = sse_daily_2019()
    assert await client.write(series, bars) == 244
    result = await client.read(series)
    assert result.hit
    assert not result.truncated
    assert result.series == series
    assert [(r.ts_ms, r.payload) for r in result.records] == [(b.ts_ms, b.payload) for b in bars]
    assert result.records[0].json()["close"] == 2465.29


async def test_payload_is_carried_byte_for_byte(client: AsyncClient) -> None:
    series = Series("600519", "quote", "tick")
    payloads = [
        '{"b": 1, "a": 2}',
        '  {"big": 123456789012345678901234567890, "price": 1.10}  ',
        '"plain string"',
        '[1, 2.50, {"nested": [true, false, null]}]',
        '{"name": "贵州茅台 🐂", "esc": "\\u00e9\\n"}',
        "12345678901234567890",
    ]
    records = [Record(1_700_000_000_000 + i, p) for i, p in enumerate(payloads)]
    await client.write(series, records)
    result = await client.read(series)
    assert [r.payload for r in result.records] == payloads
    assert result.records[1].json()["big"] == 123456789012345678901234567890


async def test_same_timestamp_replaces_the_record(client: AsyncClient) -> None:
    series, bars = aapl_daily_2017()
    await client.write(series, bars[:10])
    replaced = Record(bars[3].ts_ms, '{"close": 1}')
    assert await client.write(series, [replaced]) == 1
    result = await client.read(series)
    assert len(result.records) == 10
    assert result.records[3] == replaced
    assert (await client.stats()).records == 10


async def test_a_timestamp_twice_in_one_call_keeps_the_last(client: AsyncClient) -> None:
    series = Series("AAPL", "quote", "1m")
    written = await client.write(
        series, [Record(1000, '"first"'), Record(2000, '"other"'), Record(1000, '"last"')]
    )
    assert written == 2
    result = await client.read(series)
    assert [(r.ts_ms, r.payload) for r in result.records] == [(1000, '"last"'), (2000, '"other"')]


async def test_window_is_inclusive_at_both_ends(client: AsyncClient) -> None:
    series, bars = sse_minutes_20190201()
    await client.write(series, bars)
    start, end = bars[10].ts_ms, bars[20].ts_ms
    result = await client.read(series, start_ms=start, end_ms=end)
    assert [r.ts_ms for r in result.records] == [b.ts_ms for b in bars[10:21]]
    just_inside = await client.read(series, start_ms=start + 1, end_ms=end - 1)
    assert [r.ts_ms for r in just_inside.records] == [b.ts_ms for b in bars[11:20]]
    only_start = await client.read(series, start_ms=bars[-3].ts_ms)
    assert len(only_start.records) == 3
    only_end = await client.read(series, end_ms=bars[2].ts_ms)
    assert len(only_end.records) == 3
    empty = await client.read(series, start_ms=bars[0].ts_ms + 1, end_ms=bars[1].ts_ms - 1)
    assert not empty.hit
    assert empty.records == []


async def test_limit_and_order(client: AsyncClient) -> None:
    series, bars = sse_minutes_20190201()
    await client.write(series, bars)
    oldest = await client.read(series, limit=5)
    assert [r.ts_ms for r in oldest.records] == [b.ts_ms for b in bars[:5]]
    assert oldest.truncated
    newest = await client.read(series, limit=5, newest_first=True)
    assert [r.ts_ms for r in newest.records] == [b.ts_ms for b in reversed(bars[-5:])]
    assert newest.truncated
    latest = await client.read(series, limit=1, newest_first=True)
    assert latest.records[0].payload == bars[-1].payload
    everything = await client.read(series, limit=len(bars))
    assert len(everything.records) == len(bars)
    assert not everything.truncated
    windowed = await client.read(
        series, start_ms=bars[100].ts_ms, end_ms=bars[199].ts_ms, limit=3, newest_first=True
    )
    assert [r.ts_ms for r in windowed.records] == [bars[i].ts_ms for i in (199, 198, 197)]


async def test_last_days_window(client: AsyncClient) -> None:
    series = Series("000001", "fund_flow", "1d")
    now = now_ms()
    ages = [0.5, 2, 4, 6, 8, 30]
    await client.write(
        series, [Record(now - int(d * DAY), json.dumps({"age_days": d})) for d in ages]
    )
    result = await client.read(series, last_days=5)
    assert [r.json()["age_days"] for r in result.records] == [4, 2, 0.5]


async def test_a_series_never_written_is_a_miss_not_an_error(client: AsyncClient) -> None:
    result = await client.read(Series("NOPE", "kline", "1d"))
    assert not result.hit
    assert result.records == []
    stats = await client.stats()
    assert (stats.hits, stats.misses) == (0, 1)


async def test_several_series_in_one_call(client: AsyncClient) -> None:
    daily, bars = sse_daily_2019()
    apple, apple_bars = aapl_daily_2017()
    written = await client.write_many({daily: bars, apple: apple_bars})
    assert written == len(bars) + len(apple_bars)
    missing = Series("MISSING", "kline", "1d")
    results = await client.read_many([apple, missing, daily], limit=1, newest_first=True)
    assert [r.series for r in results] == [apple, missing, daily]
    assert [r.hit for r in results] == [True, False, True]
    assert results[0].records[0].payload == apple_bars[-1].payload
    assert results[2].records[0].payload == bars[-1].payload


async def test_many_series(client: AsyncClient) -> None:
    batches = {
        Series(f"{600000 + i:06d}", "quote", "snapshot"): [
            Record(1_700_000_000_000 + j, json.dumps({"i": i, "j": j})) for j in range(3)
        ]
        for i in range(200)
    }
    assert await client.write_many(batches) == 600
    results = await client.read_many(list(batches), newest_first=True, limit=1)
    assert [r.records[0].json() for r in results] == [{"i": i, "j": 2} for i in range(200)]
    stats = await client.stats()
    assert (stats.records, stats.series, stats.symbols) == (600, 200, 200)


async def test_purge_deletes_older_than_cutoff_and_counts_exactly(client: AsyncClient) -> None:
    series, bars = sse_daily_2019()
    await client.write(series, bars)
    cutoff = bars[100].ts_ms
    assert await client.purge(before_ms=cutoff) == 100
    result = await client.read(series)
    assert result.records[0].ts_ms == cutoff
    assert len(result.records) == 144
    assert await client.purge(before_ms=cutoff) == 0


async def test_purge_default_is_seven_days(client: AsyncClient) -> None:
    series = Series("000001", "quote", "1m")
    now = now_ms()
    await client.write(
        series, [Record(now - d * DAY - 60_000, json.dumps(d)) for d in (1, 6, 7, 8, 30)]
    )
    assert await client.purge() == 3
    assert [r.json() for r in (await client.read(series)).records] == [6, 1]
    assert await client.purge(older_than_days=2) == 1


async def test_purge_per_symbol_and_per_data_type(client: AsyncClient) -> None:
    old = [Record(1_600_000_000_000 + i, str(i)) for i in range(5)]
    series = [
        Series("000001", "kline", "1d"),
        Series("000001", "fund_flow", "1d"),
        Series("600519", "kline", "1d"),
        Series("600519", "kline", "1m"),
        HOSTILE,
    ]
    await client.write_many({s: old for s in series})
    cutoff = 1_600_000_000_003
    assert await client.purge(before_ms=cutoff, symbol="000001") == 6
    assert await client.purge(before_ms=cutoff, data_type="kline") == 6
    assert await client.purge(before_ms=cutoff, symbol="600519", data_type="kline") == 0
    assert await client.purge(before_ms=cutoff, symbol=HOSTILE.symbol) == 3
    counts = [len(r.records) for r in await client.read_many(series)]
    assert counts == [2, 2, 2, 2, 2]
    assert await client.purge(before_ms=cutoff + 10, symbol="absent") == 0
    assert await client.purge(before_ms=cutoff + 10) == 10


async def test_stats_count_records_series_symbols_and_hits(client: AsyncClient) -> None:
    daily, bars = sse_daily_2019()
    minutes, minute_bars = sse_minutes_20190201()
    apple, apple_bars = aapl_daily_2017()
    await client.write_many({daily: bars, minutes: minute_bars, apple: apple_bars})
    for _ in range(3):
        await client.read(daily, limit=1)
    await client.read(minutes, limit=1)
    await client.read(apple, limit=1)
    await client.read(Series("AAPL", "kline", "1w"))  # a miss
    stats = await client.stats(top_n=1)
    assert stats.records == len(bars) + len(minute_bars) + len(apple_bars)
    assert (stats.series, stats.symbols) == (3, 2)
    assert (stats.hits, stats.misses) == (5, 1)
    assert stats.hit_rate == pytest.approx(5 / 6)
    assert stats.hot_symbols == {"000001.SH": 4}
    assert list((await client.stats()).hot_symbols.items()) == [("000001.SH", 4), ("AAPL", 2)]
    assert stats.store in ("sqlite", "tdengine")
    assert stats.store_version
    assert 0 < stats.uptime_seconds < 600
    assert abs(stats.counting_since_ms - now_ms()) < 600_000


async def test_special_characters_and_unicode_in_every_identifier(client: AsyncClient) -> None:
    records = [Record(1_700_000_000_000, '{"ok": "\'; DROP TABLE x; --"}')]
    assert await client.write(HOSTILE, records) == 1
    result = await client.read(HOSTILE)
    assert result.series == HOSTILE
    assert result.records == records
    assert (await client.read(HOSTILE, newest_first=True, limit=1)).records == records
    similar = Series("000001", 'fund"flow\\n\\', "1分钟 `x`")
    assert not (await client.read(similar)).hit
    stats = await client.stats()
    assert list(stats.hot_symbols) == [HOSTILE.symbol, "000001"]
    assert (stats.records, stats.series) == (1, 1)


async def test_identifier_of_64_bytes_is_accepted_and_65_rejected(client: AsyncClient) -> None:
    longest = Series("茅" * 21 + "x", "k" * 64, "t" * 64)  # 21 x 3 + 1 = 64 bytes
    await client.write(longest, [Record(1_700_000_000_000, "1")])
    assert (await client.read(longest)).records[0].payload == "1"
    with pytest.raises(InvalidArgumentError, match=r"series\[0\]\.series\.symbol"):
        await client.write(Series("茅" * 22, "k", "t"), [Record(1_700_000_000_000, "1")])


async def test_payload_at_the_limit_is_stored_and_over_it_rejected(client: AsyncClient) -> None:
    series = Series("600519", "fund_flow", "1d")
    at_limit = '"' + "é" * 32757 + "x" + '"'  # 2 + 65,514 + 1 = 65,517 bytes
    assert len(at_limit.encode()) == 65_517
    await client.write(series, [Record(1_700_000_000_000, at_limit)])
    assert (await client.read(series)).records[0].payload == at_limit
    over = '"' + "x" * 65_516 + '"'
    other = Series("600519", "kline", "1d")
    with pytest.raises(InvalidArgumentError, match=r"series\[1\]\.records\[1\]\.payload"):
        await client.write_many(
            {other: [Record(1, "1")], series: [Record(2, "2"), Record(3, over)]}
        )
    assert not (await client.read(other)).hit  # nothing of a rejected call is stored
    assert len((await client.read(series)).records) == 1


async def test_timestamp_range_edges(client: AsyncClient) -> None:
    series = Series("EDGE", "kline", "1d")
    first, last = 0, 4_102_444_799_999
    await client.write(series, [Record(first, '"1970"'), Record(last, '"2099"')])
    assert [r.ts_ms for r in (await client.read(series)).records] == [first, last]
    for bad in (-1, last + 1):
        with pytest.raises(InvalidArgumentError, match=r"series\[0\]\.records\[0\]\.ts_ms"):
            await client.write(series, [Record(bad, "0")])


async def test_a_record_without_timestamp_gets_the_time_of_caching(client: AsyncClient) -> None:
    series = Series("000001", "quote", "snapshot")
    before = now_ms()
    await client.write(series, [Record(None, '{"price": 10.5}')])
    after = now_ms()
    record = (await client.read(series)).records[0]
    assert before <= record.ts_ms <= after


async def test_bad_json_and_empty_fields_are_rejected_and_store_nothing(
    client: AsyncClient,
) -> None:
    good = Series("000001", "kline", "1d")
    cases = {
        "series[0].records[1].payload": {good: [Record(1, "1"), Record(2, "{bad json")]},
        "series[0].records[0].payload": {good: [Record(1, "NaN")]},
        "series[0].series.timeframe": {Series("000001", "kline", ""): [Record(1, "1")]},
        "series[0].series.data_type": {Series("000001", "", "1d"): [Record(1, "1")]},
        "series[0].records": {good: []},
    }
    for field, batches in cases.items():
        with pytest.raises(InvalidArgumentError) as caught:
            await client.write_many(batches)
        assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details.startswith(field + ":")
    assert (await client.stats()).records == 0


async def test_data_survives_a_restart(store_url: str) -> None:
    series, bars = sse_daily_2019()
    first = Server(server_config(store_url), open_store(store_url))
    await first.start()
    try:
        async with AsyncClient(f"127.0.0.1:{first.port}") as client:
            await client.write(series, bars)
    finally:
        await first.stop(grace=1)
    second = Server(server_config(store_url), open_store(store_url))
    await second.start()
    try:
        async with AsyncClient(f"127.0.0.1:{second.port}") as client:
            result = await client.read(series)
            assert [r.payload for r in result.records] == [b.payload for b in bars]
            assert (await client.stats()).records == len(bars)
    finally:
        await second.stop(grace=1)


async def test_stats_reset_starts_counting_anew(client: AsyncClient) -> None:
    series, bars = aapl_daily_2017()
    await client.write(series, bars)
    await client.read(series, limit=1)
    await client.read(Series("AAPL", "quote", "1m"))
    before = await client.stats(reset=True)
    assert (before.hits, before.misses, dict(before.hot_symbols)) == (1, 1, {"AAPL": 2})
    after = await client.stats()
    assert (after.hits, after.misses, dict(after.hot_symbols)) == (0, 0, {})
    assert after.counting_since_ms >= before.counting_since_ms
    assert after.records == len(bars)
    assert after.calls["Read"].calls == 2
    assert after.calls["Stats"].calls == 1
    assert after.calls["Write"].errors == 0
