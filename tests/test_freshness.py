"""Freshness where replicas share a store (issue 23, point 2), on both stores: held copies
kept by the change feed, and what a Read may promise (``cache/coherence.py``).

A writer that never pauses writes one-minute bars of the SSE Composite, one a call, through
one replica; readers read the latest bar through the other. Every answer is checked against
the writes acknowledged before it began: bounded (every Write acknowledged --read-freshness
before), read-your-writes (the writer's session token), strict (every Write acknowledged
before). A rule that answered every Read from the store would pass trivially, so the share
of Reads answered from held copies is checked too."""

from __future__ import annotations

import asyncio
import bisect
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.poll import eventually
from mdcache_client import AsyncClient, Record, Series
from mdcache_server.app import Server
from mdcache_server.model import Record as Stored
from mdcache_server.model import SeriesKey
from mdcache_server.store.base import Polled

from .conftest import STORES, store_url_of
from .market_data import sse_minutes_20180813_17
from .support import running

BOUND = 1.0  # --read-freshness, the default


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from store_url_of(request.param, request, tmp_path)


@asynccontextmanager
async def pair(store_url: str, **settings: str) -> AsyncIterator[list[tuple[Server, AsyncClient]]]:
    """Two replicas of the store, following its change feed (on SQLite: the journal)."""
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(running(store_url, subscribe_relay="on", **settings))
            for _ in range(2)
        ]


@dataclass
class History:
    """The writer's acknowledgements: (wall clock when acknowledged, the bar's ts), in order."""

    acked: list[tuple[float, int]] = field(default_factory=list)
    token: str = ""

    def newest_before(self, at: float) -> int:
        """The newest bar acknowledged before ``at`` (0: none)."""
        i = bisect.bisect_left(self.acked, (at, -1))
        return self.acked[i - 1][1] if i else 0


async def never_pausing(client: AsyncClient, series: Series, history: History) -> None:
    bars = sse_minutes_20180813_17()[1]
    lap = 0
    while True:
        for bar in bars:
            ts = bar.ts_ms + lap * 7 * 86_400_000  # a week later each lap: always newer
            await client.write(series, [Record(ts, bar.payload)])
            history.acked.append((time.time(), ts))
            history.token = client.session_token
        lap += 1


async def check(
    store_url: str, consistency: str, session: bool, seconds: float = 3.0
) -> tuple[int, int, int]:
    """Violations, reads, and reads answered from the store (not held copies)."""
    series = Series("000001.SH", "kline", "1m")
    async with pair(store_url) as ((_, writer), (reading, reader)):
        await writer.write(series, [Record(1, "{}")])
        await reader.read(series)  # held on the reading replica from here on
        history = History()
        writing = asyncio.ensure_future(never_pausing(writer, series, history))
        await eventually(lambda: len(history.acked) > 20, 10)
        coherence = reading.cache.coherence
        assert coherence is not None
        from_store = coherence.served_from_store
        violations = reads = 0
        until = time.monotonic() + seconds
        try:
            while time.monotonic() < until:
                if session:
                    reader.session_token = history.token
                began = time.time()
                # Strict, or the session's own (acknowledged before its token was taken):
                # every one acknowledged before; else every one the bound before.
                strict = session or consistency == "strict"
                owed = history.newest_before(began if strict else began - BOUND)
                got = await reader.read(series, newest_first=True, limit=1, consistency=consistency)
                reads += 1
                violations += got.records[0].ts_ms < owed
        finally:
            writing.cancel()
            await asyncio.gather(writing, return_exceptions=True)
        return violations, reads, coherence.served_from_store - from_store


async def test_bounded_reads_are_never_older_than_the_bound(store_url: str) -> None:
    violations, reads, from_store = await check(store_url, "", session=False)
    assert violations == 0
    assert reads > 50
    assert from_store < reads / 2, (from_store, reads)  # most answered from held copies


async def test_a_session_reads_its_writes_through_another_replica(store_url: str) -> None:
    violations, reads, _ = await check(store_url, "bounded", session=True)
    assert violations == 0
    assert reads > 50


async def test_strict_reads_see_every_acknowledged_write(store_url: str) -> None:
    violations, reads, from_store = await check(store_url, "strict", session=False)
    assert violations == 0
    assert reads > 20
    assert from_store < reads / 2, (from_store, reads)  # a round of the feed, then held copies


