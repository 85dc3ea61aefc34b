"""A record and its bar's numbers are two rows on TDengine (``sql.BARS``), sent in two
submits that may reach two vnodes: two Writes racing over one (series, timestamp) through
two replicas can leave one Write's record beside the other's numbers. Each row carries its
payload's check (``sql.CHECK``), and the numbers are taken only where both agree.

The race's end state is made here as it comes about: the records row of one timestamp
rewritten by another Write, whose numbers' row lost the race."""

# ruff: noqa: S608  (database and table names are the test's own, checked by the store)

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from mdcache_server.model import Record, SeriesKey, Window
from mdcache_server.store.tdengine import TDengineStore, parse_url, sql
from mdcache_server.store.tdengine.batches import check
from mdcache_server.store.tdengine.naming import bars_table, series_table
from mdcache_server.store.tdengine.store import TDengineConnection

from .conftest import tdengine_test_url
from .market_data import sse_minutes_20190201
from .support import running

pytestmark = pytest.mark.tdengine


@pytest.fixture
def url() -> Iterator[str]:
    yield from tdengine_test_url()


@contextmanager
def holding(url: str, key: SeriesKey, records: list[Record]) -> Iterator[TDengineConnection]:
    """A store on the URL's database, the records written through it; closed after."""
    store = TDengineStore.from_url(url).connect()
    try:
        store.ensure_schema()
        store.write([(key, records)])
        yield store
    finally:
        store.close()


def minutes() -> tuple[SeriesKey, list[Record]]:
    series, day = sse_minutes_20190201()
    return SeriesKey(*series), [Record(r.ts_ms or 0, r.payload) for r in day]


def other_write(record: Record) -> Record:
    """Another replica's Write of the same bar: the close moved."""
    fields = json.loads(record.payload)
    fields["close"] = round(fields["close"] + 0.5, 2)
    return Record(record.ts_ms, json.dumps(fields))


def lost_race(conn: Any, db: str, key: SeriesKey, record: Record) -> None:
    """``record``'s records row, whose numbers' row lost the race: as the other replica's
    submit to the records' vnode left it (the payloads here have no quote to escape)."""
    assert "'" not in record.payload
    conn.execute(
        f"INSERT INTO {db}.{series_table(key)} VALUES "
        f"({record.ts_ms}, '{record.payload}', {check(record.payload)})"
    )


@pytest.mark.parametrize("sent", ["as text", "bound"])
def test_numbers_beside_another_writes_record_are_not_taken(
    url: str, taos_conn: Any, sent: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if sent == "bound":  # a large Write: records and numbers bound to two statements
        monkeypatch.setattr(sql, "TEXT_INSERT_MAX_CHARS", 0)
    db = parse_url(url).database
    key, day = minutes()
    with holding(url, key, day) as store:
        window = Window(bars=True)
        (before,) = store.read_answer([key], window)
        assert before.bars is not None  # every record's numbers, as written
        moved = other_write(day[100])
        lost_race(taos_conn, db, key, moved)
        (after,) = store.read_answer([key], window)
        assert after.bars is None  # the payloads instead, which the numbers no longer match
        assert [r.payload for r in after.records] == [
            moved.payload if r.ts_ms == moved.ts_ms else r.payload for r in day
        ]
        store.write([(key, [moved])])  # the Write again, whole: both rows agree
        (again,) = store.read_answer([key], window)
        assert again.bars is not None
        assert again.bars.columns[3][100] == json.loads(moved.payload)["close"]


@pytest.mark.parametrize("server_settings", [{"hot_tier_bytes": "0"}])
async def test_a_resampled_read_shows_the_record_that_won(
    url: str, taos_conn: Any, server_settings: dict[str, str]
) -> None:
    """Through the service, with no held copies (every Read from the store): the hourly
    bar holding the rewritten minute closes at the Write that is stored, not at the
    numbers of the Write that lost."""
    db = parse_url(url).database
    series, day = sse_minutes_20190201()
    key, stored = minutes()
    async with running(url, **server_settings) as (_, client):
        await client.write(series, day)
        before = await client.read(series, resample="60m")
        assert before.records[-1].json()["close"] == day[-1].json()["close"]
        moved = other_write(stored[-1])
        lost_race(taos_conn, db, key, moved)
        assert (await client.read(series, start_ms=moved.ts_ms)).records[0].payload == (
            moved.payload
        )
        hourly = await client.read(series, resample="60m")
        assert hourly.records[-1].json()["close"] == json.loads(moved.payload)["close"]


def test_an_earlier_versions_database_gains_the_checks_and_keeps_its_numbers(
    url: str, taos_conn: Any
) -> None:
    """A database an earlier version made has no ``chk``: the store adds it at start-up;
    rows written before read -1 on both sides and keep their numbers, as before."""
    db = parse_url(url).database
    key, day = minutes()
    with holding(url, key, day):  # the day, stored as this version stores it
        pass
    for stable in ("records", "bars"):  # as an earlier version left them
        taos_conn.execute(f"ALTER STABLE {db}.{stable} DROP COLUMN chk")
    taos_conn.execute(  # a bar written by the earlier version, without its check
        f"INSERT INTO {db}.{series_table(key)} VALUES ({day[0].ts_ms}, '{day[0].payload}')"
    )
    numbers = ", ".join(["0"] * 7)
    taos_conn.execute(f"INSERT INTO {db}.{bars_table(key)} VALUES ({day[0].ts_ms}, {numbers})")
    store = TDengineStore.from_url(url).connect()
    try:
        store.ensure_schema()
        for stable in ("records", "bars"):
            columns = [row[0] for row in taos_conn.query(f"DESCRIBE {db}.{stable}").fetch_all()]
            assert "chk" in columns
        (legacy,) = store.read_answer([key], Window(end_ms=day[0].ts_ms, bars=True))
        assert legacy.bars is None  # its shape 0: no numbers kept, as the earlier one wrote
        (rest,) = store.read_answer([key], Window(start_ms=day[1].ts_ms, bars=True))
        assert rest.bars is not None  # rows without checks on both sides: trusted, as before
        store.write([(key, day[:1])])
        (whole,) = store.read_answer([key], Window(bars=True))
        assert whole.bars is not None
        assert len(whole.bars.ts) == len(day)
        store.ensure_schema()  # again: nothing left to add
    finally:
        store.close()
