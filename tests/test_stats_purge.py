"""``mdcache stats`` and ``mdcache purge`` against a real server."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest

from mdcache_client import AsyncClient, Series
from mdcache_server.app import Server

from .commands import amdcache, json_out, mdcache
from .market_data import aapl_daily_2017, sse_daily_2019

JULY_2017_MS = int(datetime(2017, 7, 1, tzinfo=UTC).timestamp() * 1000)


async def test_stats_as_json_is_the_clients_stats(server: Server, client: AsyncClient) -> None:
    series, bars = aapl_daily_2017()
    await client.write(series, bars)
    await client.read(series)
    result = await amdcache("stats", "--json", "--target", f"127.0.0.1:{server.port}")
    assert result.returncode == 0, result.stderr
    shown = json_out(result)
    stats = await client.stats()
    assert (shown["records"], shown["series"], shown["symbols"]) == (251, 1, 1)
    assert (shown["hits"], shown["misses"], shown["hot_symbols"]) == (1, 0, {"AAPL": 1})
    assert shown["store"] == stats.store
    assert shown["retention"] == dict(stats.retention)
    assert shown["calls"]["Write"] == {"calls": 1, "errors": 0}
    assert shown["hot_tier"]["capacity_bytes"] == stats.hot_tier.capacity_bytes


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_stats_as_text_and_reset(server: Server, client: AsyncClient) -> None:
    series, bars = aapl_daily_2017()
    await client.write(series, bars)
    await client.read(series)
    result = await amdcache("stats", "--reset", "--target", f"127.0.0.1:{server.port}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("store        sqlite ")
    assert lines[1] == "records      251 in 1 series of 1 symbols"
    assert lines[2].startswith("hit rate     100.0%: 1 hits, 0 misses since ")
    assert lines[3] == "hot symbols  AAPL 1"
    assert lines[6] == "retention    adj_factor kept, kline kept, default 7 days"
    assert lines[7] == "calls        Read 1, Write 1"
    assert (await client.stats()).hits == 0, "--reset did not start the counters anew"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_purge_before_a_date_for_one_symbol_prints_the_count(
    server: Server, client: AsyncClient
) -> None:
    aapl, bars = aapl_daily_2017()
    index, sse = sse_daily_2019()
    await client.write_many({aapl: bars, index: sse})
    before_july = sum(1 for b in bars if b.ts_ms is not None and b.ts_ms < JULY_2017_MS)
    target = ("--target", f"127.0.0.1:{server.port}")
    result = await amdcache("purge", "--before", "2017-07-01", "--symbol", "AAPL", *target)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"purged {before_july} records stamped before 2017-07-01 00:00:00 UTC (symbol AAPL)\n"
    )
    left = await client.read(aapl)
    assert len(left.records) == 251 - before_july
    assert min(r.ts_ms or 0 for r in left.records) >= JULY_2017_MS

    result = await amdcache("purge", "--older-than-days", "3650", "--data-type", "kline", *target)
    assert result.stdout == "purged 0 records older than 3,650 days (data_type kline)\n"
    result = await amdcache(
        "purge", "--before", str(2**42), "--data-type", "kline", *target, "--json"
    )
    assert json_out(result) == {
        "deleted": 251 - before_july + len(sse),
        "before_ms": 2**42,
        "older_than_days": None,
        "symbol": None,
        "data_type": "kline",
    }
    assert not (await client.read(Series("000001.SH", "kline", "1d"))).hit


def test_purge_asks_for_a_cutoff_and_a_valid_one() -> None:
    missing = mdcache("purge", "--symbol", "AAPL")
    assert missing.returncode == 2
    assert "one of the arguments --older-than-days --before is required" in missing.stderr
    bad = mdcache("purge", "--before", "last tuesday")
    assert bad.returncode == 2
    assert "'last tuesday' is neither epoch milliseconds nor an ISO date" in bad.stderr


def test_a_server_that_does_not_answer_is_an_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        target = f"127.0.0.1:{s.getsockname()[1]}"
    for command in (["stats"], ["purge", "--older-than-days", "30"]):
        result = mdcache(*command, "--target", target, "--timeout", "1")
        assert result.returncode == 1
        assert result.stderr.startswith(f"mdcache {command[0]}: {target}: UNAVAILABLE")
