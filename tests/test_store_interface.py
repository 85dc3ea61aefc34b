"""The store interface itself, on every store: what the cache policy relies on."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from mdcache_server.model import (
    Limits,
    PurgeFilter,
    Record,
    SeriesKey,
    SeriesUsage,
    Usage,
    Window,
)
from mdcache_server.store.base import StoreConnection
from mdcache_server.store.url import open_store

A = SeriesKey("000001", "kline", "1d")
B = SeriesKey("000001", "kline", "1m")
C = SeriesKey("600519", "quote", "tick")


@pytest.fixture
def conn(store_url: str) -> Iterator[StoreConnection]:
    connection = open_store(store_url).connect()
    connection.ensure_schema()
    try:
        yield connection
    finally:
        connection.close()


def records(n: int, start: int = 1_600_000_000_000) -> list[Record]:
    return [Record(start + i * 60_000, f'{{"i": {i}}}') for i in range(n)]


def test_schema_creation_is_idempotent_and_keeps_data(conn: StoreConnection) -> None:
    conn.write([(A, records(3))])
    conn.ensure_schema()
    conn.ensure_schema()
    assert len(conn.read([A], Window(limit=10))[0].records) == 3
    assert conn.server_version()
    conn.probe()


def test_a_large_write_inserts_and_replaces_every_row_and_counts_exactly(
    conn: StoreConnection,
) -> None:
    """1,000 rows (SQLite: statements of 256, 64, 16 and 4 rows), then 334 rows of which
    every third replaces one and the rest are new (statements of 256, 64, 4, 4, 4, 1 and 1)."""
    first = records(1000)
    conn.write([(A, first)])
    again = [
        Record(r.ts_ms, '{"again": true}') if i % 3 == 0 else Record(r.ts_ms + 30_000, '{"new": 1}')
        for i, r in enumerate(first[::3])
    ]
    conn.write([(A, again), (B, records(5))])
    expected = {r.ts_ms: r.payload for r in first} | {r.ts_ms: r.payload for r in again}
    (read,) = conn.read([A], Window())
    assert [tuple(r) for r in read.records] == sorted(expected.items())
    assert sorted(conn.list_series()) == [(A, len(expected)), (B, 5)]
    assert conn.counts().records == len(expected) + 5


def test_list_and_drop_series(conn: StoreConnection) -> None:
    conn.write([(A, records(3)), (B, records(2)), (C, records(4))])
    assert sorted(conn.list_series()) == [(A, 3), (B, 2), (C, 4)]
    assert conn.drop_series([B, C, SeriesKey("absent", "x", "y")]) == 6
    assert conn.list_series() == [(A, 3)]
    counts = conn.counts()
    assert (counts.records, counts.series, counts.symbols) == (3, 1, 1)
    assert conn.drop_series([B]) == 0


def test_purge_by_timeframe(conn: StoreConnection) -> None:
    conn.write([(A, records(5)), (B, records(5)), (C, records(5))])
    cutoff = 1_600_000_000_000 + 2 * 60_000
    assert conn.purge(PurgeFilter(cutoff, timeframe="1m")) == 2
    assert conn.purge(PurgeFilter(cutoff, data_type="kline", timeframe="1d")) == 2
    assert conn.purge(PurgeFilter(cutoff, symbol="600519", timeframe="tick")) == 2
    assert sorted(conn.list_series()) == [(A, 3), (B, 3), (C, 3)]


def test_usage_is_saved_per_replica_and_forgotten(conn: StoreConnection) -> None:
    assert conn.load_usage() == []
    conn.save_usage(Usage("a", 1000, 5, 2, {A: SeriesUsage(4, 2000), C: SeriesUsage(3, 2500)}))
    conn.save_usage(Usage("b", 1500, 1, 0, {A: SeriesUsage(1, 3000)}))
    conn.save_usage(Usage("a", 1000, 6, 2, {A: SeriesUsage(5, 4000)}))  # C keeps its counters
    stored = {u.replica: u for u in conn.load_usage()}
    assert stored["a"] == Usage("a", 1000, 6, 2, {A: SeriesUsage(5, 4000), C: SeriesUsage(3, 2500)})
    assert stored["b"] == Usage("b", 1500, 1, 0, {A: SeriesUsage(1, 3000)})
    conn.reset_usage("a")
    assert [u.replica for u in conn.load_usage()] == ["b"]
    conn.reset_usage()
    assert conn.load_usage() == []


def test_evictions_are_saved_with_a_replicas_usage(conn: StoreConnection) -> None:
    """What each replica's capacity checks evicted, stored beside its read counters so that
    every replica's Stats can sum them (absolute values: a save overwrites)."""
    conn.save_usage(Usage("a", 1000, 5, 2, {}, evicted_series=1, evicted_records=600))
    conn.save_usage(Usage("b", 1500, 1, 0, {}))
    conn.save_usage(Usage("a", 1000, 6, 2, {}, evicted_series=3, evicted_records=900))
    stored = {u.replica: u for u in conn.load_usage()}
    assert stored["a"] == Usage("a", 1000, 6, 2, {}, evicted_series=3, evicted_records=900)
    assert (stored["b"].evicted_series, stored["b"].evicted_records) == (0, 0)
    conn.reset_usage("a")
    conn.save_usage(Usage("a", 2000, 0, 0, {}))
    assert {u.replica: u.evicted_series for u in conn.load_usage()} == {"a": 0, "b": 0}
    conn.reset_usage()
    assert conn.load_usage() == []


