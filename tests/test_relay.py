"""The Subscribe relay: every replica's writes, through the store's change feed."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from mdcache_client import AsyncClient, Change, Record, Series
from mdcache_server.app import live_relay
from mdcache_server.errors import StoreUnavailable
from mdcache_server.live import hub as hub_module
from mdcache_server.live.delivery import Relayed
from mdcache_server.live.hub import Hub
from mdcache_server.live.relay import Relay
from mdcache_server.model import PurgeFilter, SeriesKey
from mdcache_server.model import Record as StoredRecord
from mdcache_server.processes import child_args
from mdcache_server.store import base
from mdcache_server.store.sqlite import SqliteStore
from mdcache_server.store.sqlite.changes import CHECK_SECONDS
from mdcache_server.store.url import open_store

from .conftest import STORES
from .support import replicas, server_config

QUOTES = Series("600519", "quote", "tick")
T0 = 1_700_000_000_000


def relay_of(store_url: str, **settings: str) -> Relay | None:
    config = server_config(store_url, **settings)
    return live_relay(config, open_store(store_url), Hub())


def test_the_relay_is_on_where_replicas_share_the_store(tmp_path: Path) -> None:
    sqlite = f"sqlite:///{tmp_path / 'cache.sqlite3'}"
    assert relay_of(sqlite) is None  # one server on its file: pushed directly
    assert relay_of(sqlite, subscribe_relay="on") is not None
    assert relay_of(sqlite, processes="2") is not None
    tdengine = "taos://root:taosdata@localhost:6030/market"
    assert relay_of(tdengine) is not None  # any server may have replicas: always
    assert relay_of(tdengine, subscribe_relay="off") is None
    assert relay_of("taosws://root:taosdata@localhost:6041/market") is None  # not built
    parent = server_config(sqlite, processes="2")
    args = child_args(parent, ["serve"], "127.0.0.1:50051", 0)
    assert args[args.index("--subscribe-relay") + 1] == "on"


@pytest.mark.parametrize("store_url", STORES, indirect=True)
async def test_replay_then_live_across_replicas_with_no_gap_or_duplicate(store_url: str) -> None:
    """A writer on one replica never pauses while a subscriber on the other replays from
    the store and goes live: every record once, in order (writes the read saw and the
    relay brings again are left out)."""
    got: list[Change] = []
    async with (
        replicas(store_url, 2, subscribe_relay="on") as (a, b),
        AsyncClient(a) as writer,
        AsyncClient(b) as reader,
    ):
        written = asyncio.Event()

        async def write() -> None:
            for i in range(100_000):
                await writer.write(QUOTES, [Record.of(T0 + i, {"price": 1688.0 + i})])
                if i == 30:
                    written.set()

        writing = asyncio.ensure_future(write())
        await written.wait()  # some written; more land during the replay, and after
        async with await reader.subscribe([QUOTES], since_ms=T0) as sub:

            async def collect() -> None:
                async for change in sub:
                    got.append(change)
                    if sum(not c.replayed for c in got) == 30:
                        return

            await asyncio.wait_for(collect(), 30)
        writing.cancel()
        await asyncio.gather(writing, return_exceptions=True)
    assert [c.record.ts_ms for c in got] == [T0 + i for i in range(len(got))]
    assert got[0].replayed
    assert sum(c.replayed for c in got) > 30


class Failing:
    """A real SQLite journal whose polls fail while ``down`` is set (a store outage)."""

    def __init__(self, feed: base.ChangeFeed) -> None:
        self.feed, self.down, self.starts, self.closes = feed, False, 0, 0
        self.journals = feed.journals

    def record(self, changes: Sequence[base.StoredChange]) -> None:
        self.feed.record(changes)

    def start(self) -> None:
        self.starts += 1
        self.feed.start()

    def note(self, forgotten: Sequence[PurgeFilter]) -> None:
        self.feed.note(forgotten)

    def mark(self) -> int:
        return self.feed.mark()

    def poll(self, wait: float) -> base.Polled:
        if self.down:
            raise StoreUnavailable("changes journal: disk I/O error")
        return self.feed.poll(wait)

    def close(self, *, exiting: bool = False) -> None:
        self.closes += 1
        self.feed.close()


async def test_an_interrupted_relay_ends_streams_and_starts_a_new_stream_id(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "cache.sqlite3")
    hub = Hub()
    feed = Failing(store.change_feed("replica"))
    relay = Relay(feed, hub)
    live = Relayed(relay)
    running = asyncio.ensure_future(relay.run())
    try:
        stream = hub.open([SeriesKey(*QUOTES)], "")
        await asyncio.wait_for(live.ready(), 15)
        epoch = hub.epoch
        change = (SeriesKey(*QUOTES), Record(T0, "{}"))
        await live.acknowledged([(change[0], [change[1]])])
        pushed = await asyncio.wait_for(stream.next(), 5)
        assert pushed.record.ts_ms == T0
        feed.down = True
        with pytest.raises(Exception, match="interrupted; subscribe again"):
            await asyncio.wait_for(stream.next(), 5)
        assert hub.epoch != epoch  # no resume may cross what was missed
        hub.close(stream)
        feed.down = False
        again = hub.open([SeriesKey(*QUOTES)], "")
        await asyncio.wait_for(live.ready(), 15)  # the next stream follows the feed again
        assert feed.starts == 2
        await live.acknowledged([(change[0], [change[1]])])
        pushed = await asyncio.wait_for(again.next(), 5)
        assert pushed.record.ts_ms == T0
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await asyncio.to_thread(relay.close)


async def test_the_relay_stops_following_when_nobody_may_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No stream for RESUME_SECONDS: the feed is released (a TDengine consumer polling
    costs CPU), and the next stream starts it again; no resume crosses the pause."""
    monkeypatch.setattr(hub_module, "RESUME_SECONDS", 0.2)
    hub = Hub()
    feed = Failing(SqliteStore(tmp_path / "cache.sqlite3").change_feed("replica"))
    relay = Relay(feed, hub)
    live = Relayed(relay)
    running = asyncio.ensure_future(relay.run())
    try:
        stream = hub.open([SeriesKey(*QUOTES)], "")
        await asyncio.wait_for(live.ready(), 15)
        await live.acknowledged([(SeriesKey(*QUOTES), [Record(T0, "{}")])])
        seq = (await asyncio.wait_for(stream.next(), 5)).seq
        hub.close(stream)
        deadline = time.monotonic() + 10
        while not feed.closes and time.monotonic() < deadline:  # noqa: ASYNC110 (a thread's)
            await asyncio.sleep(0.01)
        assert feed.closes == 1
        again = hub.open([SeriesKey(*QUOTES)], "")
        assert hub.since(again, seq) is None  # a resume from before the pause: replay
        await asyncio.wait_for(live.ready(), 15)
        assert feed.starts == 2
        await live.acknowledged([(SeriesKey(*QUOTES), [Record(T0 + 1, "{}")])])
        assert (await asyncio.wait_for(again.next(), 5)).record.ts_ms == T0 + 1
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await asyncio.to_thread(relay.close)


