"""Bars' numbers kept at write time (issue 25): a cold resampled Read makes its bars from
them, on every store, and they are the bars the payloads' JSON makes, byte for byte."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mdcache_client import AsyncClient, Record, Series
from mdcache_server import barnumbers
from mdcache_server.model import Record as StoredRecord
from mdcache_server.model import SeriesKey, Window
from mdcache_server.resample import timeframe
from mdcache_server.resample.bars import DEFAULT_SUMMED, Fields, numbers_suffice, resample
from mdcache_server.resample.rules import Resampling
from mdcache_server.store.base import StoreConnection
from mdcache_server.store.sqlite.store import SqliteStore
from mdcache_server.store.url import open_store
from mdcache_server.wire import codec

from .market_data import aapl_daily_2017, sse_minutes_20180813_17, sse_minutes_20190201
from .support import running

COLD = pytest.mark.parametrize("server_settings", [{"hot_tier_bytes": "0"}], ids=["cold"])
RESAMPLING = Resampling.default()


def _stored(records: list[Record]) -> list[StoredRecord]:
    return [StoredRecord(r.ts_ms, r.payload) for r in records]  # type: ignore[arg-type]


def from_json(series: Series, records: list[Record], target: str, **read: Any) -> list[Record]:
    """The bars the payloads' JSON makes (``resample`` parsing them), as a Read answers them:
    ``read`` is the Read's ``start_ms``, ``end_ms`` (the window of the bars answered)."""
    start, end = read.get("start_ms"), read.get("end_ms")
    source, to = timeframe.parse(series.timeframe), timeframe.parse(target)
    assert source is not None
    assert to is not None
    kept = [r for r in records if end is None or r.ts_ms <= end]  # type: ignore[operator]
    bars = resample(
        [r.ts_ms for r in kept],  # type: ignore[misc]
        [r.payload for r in kept],
        source,
        to,
        RESAMPLING.calendar_for(series.symbol),
        since_ms=start,
    )
    return [Record(ts, payload) for ts, payload in bars.records]


# --- what a payload keeps -------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        ('{"open": 1.5, "high": 2, "low": 1, "close": 1.75}', ["open", "high", "low", "close"]),
        (
            '{"dt": "x", "Open": 1, "Close": 2, "High": 3, "Low": 0.5, "Volume": 10, "x": []}',
            ["Open", "Close", "High", "Low", "Volume"],
        ),
        (
            '{"OPEN": 1, "HIGH": 1, "LOW": 1, "CLOSE": 1, "VOL": 1e20, "AMOUNT": -2.5}',
            ["OPEN", "HIGH", "LOW", "CLOSE", "VOL", "AMOUNT"],
        ),
        ('{"amount": 3, "close": 1, "low": 1, "high": 1, "open": 1}', None),
    ],
)
def test_a_bar_keeps_its_numbers_names_order_and_integers(
    payload: str, names: list[str] | None
) -> None:
    found = barnumbers.numbers(payload)
    assert found is not None
    shape, *values = found
    value = json.loads(payload)
    keys = list(barnumbers.keys(int(shape)))
    assert [name for name, _, _ in keys] == (names or list(value))
    for name, slot, is_int in keys:
        assert values[barnumbers.column(slot)] == value[name]
        assert is_int == (type(value[name]) is int)


