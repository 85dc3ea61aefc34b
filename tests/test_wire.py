"""The hand-written wire encoding of Read answers equals what the generated code makes."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdcache.v1 import cache_pb2 as pb
from mdcache_server.cache.hot import HeldSeries
from mdcache_server.model import Record, SeriesKey, SeriesRead, Window
from mdcache_server.service.responses import read_response
from mdcache_server.store.base import StoreConnection
from mdcache_server.store.sqlite import SqliteStore
from mdcache_server.wire import codec

KEY = pb.SeriesKey(symbol="600519", data_type="kline", timeframe="1d")
payloads = st.text(max_size=40) | st.text(min_size=120, max_size=200)  # 1- and 2-byte lengths
records = st.dictionaries(st.integers(0, 4_102_444_799_999), payloads, max_size=40).map(
    lambda d: [Record(ts, p) for ts, p in sorted(d.items())]
)
windows = st.builds(
    Window,
    start_ms=st.none() | st.integers(0, 4_102_444_799_999),
    end_ms=st.none() | st.integers(0, 4_102_444_799_999),
    limit=st.integers(0, 50),
    newest_first=st.booleans(),
)


def expected(key: pb.SeriesKey, read: SeriesRead) -> pb.ReadResponse:
    response = pb.ReadResponse()
    item = response.results.add(hit=bool(read.records), truncated=read.truncated)
    item.series.CopyFrom(key)
    item.records.extend(pb.Record(ts_ms=ts, payload=p) for ts, p in read.records)
    return response


@settings(max_examples=300, deadline=None)
@given(records=records, window=windows)
def test_held_fragments_encode_like_the_generated_code(
    records: list[Record], window: Window
) -> None:
    held = HeldSeries.of(records, 0.0, codec.fields_of(records)).window(window)
    plain = HeldSeries.of(records, 0.0).window(window)
    assert held.encoded is not None
    assert plain.encoded is None
    for read in (held, plain):
        answer, rows = read_response([KEY], [read], 64 * 1024 * 1024)
        assert rows == len(plain.records)
        assert pb.ReadResponse.FromString(answer) == expected(KEY, plain)
        assert answer == expected(KEY, plain).SerializeToString()


def test_several_series_and_the_byte_cap() -> None:
    a = [Record(i, '"' + "x" * 100 + '"') for i in range(10)]
    reads = [HeldSeries.of(a, 0.0, codec.fields_of(a)).window(Window()), SeriesRead(a, False)]
    other = pb.SeriesKey(symbol="AAPL", data_type="kline", timeframe="1d")
    answer, rows = read_response([KEY, other], reads, 1000)
    parsed = pb.ReadResponse.FromString(answer)
    assert rows == sum(len(r.records) for r in parsed.results) < 20
    assert [r.truncated for r in parsed.results] == [True, True]
    assert [r.hit for r in parsed.results] == [True, True]
    assert [r.series for r in parsed.results] == [KEY, other]


@pytest.fixture(scope="module")
def sqlite_conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreConnection]:
    conn = SqliteStore(tmp_path_factory.mktemp("wire") / "cache.sqlite3").connect()
    conn.ensure_schema()
    yield conn
    conn.close()


SERIES = itertools.count()


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=records, window=windows)
def test_the_store_encodes_answers_like_the_generated_code(
    sqlite_conn: StoreConnection, records: list[Record], window: Window
) -> None:
    """SQLite's one-step answer (head || payload, in order, truncation probed) is the
    answer built from the records it reads, byte for byte, both orders, any window."""
    key = SeriesKey(f"S{next(SERIES)}", "kline", "1d")
    if records:
        sqlite_conn.write([(key, records)])
    (answer,) = sqlite_conn.read_answer([key], window)
    (plain,) = sqlite_conn.read([key], window)
    assert answer.truncated == plain.truncated
    assert list(answer.records) == list(plain.records)
    got, rows = read_response([KEY], [answer], 64 * 1024 * 1024)
    assert rows == len(plain.records)
    assert got == expected(KEY, plain).SerializeToString()


@pytest.mark.parametrize("newest_first", [False, True])
def test_a_record_left_on_the_window_bound_truncates_the_answer(
    sqlite_conn: StoreConnection, newest_first: bool
) -> None:
    key = SeriesKey(f"BOUND{int(newest_first)}", "kline", "1d")
    sqlite_conn.write([(key, [Record(ts, '"x"') for ts in range(10, 15)])])
    for limit, truncated in ((4, True), (5, False)):
        window = Window(start_ms=10, end_ms=14, limit=limit, newest_first=newest_first)
        (answer,) = sqlite_conn.read_answer([key], window)
        (plain,) = sqlite_conn.read([key], window)
        assert (answer.truncated, plain.truncated) == (truncated, truncated)
        assert list(answer.records) == list(plain.records)
        assert len(answer.records) == limit


def test_a_store_answer_over_the_byte_cap_is_cut_per_record(
    sqlite_conn: StoreConnection,
) -> None:
    key = SeriesKey("CAP", "kline", "1d")
    bars = [Record(i, '"' + "é" * 100 + '"') for i in range(10)]
    sqlite_conn.write([(key, bars)])
    (answer,) = sqlite_conn.read_answer([key], Window(newest_first=True))
    assert answer.encoded is not None
    assert len(answer.encoded) == 1  # one run of ten records
    got, rows = read_response([KEY], [answer], 1000)
    parsed = pb.ReadResponse.FromString(got)
    assert rows == len(parsed.results[0].records) == 4  # 81 bytes for the key, 208 a record
    assert parsed.results[0].truncated
    assert [r.ts_ms for r in parsed.results[0].records] == [9, 8, 7, 6]


def test_a_file_of_payloads_as_text_is_migrated(tmp_path: Path) -> None:
    """A file of mdcache 0.1 (payloads as text) is rewritten at start-up, records as sent."""
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE records (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, "
        "payload TEXT NOT NULL, PRIMARY KEY (series_id, ts)) WITHOUT ROWID;"
        "CREATE TABLE series (id INTEGER PRIMARY KEY, symbol TEXT NOT NULL, "
        "data_type TEXT NOT NULL, timeframe TEXT NOT NULL, records INTEGER NOT NULL DEFAULT 0, "
        "UNIQUE (symbol, data_type, timeframe));"
        "INSERT INTO series VALUES (1, '600519', 'kline', '1d', 3);"
        "INSERT INTO records VALUES "
        """(1, 0, '{"a": 1}'), (1, 128, '"中"'), (1, 1700000000000, '[]');"""
    )
    old.commit()
    old.close()
    conn = SqliteStore(path).connect()
    conn.ensure_schema()
    key = SeriesKey("600519", "kline", "1d")
    (answer,) = conn.read_answer([key], Window())
    expected_records = [Record(0, '{"a": 1}'), Record(128, '"中"'), Record(1_700_000_000_000, "[]")]
    assert list(answer.records) == expected_records
    assert answer.encoded == [b"".join(codec.encode(ts, p) for ts, p in expected_records)]
    conn.close()


@pytest.mark.parametrize("ts", [0, 127, 128, 2**35 - 1, 2**35, 2**42 - 1, 2**42, -1, -(2**63)])
@pytest.mark.parametrize("payload", ["", "{}", '"中文"', "x" * 127, "y" * 16_380, "z" * 70_000])
def test_codec_encodes_and_decodes_like_the_generated_code(ts: int, payload: str) -> None:
    made = codec.encode(ts, payload)
    assert (
        made == pb.SeriesResult(records=[pb.Record(ts_ms=ts, payload=payload)]).SerializeToString()
    )
    assert codec.decode(made * 2) == ([ts, ts], [payload, payload], [made, made])


@pytest.mark.parametrize("ts", [0, 127, 128, 2**35, 4_102_444_799_999, -1])
def test_the_store_cuts_payloads_out_at_every_length(sqlite_conn: StoreConnection, ts: int) -> None:
    """SQL finds where the payload starts for every size of every varint before it."""
    sizes = [1, 2, 124, 125, 126, 127, 128, 129, 16_373, 16_374, 16_380, 16_383, 16_384, 70_000]
    for n, size in enumerate(sizes):
        key = SeriesKey(f"CUT{ts}-{n}", "kline", "1d")
        payload = '"' + "é" * (size % 7) + "x" * max(size - 2 - 2 * (size % 7), 0) + '"'
        sqlite_conn.write([(key, [Record(ts, payload)])])
        (read,) = sqlite_conn.read([key], Window())
        assert list(read.records) == [Record(ts, payload)], (ts, size)
        assert read.encoded == [codec.encode(ts, payload)]
