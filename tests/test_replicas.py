"""Two real server processes on one SQLite file: writes cross over within the bound, and
Stats adds up both replicas' counters."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdcache_client import Client, Series

from .market_data import sse_daily_2019
from .process import ServerProcess

MAX_AGE = 0.5


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[Client, Client]]:
    settings = [
        "--data-dir",
        str(tmp_path),
        "--hot-tier-max-age",
        str(MAX_AGE),
        "--usage-flush-interval",
        "0.2",
    ]
    a = ServerProcess(*settings, "--replica-id", "a")
    b = ServerProcess(*settings, "--replica-id", "b")
    try:
        a.wait_serving()
        b.wait_serving()
        with Client(a.target) as client_a, Client(b.target) as client_b:
            yield client_a, client_b
    finally:
        a.kill()
        b.kill()


def test_a_write_through_one_is_seen_through_the_other_within_the_bound(
    replicas: tuple[Client, Client],
) -> None:
    a, b = replicas
    series, bars = sse_daily_2019()
    a.write(series, bars[:100])
    assert len(b.read(series).records) == 100  # b now holds the series in its hot tier
    a.write(series, bars[100:])
    written = time.monotonic()
    while len(b.read(series).records) != len(bars):
        assert time.monotonic() - written < MAX_AGE + 1, "b never saw a's write"
        time.sleep(0.02)
    seen_after = time.monotonic() - written
    assert seen_after <= MAX_AGE + 0.2
    assert b.stats().hot_tier.hits > 0  # b answered from memory until its copy aged out
    assert len(a.read(series).records) == len(bars)  # a's own write: at once


def test_stats_add_up_both_replicas(replicas: tuple[Client, Client]) -> None:
    a, b = replicas
    series, bars = sse_daily_2019()
    a.write(series, bars)
    a.read(series, limit=1)
    for _ in range(3):
        b.read(series, limit=1)
    b.read(Series("NOPE", "kline", "1d"))
    for client in (a, b):  # each sees the other's counters as of their last flush
        deadline = time.monotonic() + 10
        while (stats := client.stats()) and (stats.replicas, stats.hits, stats.misses) != (2, 4, 1):
            assert time.monotonic() < deadline, stats
            time.sleep(0.05)
        assert stats.hot_symbols == {"000001.SH": 4, "NOPE": 1}
        assert stats.records == len(bars)
