"""``mdcache monitor`` against a real server: one view, JSON lines, live until interrupted."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket

import pytest

from mdcache_client import AsyncClient, HotTierStats, MethodCalls, Series, Stats
from mdcache_server.app import Server
from mdcache_server.ops.monitor import Sample, rates

from .commands import amdcache, json_out
from .market_data import aapl_daily_2017
from .process import MDCACHE

SQLITE = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


async def fill(client: AsyncClient) -> None:
    series, bars = aapl_daily_2017()
    await client.write(series, bars)
    await client.read(series, limit=1)
    await client.read(Series("MSFT", "kline", "1d"))


@SQLITE
async def test_once_as_json_has_the_stats_and_calls_per_second(
    server: Server, client: AsyncClient
) -> None:
    await fill(client)
    args = ("monitor", "--once", "--json", "--interval", "0.5")
    result = await amdcache(*args, "--target", f"127.0.0.1:{server.port}")
    assert result.returncode == 0, result.stderr
    view = json_out(result)
    stats = view["stats"]
    assert (stats["records"], stats["series"], stats["symbols"]) == (251, 1, 1)
    assert (stats["hits"], stats["misses"], stats["hit_rate"]) == (1, 1, 0.5)
    assert stats["hot_symbols"] == {"AAPL": 1, "MSFT": 1}
    assert stats["hot_tier"]["enabled"] is True
    assert stats["retention"] == {"*": 7, "kline": 0, "adj_factor": 0}
    assert 0.5 <= view["seconds"] < 5
    rates = view["calls_per_second"]
    assert rates["Write"] == rates["Read"] == 0  # none in the interval
    assert rates["Stats"] == pytest.approx(1 / view["seconds"])  # the first sample's call


@SQLITE
async def test_once_as_text_shows_every_topic(server: Server, client: AsyncClient) -> None:
    await fill(client)
    args = ("monitor", "--once", "--interval", "0.2", "--target", f"127.0.0.1:{server.port}")
    result = await amdcache(*args)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"mdcache monitor  127.0.0.1:{server.port}  every 0.2s  ")
    topics = [line[:12].strip() for line in lines[2:] if line]
    assert topics == [
        "store",
        "records",
        "hit rate",
        "hot symbols",
        "hot tier",
        "evicted",
        "retention",
        "calls",
        "calls/s",
    ]
    assert "records      251 in 1 series of 1 symbols" in lines
    assert "hit rate     50.0%: 1 hits, 1 misses since " in result.stdout
    assert "hot symbols  AAPL 1, MSFT 1" in lines


@SQLITE
async def test_live_views_come_every_interval_until_interrupted(server: Server) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MDCACHE_")}
    environ["MDCACHE_TARGET"] = f"127.0.0.1:{server.port}"
    proc = await asyncio.create_subprocess_exec(
        *MDCACHE,
        "monitor",
        "--json",
        "--interval",
        "0.2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environ,
    )
    assert proc.stdout is not None
    try:
        views = [json.loads(await asyncio.wait_for(proc.stdout.readline(), 10)) for _ in range(3)]
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, stderr
    assert views[0]["calls_per_second"] is None  # nothing to compare the first with
    assert views[1]["calls_per_second"]["Stats"] > 0
    calls = [v["stats"]["calls"].get("Stats", {"calls": 0})["calls"] for v in views]
    assert calls == [0, 1, 2]


async def test_a_server_that_does_not_answer_is_an_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ("monitor", "--once", "--timeout", "1", "--target", f"127.0.0.1:{port}")
    result = await amdcache(*args)
    assert result.returncode == 1
    assert result.stderr.startswith(f"mdcache monitor: 127.0.0.1:{port}: UNAVAILABLE")


def stats(uptime: float, **calls: tuple[int, int]) -> Stats:
    tier = HotTierStats(False, 0, 0, 0, 0, 0, 0)
    return Stats(
        *(0, 0, 0, 0, 0, 0.0, {}, uptime, "sqlite", "3", 0, tier, 0, 0, 1, {}),
        calls={m: MethodCalls(*c) for m, c in calls.items()},
    )


def test_rates_are_differences_over_time_and_survive_a_restart() -> None:
    before = Sample(stats(100, Read=(1000, 10), Write=(50, 0)), at=10.0)
    after = Sample(stats(102, Read=(1400, 12), Write=(50, 0), Stats=(2, 0)), at=12.0)
    measured = rates(before, after)
    assert measured.calls == {"Read": 200.0, "Stats": 1.0, "Write": 0.0}
    assert measured.errors == {"Read": 1.0, "Stats": 0.0, "Write": 0.0}
    restarted = Sample(stats(1, Read=(30, 0)), at=14.0)
    assert rates(after, restarted).calls == {"Read": 15.0}
