"""get_or_load against a real server: hits, misses, partial windows, single flight, fallback."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from mdcache_client import (
    AsyncClient,
    Client,
    LoadResult,
    Record,
    Series,
    Source,
    UnavailableError,
    Window,
)
from mdcache_server.app import Server
from mdcache_server.store.url import open_store

from .market_data import aapl_daily_2017
from .support import server_config

SQLITE = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)

DAY = 86_400_000
SERIES, BARS = aapl_daily_2017()
# January 2017: a Sunday to a Tuesday; its first bar is on Tuesday the 3rd, 2 days in.
JANUARY = Window(int(datetime(2017, 1, 1, tzinfo=UTC).timestamp() * 1000), BARS[19].ts_ms)
JANUARY_BARS = [b for b in BARS if b.ts_ms in JANUARY]
HOLIDAYS = 3 * DAY


class Upstream:
    """A loader that counts its calls and answers the year's bars (the slow upstream)."""

    def __init__(self, records: Iterable[Record] = BARS) -> None:
        self.records = list(records)
        self.calls = 0

    def load(self, series: Series, window: Window) -> list[Record]:
        self.calls += 1
        return self.records

    async def aload(self, series: Series, window: Window) -> list[Record]:
        return self.load(series, window)


@pytest.fixture
def refused() -> Iterator[str]:
    """The address of a port that refuses connections: a cache that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening
        yield f"127.0.0.1:{sock.getsockname()[1]}"


async def server_calls(client: AsyncClient, method: str) -> int:
    calls = (await client.stats()).calls.get(method)
    return calls.calls if calls else 0


@SQLITE
async def test_a_miss_loads_writes_back_then_hits(client: AsyncClient) -> None:
    upstream = Upstream()
    first = await client.get_or_load(SERIES, JANUARY, upstream.aload, tolerance_ms=HOLIDAYS)
    again = await client.get_or_load(SERIES, JANUARY, upstream.aload, tolerance_ms=HOLIDAYS)
    assert (first.source, again.source, upstream.calls) == (Source.LOADER, Source.CACHE, 1)
    assert first.records == again.records == JANUARY_BARS  # the window only, oldest first
    assert len(first.records) == 20
    everything = await client.read(SERIES)
    assert len(everything.records) == 251  # all the loader gave was written back


@SQLITE
async def test_tolerance_covers_edges_without_bars(client: AsyncClient) -> None:
    await client.write(SERIES, BARS)
    upstream = Upstream()
    strict = await client.get_or_load(SERIES, JANUARY, upstream.aload)
    assert strict.source is Source.LOADER  # no bar on Jan 1: with no tolerance, a partial window
    tolerant = await client.get_or_load(SERIES, JANUARY, upstream.aload, tolerance_ms=2 * DAY)
    assert tolerant.source is Source.CACHE
    assert tolerant.records == strict.records == JANUARY_BARS


@SQLITE
@pytest.mark.parametrize(
    "cached",
    [
        pytest.param(slice(10, None), id="start-missing"),
        pytest.param(slice(0, 10), id="end-missing"),
    ],
)
async def test_a_partial_window_is_reloaded(client: AsyncClient, cached: slice) -> None:
    await client.write(SERIES, JANUARY_BARS[cached])
    upstream = Upstream()
    loaded = await client.get_or_load(SERIES, JANUARY, upstream.aload, tolerance_ms=HOLIDAYS)
    assert (loaded.source, upstream.calls, loaded.records) == (Source.LOADER, 1, JANUARY_BARS)
    hit = await client.get_or_load(SERIES, JANUARY, upstream.aload, tolerance_ms=HOLIDAYS)
    assert (hit.source, upstream.calls) == (Source.CACHE, 1)


@SQLITE
async def test_single_flight_asyncio(client: AsyncClient) -> None:
    upstream = Upstream()
    results = await asyncio.gather(
        *(
            client.get_or_load(SERIES, JANUARY, upstream.aload, tolerance_ms=HOLIDAYS)
            for _ in range(20)
        )
    )
    assert upstream.calls == 1
    assert {r.source for r in results} == {Source.LOADER}
    assert all(r.records == JANUARY_BARS for r in results)
    assert (await server_calls(client, "Read"), await server_calls(client, "Write")) == (1, 1)


def twenty_blocking_calls(target: str) -> tuple[int, list[LoadResult]]:
    """20 threads ask for one series; the load waits until all 20 share it (at most 5 s)."""
    upstream = Upstream()
    with Client(target, timeout=10) as client:
        key = (SERIES, JANUARY, HOLIDAYS, True, None)  # get_or_load's single-flight key

        def load(series: Series, window: Window) -> list[Record]:
            deadline = time.monotonic() + 5
            while client._cache_aside.flight.callers(key) < 20 and time.monotonic() < deadline:
                time.sleep(0.005)
            return upstream.load(series, window)

        start = threading.Barrier(20)

        def call(_: int) -> LoadResult:
            start.wait()
            return client.get_or_load(SERIES, JANUARY, load, tolerance_ms=HOLIDAYS)

        with ThreadPoolExecutor(20) as threads:
            results = list(threads.map(call, range(20)))
    return upstream.calls, results


@SQLITE
async def test_single_flight_blocking(server: Server, client: AsyncClient) -> None:
    calls, results = await asyncio.to_thread(twenty_blocking_calls, f"127.0.0.1:{server.port}")
    assert calls == 1
    assert {r.source for r in results} == {Source.LOADER}
    assert all(r.records == JANUARY_BARS for r in results)
    assert (await server_calls(client, "Read"), await server_calls(client, "Write")) == (1, 1)


@SQLITE
async def test_a_loader_error_reaches_every_caller_and_is_not_cached(client: AsyncClient) -> None:
    failures = 0

    async def failing(series: Series, window: Window) -> list[Record]:
        nonlocal failures
        failures += 1
        raise ConnectionError("upstream is down")

    outcomes = await asyncio.gather(
        *(client.get_or_load(SERIES, JANUARY, failing) for _ in range(20)), return_exceptions=True
    )
    assert failures == 1
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    assert len({id(o) for o in outcomes}) == 1  # the loader's own exception, shared
    assert await server_calls(client, "Write") == 0
    upstream = Upstream()  # the failed load left nothing in flight: the next call loads anew
    result = await client.get_or_load(SERIES, JANUARY, upstream.aload)
    assert (result.source, upstream.calls) == (Source.LOADER, 1)


async def test_fallback_when_the_cache_is_down(
    refused: str, caplog: pytest.LogCaptureFixture
) -> None:
    upstream = Upstream()
    caplog.set_level(logging.WARNING, logger="mdcache_client")
    async with AsyncClient(refused, timeout=2) as client:
        result = await client.get_or_load(SERIES, JANUARY, upstream.aload)
    assert (result.source, result.records, upstream.calls) == (Source.FALLBACK, JANUARY_BARS, 1)
    [warning] = caplog.records
    assert warning.levelno == logging.WARNING
    assert "mdcache unreachable, loading AAPL/kline/1d from the loader" in warning.getMessage()
    assert "UNAVAILABLE" in warning.getMessage()


def blocking_fallback(target: str) -> tuple[LoadResult, int]:
    upstream = Upstream()
    with Client(target, timeout=2) as client:
        return client.get_or_load(SERIES, JANUARY, upstream.load), upstream.calls


async def test_fallback_blocking(refused: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mdcache_client")
    result, calls = await asyncio.to_thread(blocking_fallback, refused)
    assert (result.source, result.records, calls) == (Source.FALLBACK, JANUARY_BARS, 1)
    assert "mdcache unreachable" in caplog.records[0].getMessage()


async def test_without_fallback_an_outage_raises(refused: str) -> None:
    upstream = Upstream()
    async with AsyncClient(refused, timeout=2, fallback=False) as client:
        with pytest.raises(UnavailableError):
            await client.get_or_load(SERIES, JANUARY, upstream.aload)
    async with AsyncClient(refused, timeout=2) as client:
        with pytest.raises(UnavailableError):
            await client.get_or_load(SERIES, JANUARY, upstream.aload, fallback=False)
    assert upstream.calls == 0


@SQLITE
async def test_a_failed_write_back_is_logged_and_the_load_returned(
    client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mdcache_client")
    bad = Upstream([BARS[0], Record(BARS[1].ts_ms, "{not json")])
    result = await client.get_or_load(SERIES, JANUARY, bad.aload)
    assert (result.source, result.records) == (Source.LOADER, bad.records)
    [warning] = caplog.records
    assert "write-back of 2 records to AAPL/kline/1d failed: INVALID_ARGUMENT" in (
        warning.getMessage()
    )
    assert not (await client.read(SERIES)).hit  # the rejected write stored nothing


@SQLITE
async def test_records_without_timestamps_are_refused(client: AsyncClient) -> None:
    stampless = Upstream([Record.of(None, {"close": 1.0})])
    with pytest.raises(ValueError, match="need ts_ms"):
        await client.get_or_load(SERIES, JANUARY, stampless.aload)
    with pytest.raises(ValueError, match="start_ms <= end_ms"):
        Window(2, 1)


@pytest.fixture
async def small_reads(store_url: str) -> AsyncIterator[AsyncClient]:
    """A client of a server that answers at most 10 records per Read."""
    srv = Server(server_config(store_url, max_read_records="10"), open_store(store_url))
    await srv.start()
    try:
        async with AsyncClient(f"127.0.0.1:{srv.port}", timeout=10) as client:
            yield client
    finally:
        await srv.stop(grace=1)


@SQLITE
async def test_a_window_larger_than_one_read_is_judged_by_its_newest_record(
    small_reads: AsyncClient,
) -> None:
    await small_reads.write(SERIES, BARS)
    year = Window(BARS[0].ts_ms, BARS[-1].ts_ms)
    upstream = Upstream()
    result = await small_reads.get_or_load(SERIES, year, upstream.aload)
    assert (result.source, result.truncated, upstream.calls) == (Source.CACHE, True, 0)
    assert result.records == BARS[:10]