@pytest.mark.parametrize(
    "payload",
    [
        "[1, 2]",
        ' {"open": 1, "high": 1, "low": 1, "close": 1}',  # not at the first character
        '{"open": 1, "high": 1, "low": 1}',  # no close
        '{"open": 1, "high": 1, "low": 1, "close": "1"}',
        '{"open": 1, "high": 1, "low": 1, "close": true}',
        '{"open": 1, "high": 1, "low": 1, "close": null}',
        '{"open": 1, "high": 1, "low": 1, "close": 9007199254740993}',  # past a double
        '{"open": 1, "high": 1, "low": 1, "close": 18446744073709551615}',  # an int still
        '{"open": 1, "high": 1, "low": 1, "close": 1e400}',  # orjson refuses it
        '{"open": -0.0, "high": 1, "low": 1, "close": 1}',
        '{"open": 5e-324, "high": 1, "low": 1, "close": 1}',  # subnormal: TDengine refuses it
        '{"open": 1, "Open": 2, "high": 1, "low": 1, "close": 1}',  # two spellings
        '{"oPen": 1, "high": 1, "low": 1, "close": 1}',  # a spelling a shape cannot say
        '{"open": 1, "high": 1, "low": 1, "close": 1, "vol": 1, "volume": 2}',
        '{"open": 1, "high": 1, "low": 1, "close": 1, "volume": "many"}',
    ],
)
def test_what_keeps_no_numbers(payload: str) -> None:
    assert barnumbers.numbers(payload) is None


@pytest.mark.parametrize("refused", [False, True], ids=["parsed at once", "one by one"])
def test_a_write_of_many_layouts_keeps_each_record_s_own(refused: bool) -> None:
    """Taken a column at a time for each layout: the same as each payload on its own
    (``refused``: one payload orjson refuses, so each is parsed on its own)."""
    payloads = [
        '{"open": 1.5, "high": 2, "low": 1, "close": 1.75, "vol": 10}',
        '"not a bar"',
        '{"Open": 1, "High": 2, "Low": 1, "Close": 2}',
        '{"open": 1.5, "high": 2, "low": 1, "close": "x", "vol": 10}',
        '{"open": 1.5, "high": 2, "low": 1, "close": 2, "vol": 10.5}',
        '{"open": -0.0, "high": 2, "low": 1, "close": 1.75, "vol": 10}',
        '{"open": 1.5, "high": 2, "low": 1, "close": -1e-310, "vol": 10}',
        '{"open": 1.5, "high": 2, "low": 1, "close": 1.75, "vol": 18446744073709551615}',
        '{"open": 2.5, "high": 3, "low": 2, "close": 2.75, "vol": 11}',
    ]
    if refused:
        payloads.append('{"open": 1, "high": 2, "low": 1, "close": 1e400}')
    shapes, columns = barnumbers.extract(payloads)
    for i, payload in enumerate(payloads):
        alone = barnumbers.numbers(payload)
        together = (shapes[i], *(column[i] for column in columns))
        assert together == (alone or (0, 0, 0, 0, 0, 0, 0)), payload
        assert [type(v) for v in together] == [type(v) for v in alone or (0,) * 7], payload
    assert [bool(shape) for shape in shapes] == [1, 0, 1, 0, 1, 0, 0, 0, 1] + [0] * refused
    assert len(set(shapes[i] for i in (0, 4, 8))) == 2  # 2 is an integer where 1.75 is not


def test_numbers_are_not_used_when_other_fields_are_summed() -> None:
    assert numbers_suffice(DEFAULT_SUMMED)
    assert numbers_suffice(frozenset({"volume", "Turnover"}))  # a capital matches nothing
    assert not numbers_suffice(frozenset({"volume", "turnover"}))


# --- the store: numbers beside the records --------------------------------------------


@pytest.fixture
def conn(store_url: str) -> Iterator[StoreConnection]:
    c = open_store(store_url).connect()
    c.ensure_schema()
    yield c
    c.close()


