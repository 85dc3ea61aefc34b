"""The store interface itself, on every store: what the cache policy relies on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mdcache_server.model import (
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


def test_usage_of_series_never_written(conn: StoreConnection) -> None:
    unknown = SeriesKey("NEVER", "kline", "1d")
    conn.save_usage(Usage("a", 1, 0, 1, {unknown: SeriesUsage(1, 5)}))
    assert conn.load_usage()[0].series == {unknown: SeriesUsage(1, 5)}
    assert conn.list_series() == []
