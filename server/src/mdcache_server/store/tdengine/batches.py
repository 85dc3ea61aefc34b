"""What each insert binds: the subtable, its tags and its rows, built as plain values.

Records of a series are bound in timestamp order and in chunks: taospy binds a
string column as one fixed-width array (rows x longest value), so a chunk keeps
that array under BIND_BUDGET_BYTES however the payload sizes mix. Usage
counters are one row per subtable at ``USAGE_TS_MS``, so each save overwrites it.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from typing import Final

from mdcache_server.barnumbers import extract
from mdcache_server.model import Record, SeriesKey, Usage
from mdcache_server.store.tdengine import sql
from mdcache_server.store.tdengine.connector import Batch, Column, ColumnType
from mdcache_server.store.tdengine.naming import (
    bars_table,
    evictions_table,
    replica_table,
    series_table,
    series_usage_table,
    totals_table,
)

BIND_BUDGET_BYTES: Final = 16 * 1024 * 1024
BarRow = tuple[int | float, ...]  # ts, shape, open, high, low, close, volume or vol, amount, chk


def check(payload: str) -> int:
    """A payload's check (``chk`` of its records row and of its bars row, ``sql.CHECK``):
    the CRC-32 of its UTF-8 in 31 bits, so that no check is the -1 a NULL reads as."""
    return zlib.crc32(payload.encode()) & 0x7FFF_FFFF


def checks(records: Sequence[Record]) -> list[int]:
    """Each record's :func:`check`."""
    return [check(r.payload) for r in records]


def bar_columns(
    records: Sequence[Record], checked: Sequence[int]
) -> list[Sequence[int] | list[int | float]]:
    """The columns of ``sql.BARS`` for the records: timestamps, shapes (0: a record keeps
    no numbers, and a record written over a bar must not keep the bar's), six values and
    the payloads' :func:`checks` (``checked``, made once for the records' rows too)."""
    shapes, columns = extract([r.payload for r in records])
    return [[r.ts_ms for r in records], shapes, *columns, checked]


def bar_rows(records: Sequence[Record], checked: Sequence[int]) -> list[BarRow]:
    """A row of ``sql.BARS`` for each record (:func:`bar_columns`)."""
    return list(zip(*bar_columns(records, checked), strict=True))


def bars_batches(
    db: str, batches: Sequence[tuple[SeriesKey, Sequence[Record]]], checked: Sequence[list[int]]
) -> list[Batch]:
    """For ``sql.insert_bars``: per series ``db.b_<hash>``, its tags, :func:`bar_columns`
    (``checked``: each series' :func:`checks`)."""
    made = []
    for (key, records), series_checks in zip(batches, checked, strict=True):
        ts, shapes, *values, made_checks = bar_columns(records, series_checks)
        made.append(
            Batch(
                sql.table(db, bars_table(key)),
                (key.symbol, key.data_type, key.timeframe),
                (
                    Column(ColumnType.TIMESTAMP, ts),
                    Column(ColumnType.BIGINT, shapes),
                    *(Column(ColumnType.DOUBLE, column) for column in values),
                    Column(ColumnType.INT, made_checks),
                ),
            )
        )
    return made


def _stamp(record: Record) -> int:
    return record.ts_ms


def by_time(records: Sequence[Record]) -> list[Record]:
    """The records in timestamp order, as a bound write sends them (:func:`record_chunks`)."""
    return sorted(records, key=_stamp)


def record_chunks(ordered: Sequence[Record]) -> Iterator[Sequence[Record]]:
    """The records in the order given (:func:`by_time`'s), in chunks that bind in at most
    BIND_BUDGET_BYTES."""
    # A character is at most 4 bytes of UTF-8: most writes fit whole, told without encoding.
    if not ordered or len(ordered) * 4 * max(len(r.payload) for r in ordered) <= BIND_BUDGET_BYTES:
        if ordered:
            yield ordered
        return
    chunk: list[Record] = []
    widest = 0
    for record in ordered:
        width = len(record.payload.encode())
        if chunk and (len(chunk) + 1) * max(widest, width) > BIND_BUDGET_BYTES:
            yield chunk
            chunk, widest = [], 0
        chunk.append(record)
        widest = max(widest, width)
    if chunk:
        yield chunk


def record_batches(
    db: str, batches: Sequence[tuple[SeriesKey, Sequence[Record]]], checked: Sequence[list[int]]
) -> list[Batch]:
    """For ``sql.insert_records``: per series ``db.r_<hash>``, its tags, (ts, payload, chk)
    rows. Each series' records in timestamp order (:func:`by_time`), with their
    :func:`checks` in the same order (``checked``): the chunks are cut in that order, and
    the checks with them."""
    made = []
    for (key, records), series_checks in zip(batches, checked, strict=True):
        at = 0
        for chunk in record_chunks(records):
            made.append(
                Batch(
                    sql.table(db, series_table(key)),
                    (key.symbol, key.data_type, key.timeframe),
                    (
                        Column(ColumnType.TIMESTAMP, [r.ts_ms for r in chunk]),
                        Column(ColumnType.VARCHAR, [r.payload for r in chunk]),
                        Column(ColumnType.INT, series_checks[at : at + len(chunk)]),
                    ),
                )
            )
            at += len(chunk)
    return made


def totals_batch(db: str, usage: Usage) -> Batch:
    """For ``sql.insert_totals``: the replica's one row of totals."""
    return Batch(
        sql.table(db, totals_table(usage.replica)),
        (usage.replica,),
        (
            Column(ColumnType.TIMESTAMP, [sql.USAGE_TS_MS]),
            Column(ColumnType.BIGINT, [usage.since_ms]),
            Column(ColumnType.BIGINT, [usage.hits]),
            Column(ColumnType.BIGINT, [usage.misses]),
        ),
    )


def evictions_batch(db: str, usage: Usage) -> Batch:
    """For ``sql.insert_evictions``: the replica's one row of evictions."""
    return Batch(
        sql.table(db, evictions_table(usage.replica)),
        (usage.replica,),
        (
            Column(ColumnType.TIMESTAMP, [sql.USAGE_TS_MS]),
            Column(ColumnType.BIGINT, [usage.evicted_series]),
            Column(ColumnType.BIGINT, [usage.evicted_records]),
        ),
    )


def series_usage_batches(db: str, usage: Usage) -> list[Batch]:
    """For ``sql.insert_series_usage``: one row per series given, in its own subtable."""
    return [
        Batch(
            sql.table(db, series_usage_table(usage.replica, key)),
            (usage.replica, key.symbol, key.data_type, key.timeframe),
            (
                Column(ColumnType.TIMESTAMP, [sql.USAGE_TS_MS]),
                Column(ColumnType.BIGINT, [u.reads]),
                Column(ColumnType.BIGINT, [u.last_read_ms]),
            ),
        )
        for key, u in usage.series.items()
    ]


def replica_batch(db: str, replica: str, first_ms: int, seen_ms: int) -> Batch:
    """For ``sql.insert_replica``: the replica's heartbeat row."""
    return Batch(
        sql.table(db, replica_table(replica)),
        (replica,),
        (
            Column(ColumnType.TIMESTAMP, [sql.USAGE_TS_MS]),
            Column(ColumnType.BIGINT, [first_ms]),
            Column(ColumnType.BIGINT, [seen_ms]),
        ),
    )