def test_usage_of_series_never_written(conn: StoreConnection) -> None:
    unknown = SeriesKey("NEVER", "kline", "1d")
    conn.save_usage(Usage("a", 1, 0, 1, {unknown: SeriesUsage(1, 5)}))
    assert conn.load_usage()[0].series == {unknown: SeriesUsage(1, 5)}
    assert conn.list_series() == []


def test_many_series_in_one_write_each_get_their_own_records(conn: StoreConnection) -> None:
    """TDengine binds every series' subtable and tags on one statement."""
    keys = [SeriesKey(f"{600000 + i}", "kline", "1d") for i in range(20)]
    assert conn.write([(key, records(i + 1)) for i, key in enumerate(keys)]) == 210
    reads = conn.read(keys, Window())
    assert [len(r.records) for r in reads] == list(range(1, 21))
    assert all(r.records == records(i + 1) for i, r in enumerate(reads))
    counts = conn.counts()
    assert (counts.records, counts.series, counts.symbols) == (210, 20, 20)


def test_writes_racing_into_series_not_yet_stored(store_url: str) -> None:
    """Eight workers, each with its connection, create the same new series at once."""
    store = open_store(store_url)
    first = store.connect()
    first.ensure_schema()
    keys = [SeriesKey("NEW", "quote", f"t{i}") for i in range(4)]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        conn = store.connect()
        try:
            barrier.wait(10)
            for key in keys:  # overlapping timestamps: the same rows upserted by every worker
                conn.write([(key, records(50, start=1_600_000_000_000 + n * 25 * 60_000))])
        except BaseException as exc:
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []
        expected = 50 + 7 * 25  # worker n covers rows 25n .. 25n + 49
        assert sorted(first.list_series()) == [(key, expected) for key in keys]
        assert first.counts().records == 4 * expected
    finally:
        first.close()


def test_deletes_over_a_series_emptied_before(conn: StoreConnection) -> None:
    conn.write([(A, records(3)), (C, records(2))])
    assert conn.drop_series([A]) == 3
    assert conn.drop_series([A]) == 0
    assert conn.purge(PurgeFilter(2_000_000_000_000, symbol="000001")) == 0
    assert conn.purge(PurgeFilter(2_000_000_000_000)) == 2
    assert conn.purge(PurgeFilter(2_000_000_000_000)) == 0
    counts = conn.counts()
    assert (counts.records, counts.series, counts.symbols) == (0, 0, 0)
    assert conn.list_series() == []
    assert conn.write([(A, records(1))]) == 1
    assert conn.list_series() == [(A, 1)]


def test_counts_after_purges(conn: StoreConnection) -> None:
    conn.write([(A, records(5)), (B, records(5)), (C, records(5))])
    cutoff = 1_600_000_000_000 + 2 * 60_000
    assert conn.purge(PurgeFilter(cutoff, symbol="000001")) == 4
    counts = conn.counts()
    assert (counts.records, counts.series, counts.symbols) == (11, 3, 2)
    assert conn.purge(PurgeFilter(2_000_000_000_000, symbol="000001")) == 6
    counts = conn.counts()
    assert (counts.records, counts.series, counts.symbols) == (5, 1, 1)
    assert conn.list_series() == [(C, 5)]


def test_the_largest_payload_and_the_longest_identifiers(conn: StoreConnection) -> None:
    limits = Limits()
    symbol = "股" * (limits.max_identifier_bytes // 3) + "X"  # 64 bytes of UTF-8
    key = SeriesKey(symbol, "d" * limits.max_identifier_bytes, "t" * limits.max_identifier_bytes)
    assert all(len(part.encode()) == limits.max_identifier_bytes for part in key)
    payload = '{"s": "' + "é" * ((limits.max_payload_bytes - 9) // 2) + '"}'
    payload = payload[:-2] + "x" * (limits.max_payload_bytes - len(payload.encode())) + '"}'
    assert len(payload.encode()) == limits.max_payload_bytes
    assert conn.write([(key, [Record(1_600_000_000_000, payload)])]) == 1
    (read,) = conn.read([key], Window())
    assert read.records == [Record(1_600_000_000_000, payload)]
    assert conn.list_series() == [(key, 1)]


def test_unicode_and_quotes_in_identifiers_are_kept_exactly(conn: StoreConnection) -> None:
    hostile = [
        SeriesKey("000001'; DROP TABLE records;--", "kline", "1d"),
        SeriesKey('平安银行"\\', "fund_flow", "1d"),
        SeriesKey("a`b", "quote's", "1m\t"),
    ]
    conn.write([(key, records(i + 1)) for i, key in enumerate(hostile)])
    assert sorted(conn.list_series()) == sorted((key, i + 1) for i, key in enumerate(hostile))
    assert [len(r.records) for r in conn.read(hostile, Window())] == [1, 2, 3]
    assert conn.purge(PurgeFilter(2_000_000_000_000, symbol=hostile[1].symbol)) == 2
    assert conn.drop_series([hostile[0]]) == 1
    assert conn.list_series() == [(hostile[2], 3)]