def test_the_store_answers_a_bars_window_with_numbers(conn: StoreConnection) -> None:
    series, day = sse_minutes_20190201()
    key = SeriesKey(*series)
    records = _stored(day)
    conn.write([(key, records)])
    window = Window(start_ms=records[10].ts_ms, end_ms=records[99].ts_ms, limit=50, bars=True)
    (found,) = conn.read_answer([key], window)
    assert found.bars is not None
    assert found.truncated
    assert len(found.records) == 50
    ts, payloads = [r.ts_ms for r in records[10:60]], [r.payload for r in records[10:60]]
    parsed = Fields(ts, payloads, DEFAULT_SUMMED, "f")
    kept = Fields.from_numbers(found.bars, DEFAULT_SUMMED, "f")
    assert (kept.ts, kept.names, kept.summed, kept.kept) == (ts, *_names(parsed))
    assert kept.columns == parsed.columns
    assert kept.sums == parsed.sums
    assert [list(map(type, c)) for c in kept.columns + kept.sums] == [
        list(map(type, c)) for c in parsed.columns + parsed.sums
    ]
    newest = conn.read_answer([key], Window(limit=3, newest_first=True, bars=True))[0]
    assert newest.bars is not None
    assert newest.bars.ts == [r.ts_ms for r in records[-1:-4:-1]]
    # a plain read of the same window: the payloads as written, byte for byte
    (plain,) = conn.read_answer([key], Window(start_ms=records[10].ts_ms, limit=50))
    assert plain.bars is None
    assert list(plain.records) == records[10:60]


def _names(fields: Fields) -> tuple[list[str], list[str], list[str]]:
    return fields.names, fields.summed, fields.kept


def test_records_without_numbers_are_read_as_records(conn: StoreConnection) -> None:
    key = SeriesKey("MIXED", "kline", "1m")
    bars = [
        StoredRecord(t, json.dumps({"open": 1, "high": 2, "low": 1, "close": 2})) for t in (1, 2, 3)
    ]
    conn.write([(key, bars)])
    assert conn.read_answer([key], Window(bars=True))[0].bars is not None

    conn.write([(key, [StoredRecord(2, '{"note": "not a bar"}')])])  # written over a bar
    (found,) = conn.read_answer([key], Window(bars=True))
    assert found.bars is None
    assert list(found.records) == [bars[0], StoredRecord(2, '{"note": "not a bar"}'), bars[2]]
    # a window without it has numbers again
    assert conn.read_answer([key], Window(start_ms=3, bars=True))[0].bars is not None

    other = json.dumps({"Open": 1, "High": 2, "Low": 1, "Close": 2})  # names spelt otherwise
    conn.write([(key, [StoredRecord(2, bars[1].payload), StoredRecord(4, other)])])
    (found,) = conn.read_answer([key], Window(bars=True))
    assert found.bars is None
    assert [r.ts_ms for r in found.records] == [1, 2, 3, 4]
    assert conn.read_answer([SeriesKey("NONE", "kline", "1m")], Window(bars=True))[0].records == []


def test_numbers_go_with_their_records(conn: StoreConnection) -> None:
    """Purged and dropped with the records: a record written again at a purged timestamp
    finds no numbers but its own."""
    series, day = sse_minutes_20190201()
    key = SeriesKey(*series)
    records = _stored(day)
    conn.write([(key, records)])
    middle = records[100].ts_ms
    from mdcache_server.model import PurgeFilter

    assert conn.purge(PurgeFilter(before_ms=middle, symbol=key.symbol)) == 100
    (found,) = conn.read_answer([key], Window(bars=True))
    assert found.bars is not None
    assert found.bars.ts == [r.ts_ms for r in records[100:]]
    assert conn.drop_series([key]) == len(records) - 100
    assert conn.read_answer([key], Window(bars=True))[0].records == []
    again = [StoredRecord(records[5].ts_ms, '{"open": 7, "high": 9, "low": 6, "close": 8}')]
    conn.write([(key, again)])
    (found,) = conn.read_answer([key], Window(bars=True))
    assert found.bars is not None
    assert (found.bars.ts, [c[0] for c in found.bars.columns[:4]]) == (
        [records[5].ts_ms],
        [7, 9, 6, 8],
    )


