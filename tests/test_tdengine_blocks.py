"""Result blocks read a column at a time, and TMQ messages freed, on a real TDengine server.

A relay on TDengine once kept every polled message (taospy's ``TaosResult(message)`` does
not free it): a server following a busy topic grew about 250-500 bytes a record written
until it ran out of memory (``python -m bench.soak`` measures it). These pin the decoder
to what taospy reads and each polled message to one free.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mdcache_server.errors import StoreError
from mdcache_server.model import Record, SeriesKey, Window
from mdcache_server.store.tdengine import TDengineStore, blocks, parse_url, sql
from mdcache_server.store.tdengine.changes import TopicFeed
from mdcache_server.store.tdengine.connector import NativeSession
from mdcache_server.store.tdengine.naming import series_table

from .conftest import tdengine_test_url
from .market_data import sse_minutes_20180813_17

pytestmark = pytest.mark.tdengine

KEY = SeriesKey("600519", "kline", "1d")


@pytest.fixture
def url() -> Iterator[str]:
    yield from tdengine_test_url()


@pytest.fixture
def store(url: str) -> TDengineStore:
    store = TDengineStore.from_url(url)
    conn = store.connect()
    conn.ensure_schema()
    conn.close()
    return store


@pytest.fixture
def session(url: str, store: TDengineStore) -> Iterator[NativeSession]:
    session = NativeSession.open(parse_url(url))
    yield session
    session.close()


def _records(n: int) -> list[Record]:
    """Real daily bars, and payloads that stress the decoder: unicode, quotes, a
    backslash, a newline, an empty object, one at the column's full width."""
    _, minutes = sse_minutes_20180813_17()
    bars = [Record(int(r.ts_ms or 0), r.payload) for r in minutes[: n - 4]]
    last = bars[-1].ts_ms
    odd = ['{"名称":"贵州茅台","note":"a \\"quoted\\" \\\\ back\\nslash"}', "{}", "[]"]
    odd.append(json.dumps({"pad": "x" * (65_517 - 11)}))
    return bars + [Record(last + (i + 1) * 86_400_000, p) for i, p in enumerate(odd)]


def test_columns_read_what_taospy_reads_row_by_row(
    store: TDengineStore, session: NativeSession
) -> None:
    records = _records(1204)
    conn = store.connect()
    try:
        conn.write([(KEY, records)])
    finally:
        conn.close()
    query = sql.read(
        store.options.database, series_table(KEY), None, None, newest_first=False, fetch=0
    )
    stamps, payloads = session.query_columns(query, sql.READ_COLUMNS)
    assert list(map(Record, stamps, payloads)) == records
    rows = [(int(t), str(p)) for t, p in session.query(query)]
    assert rows == list(zip(stamps, payloads, strict=True))


def test_a_column_of_another_kind_is_refused_not_misread(session: NativeSession) -> None:
    with pytest.raises(StoreError, match="column 0 is of type 8"):
        session.query_columns("SELECT server_version()", [blocks.Kind.INT64])
    with pytest.raises(StoreError, match="2 columns, 1 expected"):
        session.query_columns("SELECT 1, 'a'", [blocks.Kind.INT64])


def test_reads_through_the_store_are_exact(store: TDengineStore) -> None:
    records = _records(300)
    conn = store.connect()
    try:
        conn.write([(KEY, records)])
        (newest,) = conn.read([KEY], Window(None, None, limit=250, newest_first=True))
    finally:
        conn.close()
    assert newest.records == records[::-1][:250]
    assert newest.truncated


class Counting:
    """libtaos as the feed uses it, counting the messages polled and freed."""

    def __init__(self, lib: Any) -> None:
        self._lib = lib
        self.polled = 0
        self.freed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lib, name)

    def tmq_consumer_poll(self, consumer: Any, wait_ms: int) -> Any:
        message = self._lib.tmq_consumer_poll(consumer, wait_ms)
        self.polled += bool(message)
        return message

    def taos_free_result(self, result: Any) -> None:
        self.freed += 1
        self._lib.taos_free_result(result)


def test_every_polled_message_is_freed(store: TDengineStore) -> None:
    feed = store.change_feed("blocks")
    assert isinstance(feed, TopicFeed)
    records = _records(200)
    feed.start()
    counting = feed._lib = Counting(feed._lib)
    conn = store.connect()
    try:
        got: list[tuple[SeriesKey, Record]] = []
        deadline = time.monotonic() + 30
        for i in range(0, len(records), 20):  # ten writes, each polled: ten messages or more
            conn.write([(KEY, records[i : i + 20])])
            while len(got) < i + 20 and time.monotonic() < deadline:
                got += feed.poll(0.1).changes
    finally:
        conn.close()
        feed.close()
    assert got == [(KEY, r) for r in records]
    assert counting.polled >= 10
    assert counting.freed == counting.polled


