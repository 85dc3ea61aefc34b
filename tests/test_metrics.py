"""Prometheus metrics: scraped over HTTP from a real server after real calls."""

from __future__ import annotations

import asyncio
import sqlite3
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mdcache_client import AsyncClient, InvalidArgumentError, Record, Series, UnavailableError
from mdcache_server.app import Server
from mdcache_server.config import Config
from mdcache_server.errors import ConfigError
from mdcache_server.store.url import open_store

from .market_data import aapl_daily_2017
from .process import ServerProcess
from .support import server_config

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """Every sample at /metrics, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
async def metered(tmp_path: Path) -> AsyncIterator[Server]:
    url = f"sqlite:///{tmp_path / 'cache.sqlite3'}"
    srv = Server(server_config(url, metrics_listen="127.0.0.1:0", workers="2"), open_store(url))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop(grace=1)


async def test_calls_reads_store_pool_and_hot_tier_are_measured(metered: Server) -> None:
    series, bars = aapl_daily_2017()
    async with AsyncClient(f"127.0.0.1:{metered.port}", timeout=10) as client:
        await client.write(series, bars)
        await client.read_many([series, Series("MSFT", "kline", "1d")])  # a hit and a miss
        await client.read(series, limit=5)  # a hit (from the hot tier)
        with pytest.raises(InvalidArgumentError):
            await client.read(Series("", "kline", "1d"))
        stats = await client.stats()
    samples = await asyncio.to_thread(scrape, metered.metrics_endpoint.port)

    assert value(samples, "mdcache_calls_total", method="Write", status="OK") == 1
    assert value(samples, "mdcache_calls_total", method="Read", status="OK") == 2
    assert value(samples, "mdcache_calls_total", method="Read", status="INVALID_ARGUMENT") == 1
    count = value(samples, "mdcache_call_duration_seconds_count", method="Read", status="OK")
    total = value(samples, "mdcache_call_duration_seconds_sum", method="Read", status="OK")
    slowest = value(
        samples, "mdcache_call_duration_seconds_bucket", method="Read", status="OK", le="+Inf"
    )
    assert (count, slowest) == (2, 2)
    cumulative = [
        value(samples, "mdcache_call_duration_seconds_bucket", method="Read", status="OK", le=le)
        for le in ("0.0005", "0.005", "0.05", "0.5", "5.0", "10.0")
    ]
    assert cumulative == sorted(cumulative)
    assert cumulative[-1] == 2
    assert 0 < total < 10
    assert value(samples, "mdcache_series_reads_total", result="hit") == 2 == stats.hits
    assert value(samples, "mdcache_series_reads_total", result="miss") == 1 == stats.misses

    store_calls = value(samples, "mdcache_store_call_duration_seconds_count")
    assert store_calls >= 3  # the schema at start-up, the write, the cold reads, the counts
    assert value(samples, "mdcache_store_call_duration_seconds_sum") > 0
    assert value(samples, "mdcache_pool_workers") == 2
    assert value(samples, "mdcache_pool_max_pending") == 256
    assert value(samples, "mdcache_pool_in_flight") == 0
    assert value(samples, "mdcache_pool_queue_depth") == 0
    assert value(samples, "mdcache_pool_saturation") == 0
    assert stats.hot_tier.bytes > 0
    assert value(samples, "mdcache_hot_tier_bytes") == stats.hot_tier.bytes


async def test_each_server_has_a_registry_of_its_own(metered: Server, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    other = Server(server_config(url), open_store(url))
    assert other.metrics.registry is not metered.metrics.registry
    async with AsyncClient(f"127.0.0.1:{metered.port}", timeout=10) as client:
        await client.stats()
    labels = {"method": "Stats", "status": "OK"}
    assert metered.metrics.registry.get_sample_value("mdcache_calls_total", labels) == 1
    assert other.metrics.registry.get_sample_value("mdcache_calls_total", labels) is None
    assert other.metrics_endpoint.listen == ""  # off unless configured


@pytest.mark.parametrize("listen", ["localhost", "127.0.0.1:http", "127.0.0.1:70000"])
def test_a_bad_metrics_address_is_a_configuration_error(listen: str) -> None:
    with pytest.raises(ConfigError, match=r"--metrics-listen=.*must be HOST:PORT"):
        Config.load({"metrics_listen": listen}, {})


def test_the_served_process_exposes_metrics_from_its_environment(tmp_path: Path) -> None:
    server = ServerProcess(
        "--data-dir", str(tmp_path), env={"MDCACHE_METRICS_LISTEN": "127.0.0.1:0"}
    )
    try:
        server.wait_serving()
        port = int(server.wait_event("metrics")["port"])
        samples = scrape(port)
        assert value(samples, "mdcache_pool_workers") == 2  # the default for SQLite
        assert ("mdcache_calls_total", frozenset()) not in samples
    finally:
        server.kill()


async def test_health_reconnects_and_evictions_are_measured(tmp_path: Path) -> None:
    """What the alerting rules watch: health, store reconnects, hot-tier evictions."""
    db = tmp_path / "cache.sqlite3"
    url = f"sqlite:///{db}?busy_timeout_ms=300"
    config = server_config(
        url,
        metrics_listen="127.0.0.1:0",
        workers="1",
        hot_tier_bytes="2000",
        health_interval="3600",  # the probes are the test's own (each drops a connection)
        usage_flush_interval="3600",
    )
    srv = Server(config, open_store(url))
    await srv.start()
    names = ("mdcache_health_serving", "mdcache_store_reconnects_total")
    try:
        port = srv.metrics_endpoint.port
        samples = await asyncio.to_thread(scrape, port)
        assert [value(samples, name) for name in names] == [1, 0]
        assert value(samples, "mdcache_hot_tier_evictions_total") == 0
        async with AsyncClient(f"127.0.0.1:{srv.port}", timeout=10) as client:
            bars = [Record(1_262_563_200_000 + i, '{"close": 107.4}') for i in range(5)]
            for symbol in ("A", "B", "C", "D"):  # each fits half the tier, not all four
                await client.write(Series(symbol, "kline", "1d"), bars)
                await client.read(Series(symbol, "kline", "1d"))
            evictions = (await client.stats()).hot_tier.evictions
            holder = sqlite3.connect(db, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")  # another process's write lock: an outage
            with pytest.raises(UnavailableError):
                await client.write(Series("A", "kline", "1d"), bars)
            await srv.health.probe_once()
            samples = await asyncio.to_thread(scrape, port)
            failed = value(samples, "mdcache_calls_total", method="Write", status="UNAVAILABLE")
            # each failed call, and the failed probe, dropped the worker's connection
            assert [value(samples, name) for name in names] == [0, failed + 1]
            holder.execute("ROLLBACK")
            holder.close()
            await srv.health.probe_once()
        samples = await asyncio.to_thread(scrape, port)
        assert value(samples, "mdcache_health_serving") == 1
        assert value(samples, "mdcache_hot_tier_evictions_total") == evictions > 0
    finally:
        await srv.stop(grace=1)