@pytest.mark.parametrize("bound", [False, True], ids=["as text", "bound"])
def test_numbers_read_back_exactly(
    conn: StoreConnection, bound: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every double as it was parsed (TDengine: through the INSERT text, or bound)."""
    from mdcache_server.store.tdengine import sql

    if bound:
        monkeypatch.setattr(sql, "TEXT_INSERT_MAX_CHARS", 0)
    tricky = [0.1 + 0.2, 1e-300, 2.2250738585072014e-307, 1.7976931348623157e308, -2.5e-7, 7.0]
    key = SeriesKey("EXACT", "kline", "1m")
    records = [
        StoredRecord(
            i + 1,
            json.dumps(
                {"open": v, "high": -v, "low": v / 3, "close": 2**53, "vol": -(2**53), "amount": v}
            ),
        )
        for i, v in enumerate(tricky)
    ]
    conn.write([(key, records)])
    (found,) = conn.read_answer([key], Window(bars=True))
    assert found.bars is not None
    kept = Fields.from_numbers(found.bars, DEFAULT_SUMMED, "f")
    parsed = Fields([r.ts_ms for r in records], [r.payload for r in records], DEFAULT_SUMMED, "f")
    assert kept.columns == parsed.columns
    assert kept.sums == parsed.sums
    assert [list(map(type, c)) for c in kept.columns + kept.sums] == [
        list(map(type, c)) for c in parsed.columns + parsed.sums
    ]


def test_a_large_write_keeps_numbers_too(conn: StoreConnection) -> None:
    """Past the INSERT text's size (TDengine: the records bound, then their numbers)."""
    series, week = sse_minutes_20180813_17()
    key = SeriesKey(*series)
    records = _stored(week) * 1  # 1,200 bars of about 200 bytes
    conn.write([(key, records)])
    (found,) = conn.read_answer([key], Window(bars=True))
    assert found.bars is not None
    assert found.bars.ts == [r.ts_ms for r in records]


# --- the service: the same bars as from JSON ---------------------------------------------


SYNTHETIC = Series("SYN.SH", "kline", "1m")


def _synthetic() -> list[Record]:
    """A day of minute bars spelt three ways, whose numbers are integers in some and floats
    in others (``7`` and ``7.0`` make different bars)."""
    _, day = sse_minutes_20190201()
    out = []
    for i, record in enumerate(day):
        value = json.loads(record.payload)
        bar = {"Open": value["open"], "HIGH": value["high"], "low": value["low"]}
        bar["close"] = round(value["close"]) if i % 3 == 0 else value["close"]
        bar["amount"] = i if i % 2 else float(i)
        out.append(Record(record.ts_ms, json.dumps(bar)))  # type: ignore[arg-type]
    return out


@COLD
@pytest.mark.parametrize("target", ["5m", "60m", "1d"])
async def test_cold_resampled_bars_equal_the_bars_of_the_json(
    client: AsyncClient, store_url: str, target: str
) -> None:
    series, week = sse_minutes_20180813_17()
    await client.write(series, week)
    await client.write(SYNTHETIC, _synthetic())
    for source, records in ((series, week), (SYNTHETIC, _synthetic())):
        windows: list[dict[str, Any]] = [
            {},
            {"start_ms": records[37].ts_ms, "end_ms": records[-45].ts_ms},
        ]
        for window in windows:
            got = await client.read(source, resample=target, **window)
            assert list(got.records) == from_json(source, records, target, **window)
            assert got.records
        newest = await client.read(source, resample=target, newest_first=True, limit=2)
        assert list(newest.records) == from_json(source, records, target)[::-1][:2]
    conn = open_store(store_url).connect()
    try:  # the store answers these windows with numbers: the bars above were made of them
        reads = conn.read_answer([SeriesKey(*series), SeriesKey(*SYNTHETIC)], Window(bars=True))
        assert all(read.bars is not None for read in reads)
    finally:
        conn.close()


@COLD
async def test_daily_bars_with_capitals_into_weeks_and_months(client: AsyncClient) -> None:
    series, days = aapl_daily_2017()  # Open, High, Low, Close, Adj Close, Volume
    await client.write(series, days)
    for target in ("1w", "1M"):
        got = await client.read(series, resample=target)
        assert list(got.records) == from_json(series, days, target)


@COLD
async def test_a_mixed_series_is_resampled_from_its_json(client: AsyncClient) -> None:
    """Some records lack a summed field, one is no bar: the answers are those of the JSON,
    and the record that cannot make a bar is refused as before, only where it is read."""
    series, day = sse_minutes_20190201()
    mixed = []
    for i, record in enumerate(day):
        value = json.loads(record.payload)
        if i % 10 == 0:
            del value["vol"]
        mixed.append(Record(record.ts_ms, json.dumps(value)))  # type: ignore[arg-type]
    await client.write(series, mixed)
    got = await client.read(series, resample="30m")
    assert list(got.records) == from_json(series, mixed, "30m")

    broken = Record(day[-1].ts_ms, '{"open": 1, "high": 2, "low": 0.5}')
    await client.write(series, [broken])
    morning = {"end_ms": day[100].ts_ms}
    got = await client.read(series, resample="30m", **morning)
    assert list(got.records) == from_json(series, mixed, "30m", **morning)
    from mdcache_client import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match=r"series\[0\]\.payload\.close: missing"):
        await client.read(series, resample="30m")