async def test_a_horizon_covers_a_change_another_replica_journals_late(tmp_path: Path) -> None:
    """A replay's read saw another replica's Write stored; that replica appends it to the
    journal a moment later, after this relay's polls found nothing. The horizon still
    counts it as early, so a subscriber that had it in the replay does not get it twice."""
    store = SqliteStore(tmp_path / "cache.sqlite3")
    hub = Hub()
    relay = Relay(store.change_feed("b"), hub)
    live = Relayed(relay)
    other = store.change_feed("a")  # the other replica's side of the journal
    key = SeriesKey(*QUOTES)
    running = asyncio.ensure_future(relay.run())
    try:
        stream = hub.open([key], "")
        await asyncio.wait_for(live.ready(), 15)
        mark = live.horizon()  # just after the replay's read
        await asyncio.sleep(0.1)  # about ten empty polls go by
        await asyncio.to_thread(other.record, [(key, StoredRecord(T0, "{}"))])
        pushed = await asyncio.wait_for(stream.next(), 5)
        assert pushed.seq <= await asyncio.wait_for(mark, 5)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await asyncio.to_thread(relay.close)
        other.close()


def test_writes_are_journalled_only_while_a_replica_follows(tmp_path: Path) -> None:
    """Replicas nobody subscribes to write no journal (it cost --processes writes about
    a third of their rate); a follower is ready once every writer has looked again."""
    store = SqliteStore(tmp_path / "cache.sqlite3")
    writer, follower = store.change_feed("a"), store.change_feed("b")
    journal = sqlite3.connect(tmp_path / "cache.sqlite3-changes")
    key = SeriesKey(*QUOTES)
    try:
        writer.record([(key, StoredRecord(T0, "{}"))])
        assert journal.execute("SELECT COUNT(*) FROM changes").fetchone() == (0,)
        follower.start()  # heartbeat, then waits for the writers to look again
        writer.record([(key, StoredRecord(T0 + 1, "{}"))])
        assert follower.poll(1.0).changes == [(key, StoredRecord(T0 + 1, "{}"))]
        follower.close()
        time.sleep(CHECK_SECONDS)
        writer.record([(key, StoredRecord(T0 + 2, "{}"))])
        assert journal.execute("SELECT COUNT(*) FROM changes").fetchone() == (1,)
    finally:
        journal.close()
        writer.close()