def test_the_feed_reads_records_from_before_and_after_the_checks_were_added(
    url: str, store: TDengineStore, taos_conn: Any
) -> None:
    """A feed following a database of an earlier version (records without ``chk``) while
    a replica of this one adds the column: the blocks of both shapes are read, two
    columns and three."""
    db = store.options.database
    for stable in (sql.RECORDS, sql.BARS):  # as an earlier version made them
        taos_conn.execute(f"ALTER STABLE {db}.{stable} DROP COLUMN chk")
    feed = store.change_feed("blocks")
    assert isinstance(feed, TopicFeed)
    records = _records(8)[:4]
    feed.start()
    try:
        table = series_table(KEY)
        tags = "('600519', 'kline', '1d')"
        for record in records[:2]:  # written by the earlier version: (ts, payload)
            taos_conn.execute(  # the test's own names; bars' payloads hold no quote
                f"INSERT INTO {db}.{table} USING {db}.records TAGS {tags} "  # noqa: S608
                f"VALUES ({record.ts_ms}, '{record.payload}')"
            )
        conn = store.connect()
        try:
            conn.ensure_schema()  # this version's start-up: chk added
            conn.write([(KEY, records[2:])])  # (ts, payload, chk)
        finally:
            conn.close()
        got: list[tuple[SeriesKey, Record]] = []
        deadline = time.monotonic() + 30
        while len(got) < len(records) and time.monotonic() < deadline:
            got += feed.poll(0.1).changes
    finally:
        feed.close()
    assert got == [(KEY, r) for r in records]
    columns = [row[0] for row in taos_conn.query(f"DESCRIBE {db}.records").fetch_all()]
    assert "chk" in columns


def test_a_write_of_several_series_reaches_the_feed_with_each_series_own_key(
    url: str,
) -> None:
    """On one vnode (``vgroups=1``), where TDengine 3.2.2.2 gives every row of a submit
    spanning several subtables the first one's tags: the store submits each series apart."""
    store = TDengineStore.from_url(f"{url}?vgroups=1")
    conn = store.connect()
    conn.ensure_schema()
    feed = store.change_feed("blocks")
    assert isinstance(feed, TopicFeed)
    quotes, flow = SeriesKey("600519", "quote", "tick"), SeriesKey("600519", "fund_flow", "1m")
    feed.start()
    try:
        conn.write([(flow, [Record(5, '"f5"'), Record(6, '"f6"')]), (quotes, [Record(3, '"q3"')])])
        got: list[tuple[SeriesKey, Record]] = []
        deadline = time.monotonic() + 30
        while len(got) < 3 and time.monotonic() < deadline:
            got += feed.poll(0.1).changes
    finally:
        conn.close()
        feed.close()
    assert sorted(got) == sorted(
        [(flow, Record(5, '"f5"')), (flow, Record(6, '"f6"')), (quotes, Record(3, '"q3"'))]
    )


def test_a_part_of_the_log_sent_again_is_delivered_once(store: TDengineStore) -> None:
    """What libtaos did after a vgroup's leader moved (issue 26, fault 4): polled the log
    again from an older offset. Here the consumer is moved back by hand, between writes:
    the feed gives each record once, in order, the ones written after the move too."""
    feed = store.change_feed("again")
    assert isinstance(feed, TopicFeed)
    records = _records(60)
    feed.start()
    conn = store.connect()
    got: list[tuple[SeriesKey, Record]] = []

    def poll_until(count: int) -> None:
        deadline = time.monotonic() + 30
        while len(got) < count and time.monotonic() < deadline:
            got.extend(feed.poll(0.1).changes)

    try:
        tmq, topic = feed._consumer._tmq, feed._topic.encode()
        starts: dict[int, int] = {}
        for i in range(0, 30, 10):  # three writes, each polled
            starts.update({v: min(e, starts.get(v, e)) for v, e in feed._ends.items()})
            conn.write([(KEY, records[i : i + 10])])
            poll_until(i + 10)
        assert got == [(KEY, r) for r in records[:30]]
        for vgroup, start in starts.items():  # the log sent again from its start
            assert blocks.seek(feed._lib, tmq, topic, vgroup, start) == 0
        conn.write([(KEY, records[30:60])])
        poll_until(60)
        for _ in range(10):  # anything more it would give
            got.extend(feed.poll(0.1).changes)
    finally:
        conn.close()
        feed.close()
    assert got == [(KEY, r) for r in records]