# --- a file of an earlier version ----------------------------------------------------


def test_a_file_of_records_without_numbers_is_migrated(tmp_path: Path) -> None:
    """A file of the layout before issue 25 gets the column; its records are read as
    records (parsed when resampled), and each written again keeps its numbers."""
    path = tmp_path / "before.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE series (id INTEGER PRIMARY KEY, symbol TEXT NOT NULL, "
        "data_type TEXT NOT NULL, timeframe TEXT NOT NULL, records INTEGER NOT NULL DEFAULT 0, "
        "version INTEGER NOT NULL DEFAULT 0, UNIQUE (symbol, data_type, timeframe));"
        "CREATE TABLE records (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, "
        "record BLOB NOT NULL, PRIMARY KEY (series_id, ts)) WITHOUT ROWID;"
    )
    series, day = sse_minutes_20190201()
    old.execute("INSERT INTO series VALUES (1, ?, ?, ?, ?, 1)", (*series, len(day)))
    old.executemany(
        "INSERT INTO records VALUES (1, ?, ?)",
        [(r.ts_ms, codec.encode(r.ts_ms, r.payload)) for r in day],  # type: ignore[arg-type]
    )
    old.commit()
    old.close()

    conn = SqliteStore(path).connect()
    conn.ensure_schema()
    key = SeriesKey(*series)
    (found,) = conn.read_answer([key], Window(bars=True))
    assert found.bars is None
    assert list(found.records) == _stored(day)
    conn.write([(key, _stored(day[:50]))])
    assert conn.read_answer([key], Window(end_ms=day[49].ts_ms, bars=True))[0].bars is not None
    assert conn.read_answer([key], Window(bars=True))[0].bars is None  # the rest as before
    conn.close()


async def test_a_migrated_file_serves_the_same_bars(tmp_path: Path) -> None:
    path = tmp_path / "before.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE records (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, "
        "payload TEXT NOT NULL, PRIMARY KEY (series_id, ts)) WITHOUT ROWID;"
        "CREATE TABLE series (id INTEGER PRIMARY KEY, symbol TEXT NOT NULL, "
        "data_type TEXT NOT NULL, timeframe TEXT NOT NULL, records INTEGER NOT NULL DEFAULT 0, "
        "UNIQUE (symbol, data_type, timeframe));"
    )
    series, day = sse_minutes_20190201()
    old.execute("INSERT INTO series VALUES (1, ?, ?, ?, ?)", (*series, len(day)))
    old.executemany("INSERT INTO records VALUES (1, ?, ?)", [(r.ts_ms, r.payload) for r in day])
    old.commit()
    old.close()
    async with running(f"sqlite:///{path}", hot_tier_bytes="0") as (_, client):
        before = await client.read(series, resample="15m")
        assert list(before.records) == from_json(series, day, "15m")
        await client.write(series, day)  # each record now keeps its numbers
        after = await client.read(series, resample="15m")
        assert list(after.records) == list(before.records)
    conn = SqliteStore(path).connect()
    assert conn.read_answer([SeriesKey(*series)], Window(bars=True))[0].bars is not None
    conn.close()
