"""The SQL of the SQLite store: constants only, with no input in them (parameters carry it)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Final

from mdcache_server.model import PurgeFilter
from mdcache_server.wire.encoding import MAX_VARINT_BYTES, RECORD_TAGS, TAG_BYTES, varint_limit

COUNT_RANGE: Final = "SELECT COUNT(*) FROM records WHERE series_id = ? AND ts >= ? AND ts <= ?"
# The series' ``version`` column (and the delete trigger's) is no longer read: replicas
# learn changes from the change feed (cache/coherence.py). Kept for files of earlier versions.
ADD_RECORDS: Final = "UPDATE series SET records = records + ? WHERE id = ?"
SERIES_ID: Final = "SELECT id FROM series WHERE symbol = ? AND data_type = ? AND timeframe = ?"
ADD_SERIES: Final = (
    "INSERT INTO series (symbol, data_type, timeframe) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
)
# A Write's rows go in by multi-row statements of these sizes (largest first), not a
# statement a row: SQLite steps once a statement, and the sqlite3 module releases and
# takes back the GIL around every step, a hand-off the event loop feels under load.
# A few fixed sizes keep the prepared statements cached (1,000 rows: 256 x 3, 64 x 3,
# 16 x 2, 4 x 2). Ingest A/B in one run: 108-123k rows/s against 92-97k row by row.
UPSERT_ROWS: Final = (256, 64, 16, 4, 1)  # at most 1,024 parameters a statement
UPSERT_VALUES: Final = 4  # series_id, ts, record, bar (a bar's numbers, NULL for none)
UPSERT: Final = {
    rows: "INSERT INTO records (series_id, ts, record, bar) VALUES "  # noqa: S608 (constants)
    + ", ".join(["(?, ?, ?, ?)"] * rows)
    + " ON CONFLICT (series_id, ts) DO UPDATE SET record = excluded.record, bar = excluded.bar"
    for rows in UPSERT_ROWS
}
# Where the payload starts in a record (``wire/codec.py``): its tag and length, the
# timestamp's tag and varint, the payload's tag and length; each length and the timestamp
# a varint whose width SQL works out from the record's size and ts.
_SIZE = "length(record)"
_TAGS = RECORD_TAGS * TAG_BYTES  # of a record with a payload


def _width(expr: str, last: Callable[[int], int]) -> str:
    """SQL: the width of the varint of a length, from ``expr`` whose largest value with a
    varint of ``w`` bytes is ``last(w)`` (at most 4 bytes: a record under 256 MiB)."""
    cases = " ".join(f"WHEN {expr} <= {last(w)} THEN {w}" for w in (1, 2, 3))
    return f"(CASE {cases} ELSE 4 END)"


# The record's length: the size is its tag, the w bytes and up to varint_limit(w) - 1 more.
_SIZE_BYTES = _width(_SIZE, lambda w: TAG_BYTES + w + varint_limit(w) - 1)
_TS_BYTES = (
    f"(CASE WHEN ts < 0 THEN {MAX_VARINT_BYTES} "
    + " ".join(f"WHEN ts < {varint_limit(w)} THEN {w}" for w in range(1, 9))
    + " ELSE 9 END)"
)
# The payload's length bytes and the payload (what follows the timestamp and the tags).
_REST = f"({_SIZE} - {_SIZE_BYTES} - {_TS_BYTES} - {_TAGS})"
_PAYLOAD_BYTES = _width(_REST, lambda w: w + varint_limit(w) - 1)
# Almost every record: a timestamp of 1971 to 2109 (a varint of six bytes), a payload of
# 128 to 16,373 bytes (two length bytes, and two for the record's): a head of fixed size.
_FAST_TS_BYTES, _FAST_LENGTH_BYTES = 6, 2
_FAST_TS = (varint_limit(_FAST_TS_BYTES - 1), varint_limit(_FAST_TS_BYTES))
_FAST_HEAD = _TAGS + 2 * _FAST_LENGTH_BYTES + _FAST_TS_BYTES  # the bytes before the payload
_FAST_SIZES = (
    _FAST_HEAD + varint_limit(_FAST_LENGTH_BYTES - 1),  # the shortest payload of 2 length bytes
    TAG_BYTES + _FAST_LENGTH_BYTES + varint_limit(_FAST_LENGTH_BYTES) - 1,  # the longest record
)
PAYLOAD: Final = (
    f"CASE WHEN ts >= {_FAST_TS[0]} AND ts < {_FAST_TS[1]} "
    f"AND {_SIZE} BETWEEN {_FAST_SIZES[0]} AND {_FAST_SIZES[1]} "
    f"THEN CAST(substr(record, {_FAST_HEAD + 1}) AS TEXT) "  # substr() counts from 1
    f"WHEN {_REST} < 1 THEN '' "  # an empty payload has no field
    f"ELSE CAST(substr(record, {_TAGS + 1} + {_SIZE_BYTES} + {_TS_BYTES} + {_PAYLOAD_BYTES}) "
    "AS TEXT) END"
)
_READ = (
    f"SELECT ts, {PAYLOAD}, record FROM records "  # noqa: S608 (constants only, no input)
    "WHERE series_id = ? AND ts >= ? AND ts <= ? ORDER BY ts {} LIMIT ?"
)
READ: Final = {False: _READ.replace("{}", "ASC"), True: _READ.replace("{}", "DESC")}
# One row: how many records, the records as sent, and whether the window holds a record
# past the last one taken (then the answer is truncated). The inner subquery keeps its
# order (SQLite does not flatten a LIMIT subquery into an aggregate; tests/test_wire.py
# checks it both ways). One statement, so the worker gives the GIL back and takes it again
# twice a read, not four times; ?1..?4 are the series id, start, end and limit.
_ANSWER = (
    "SELECT n, data, EXISTS (SELECT 1 FROM records WHERE series_id = ?1 AND {}) FROM ("
    "SELECT COUNT(*) AS n, CAST(GROUP_CONCAT(record, '') AS BLOB) AS data, {}(ts) AS m "
    "FROM (SELECT ts, record FROM records WHERE series_id = ?1 AND ts >= ?2 AND ts <= ?3 "
    "ORDER BY ts {} LIMIT ?4))"
)
ANSWER: Final = {
    False: _ANSWER.format("ts > m AND ts <= ?3", "MAX", "ASC"),
    True: _ANSWER.format("ts < m AND ts >= ?2", "MIN", "DESC"),
}
# The bars' numbers of a window, as :data:`ANSWER` reads its records: how many records,
# how many keep numbers, the numbers laid end to end (``barnumbers.ROW``), and whether the
# window holds more. Used only when every record of the window keeps them.
_BARS = (
    "SELECT n, numbered, data, EXISTS (SELECT 1 FROM records WHERE series_id = ?1 AND {}) "
    "FROM (SELECT COUNT(*) AS n, COUNT(bar) AS numbered, "
    "CAST(GROUP_CONCAT(bar, '') AS BLOB) AS data, {}(ts) AS m "
    "FROM (SELECT ts, bar FROM records WHERE series_id = ?1 AND ts >= ?2 AND ts <= ?3 "
    "ORDER BY ts {} LIMIT ?4))"
)
BARS: Final = {
    False: _BARS.format("ts > m AND ts <= ?3", "MAX", "ASC"),
    True: _BARS.format("ts < m AND ts >= ?2", "MIN", "DESC"),
}
COUNTS: Final = (
    "SELECT COALESCE(SUM(records), 0), COUNT(*), COUNT(DISTINCT symbol) "
    "FROM series WHERE records > 0"
)
_PURGE = "DELETE FROM records WHERE series_id IN (SELECT id FROM series{}) AND ts < ?"
PURGE_COLUMNS: Final = ("symbol", "data_type", "timeframe")
PURGE: Final = {
    given: _PURGE.format(
        " WHERE " + " AND ".join(f"{c} = ?" for c, g in zip(PURGE_COLUMNS, given, strict=True) if g)
        if any(given)
        else ""
    )
    for given in itertools.product((False, True), repeat=3)
}
HEARTBEAT: Final = (
    "INSERT INTO heartbeat (id, at_ms) VALUES (1, ?) "
    "ON CONFLICT (id) DO UPDATE SET at_ms = excluded.at_ms"
)
LIST_SERIES: Final = (
    "SELECT symbol, data_type, timeframe, records FROM series WHERE records > 0 ORDER BY id"
)
DROP_SERIES: Final = "DELETE FROM records WHERE series_id = ?"
SAVE_USAGE: Final = (
    "INSERT INTO usage (replica, since_ms, hits, misses) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (replica) DO UPDATE SET "
    "since_ms = excluded.since_ms, hits = excluded.hits, misses = excluded.misses"
)
SAVE_SERIES_USAGE: Final = (
    "INSERT INTO series_usage (replica, series_id, reads, last_read_ms) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (replica, series_id) DO UPDATE SET "
    "reads = excluded.reads, last_read_ms = excluded.last_read_ms"
)
SAVE_EVICTIONS: Final = (
    "INSERT INTO usage_evictions (replica, series, records) VALUES (?, ?, ?) "
    "ON CONFLICT (replica) DO UPDATE SET series = excluded.series, records = excluded.records"
)
LOAD_USAGE: Final = (
    "SELECT u.replica, u.since_ms, u.hits, u.misses, COALESCE(e.series, 0), "
    "COALESCE(e.records, 0) FROM usage u LEFT JOIN usage_evictions e ON e.replica = u.replica "
    "ORDER BY u.replica"
)
LOAD_SERIES_USAGE: Final = (
    "SELECT u.replica, s.symbol, s.data_type, s.timeframe, u.reads, u.last_read_ms "
    "FROM series_usage u JOIN series s ON s.id = u.series_id"
)


def purge_sql(purge: PurgeFilter) -> tuple[str, tuple[object, ...]]:
    """The DELETE for a purge: one primary-key range per matching series."""
    values = (purge.symbol, purge.data_type, purge.timeframe)
    given = tuple(v is not None for v in values)
    return PURGE[given], (*(v for v in values if v is not None), purge.before_ms)


SAVE_REPLICA: Final = (
    "INSERT INTO replicas (replica, first_ms, seen_ms) VALUES (?, ?, ?) "
    "ON CONFLICT (replica) DO UPDATE SET first_ms = excluded.first_ms, seen_ms = excluded.seen_ms"
)
LOAD_REPLICAS: Final = "SELECT replica, first_ms, seen_ms FROM replicas"