async def test_a_stalled_feed_answers_from_the_store_then_catches_up(store_url: str) -> None:
    """Fault 3 of issue 26 in one process: the reading replica's feed stalls (its poller
    held); past the bound its Reads come from the store, fresh; released, held copies
    answer again."""
    series = Series("600519.SH", "kline", "1m")
    async with pair(store_url) as ((_, writer), (reading, reader)):
        await writer.write(series, [Record(1_000, '{"close": 1}')])
        await reader.read(series)
        coherence = reading.cache.coherence
        relay = reading.relay
        assert coherence is not None
        assert relay is not None
        held = threading.Event()
        relay._poller.submit(held.wait, 30)  # the next poll waits behind it
        try:
            await asyncio.sleep(BOUND * 1.2)
            from_store = coherence.served_from_store
            for i in range(2, 12):
                await writer.write(series, [Record(i * 1_000, f'{{"close": {i}}}')])
                got = await reader.read(series, newest_first=True, limit=1)
                assert got.records[0].ts_ms == i * 1_000  # from the store: fresh
            assert coherence.served_from_store - from_store == 10
        finally:
            held.set()

        async def caught_up() -> bool:
            before = coherence.served_from_store
            got = await reader.read(series, newest_first=True, limit=1)
            held = series in reading.cache.hot
            return got.records[0].ts_ms == 11_000 and coherence.served_from_store == before and held

        await eventually(caught_up, 10)  # answered from a held copy again


async def test_a_purge_through_one_replica_drops_the_others_copies(store_url: str) -> None:
    series = Series("600000.SH", "kline", "1d")
    async with pair(store_url) as ((_, writer), (reading, reader)):
        await writer.write(series, [Record(1_000, "{}"), Record(2_000, "{}")])

        async def held() -> bool:  # a fill the feed's copy of the write overtook is dropped
            assert len((await reader.read(series)).records) == 2
            return series in reading.cache.hot

        await eventually(held, 10)
        assert await writer.purge(before_ms=1_500, symbol=series.symbol) == 1

        async def dropped() -> bool:
            return series not in reading.cache.hot

        await eventually(dropped, 10)  # the purge's note came through the feed
        assert [r.ts_ms for r in (await reader.read(series)).records] == [2_000]
        await writer.write(series, [Record(3_000, "{}")])
        assert await writer.purge(before_ms=2_500, symbol=series.symbol) == 1
        reader.session_token = writer.session_token  # the purge's session: seen at once
        assert [r.ts_ms for r in (await reader.read(series)).records] == [3_000]


async def test_a_write_the_feed_gives_late_never_brings_back_what_a_purge_deleted(
    store_url: str,
) -> None:
    """The feed lags the store: a copy read from the store after a purge may get, from the
    feed, a Write the purge deleted (on TDengine the records and the purge's note travel
    through different vnodes). The record never comes back in an answer: such a copy
    answers only once the feed has passed its read, and the purge's note with it."""
    series = Series("601318.SH", "kline", "1d")
    key = SeriesKey(*series)
    async with pair(store_url, read_freshness="30") as ((_, writer), (reading, reader)):
        coherence, relay = reading.cache.coherence, reading.relay
        assert coherence is not None
        assert relay is not None
        await eventually(lambda: coherence.lag() < 30, 10)  # held copies may answer
        held = threading.Event()
        relay._poller.submit(held.wait, 30)  # the next poll waits behind it
        try:
            await asyncio.sleep(0.3)  # the poll in flight ends: the watermark stands still
            written = Record(1_000, '{"close": 43.1}')
            await writer.write(series, [written])
            assert await reader.purge(before_ms=2_000, symbol=series.symbol) == 1
            assert (await reader.read(series)).records == []  # a fill, after the purge
            late = Stored(written.ts_ms or 0, written.payload)
            coherence.polled(Polled([(key, late)], [], 0))  # the feed gives the Write alone
            for _ in range(3):
                assert (await reader.read(series)).records == []
        finally:
            held.set()

        async def held_again() -> bool:
            assert (await reader.read(series)).records == []
            copy = reading.cache.hot.peek(key)
            return copy is not None and coherence.settled(copy)

        await eventually(held_again, 10)  # the feed gave the Write and the purge: no record
