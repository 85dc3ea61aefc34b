"""The SQL text of every call, as pure functions of validated names and integers.

No caller's string ever reaches this text: symbols, data types, timeframes,
payloads and replica names are bound through statements (``?``), and filters on
them are applied to rows the server returns. What is formatted in is a database
name checked against ``[A-Za-z_][A-Za-z0-9_]{0,63}``, table names checked by
:func:`~mdcache_server.store.tdengine.naming.is_identifier`, and Python ints.
Every table is qualified with its database (``db.table``): ``USE`` is
per-connection state, and a statement's table name needs it too.
"""

# ruff: noqa: S608  (names are checked by table()/database(), values are ints; see above)

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from mdcache_server.model import Limits
from mdcache_server.store.tdengine.blocks import Kind
from mdcache_server.store.tdengine.naming import is_identifier, notes_table
from mdcache_server.store.tdengine.options import DATABASE_NAME

RECORDS: Final = "records"
# The numbers of bars (``barnumbers.py``), a row per record (shape 0: it keeps none), in a
# super table of their own: a records row is at TDengine's row limit (ts 8 + payload 65,519
# + chk 4 of 65,531 bytes), and 3.2.2.2 refuses the numbers' 56 more bytes, in a new super
# table and by ALTER STABLE ... ADD COLUMN alike (tests/test_tdengine_server.py).
BARS: Final = "bars"
# Each records row and each bars row has ``chk``, its payload's check (``batches.check``):
# the two rows of one record travel in two submits (vnodes), so two Writes racing over one
# (series, timestamp) through two replicas can leave one's record beside the other's
# numbers. A reader takes the numbers only where both checks agree. Rows written before
# the column was added read -1 on both sides (``CHECK``), as they were trusted before.
CHECK: Final = "CASE WHEN chk IS NULL THEN -1 ELSE chk END"
CHECKED: Final = (RECORDS, BARS)  # the super tables that have ``chk``
BAR_COLUMNS: Final = f"shape, open, high, low, close, volume, amount, {CHECK}"
USAGE_TOTALS: Final = "usage_totals"
USAGE_SERIES: Final = "usage_series"
USAGE_EVICTIONS: Final = "usage_evictions"
REPLICAS: Final = "replicas"
NOTES: Final = "feed_notes"  # the change feed's marks and purge notes (store/tdengine/changes.py)
NOTE_BYTES: Final = 4096
PAYLOAD_BYTES: Final = 65_517  # TDengine's largest VARCHAR column; a row stays under 64 KB
IDENTIFIER_BYTES: Final = 64
REPLICA_BYTES: Final = 256
# Every record's timestamp lies in the service's limits, so a bound outside them can be
# dropped (or a call answered without a query) without changing any answer, and no
# out-of-range literal ever reaches TDengine.
MIN_TS_MS: Final = Limits().min_ts_ms
MAX_TS_MS: Final = Limits().max_ts_ms
# Usage counters are one row per subtable at one fixed timestamp, so a save overwrites
# it (TDengine's upsert). It is after any record and far from now - KEEP, and well
# below TDengine's latest millisecond timestamp (year 2970).
USAGE_TS_MS: Final = MAX_TS_MS + 1  # 2100-01-01T00:00:00Z


def database(db: str) -> str:
    """The database name, after checking it is a plain identifier."""
    if not DATABASE_NAME.fullmatch(db):
        raise ValueError(f"not a plain TDengine database name: {db!r}")
    return db


def table(db: str, name: str) -> str:
    """``db.name``, after checking both are plain identifiers."""
    if not is_identifier(name):
        raise ValueError(f"not a plain TDengine table name: {name!r}")
    return f"{database(db)}.{name}"


def create_database(
    db: str,
    *,
    keep_days: int,
    duration_days: int,
    wal_level: int,
    replica: int | None = None,
    vgroups: int | None = None,
) -> str:
    """Milliseconds; KEEP long enough for old history; fsync per write at WAL level 2;
    REPLICA and VGROUPS when the URL names them (else the server's defaults)."""
    wal = "WAL_LEVEL 2 WAL_FSYNC_PERIOD 0" if wal_level == 2 else "WAL_LEVEL 1"
    extra = (f" REPLICA {int(replica)}" if replica else "") + (
        f" VGROUPS {int(vgroups)}" if vgroups else ""
    )
    return (
        f"CREATE DATABASE IF NOT EXISTS {database(db)} PRECISION 'ms' "
        f"KEEP {int(keep_days)} DURATION {int(duration_days)} {wal}{extra}"
    )


def database_options(db: str) -> str:
    """An existing database's options, to compare with the URL's (every name a keyword)."""
    return (
        "SELECT `replica`, `vgroups`, `keep`, `duration`, `wal_level`, `wal_fsync_period` "
        f"FROM information_schema.ins_databases WHERE name = '{database(db)}'"
    )


def days(text: str) -> int | None:
    """KEEP or DURATION as ``information_schema`` shows it (``52560000m,52560000m,...``,
    ``14400m``, ``10d``, ``240h``) in whole days, None when it cannot tell."""
    first = str(text).split(",")[0].strip()
    per_day = {"m": 1440, "h": 24, "d": 1}
    if first[-1:] in per_day and first[:-1].isdigit():
        return int(first[:-1]) // per_day[first[-1]]
    return int(first) if first.isdigit() else None


def database_precision(db: str) -> str:
    """The precision of an existing database (``IF NOT EXISTS`` keeps its options)."""
    return f"SELECT `precision` FROM information_schema.ins_databases WHERE name = '{database(db)}'"


def create_tables(db: str) -> list[str]:
    """The super tables: records by series, usage counters that survive restarts, and the
    numbers of bars (``barnumbers.py``)."""
    tag = f"VARCHAR({IDENTIFIER_BYTES})"
    series_tags = f"symbol {tag}, data_type {tag}, timeframe {tag}"
    return [
        f"CREATE STABLE IF NOT EXISTS {table(db, RECORDS)} "
        f"(ts TIMESTAMP, payload VARCHAR({PAYLOAD_BYTES}), chk INT) TAGS ({series_tags})",
        f"CREATE STABLE IF NOT EXISTS {table(db, USAGE_TOTALS)} "
        f"(ts TIMESTAMP, since_ms BIGINT, hits BIGINT, misses BIGINT) "
        f"TAGS (replica_name VARCHAR({REPLICA_BYTES}))",
        f"CREATE STABLE IF NOT EXISTS {table(db, USAGE_EVICTIONS)} "
        f"(ts TIMESTAMP, evicted_series BIGINT, evicted_records BIGINT) "
        f"TAGS (replica_name VARCHAR({REPLICA_BYTES}))",
        f"CREATE STABLE IF NOT EXISTS {table(db, USAGE_SERIES)} "
        f"(ts TIMESTAMP, reads BIGINT, last_read_ms BIGINT) "
        f"TAGS (replica_name VARCHAR({REPLICA_BYTES}), {series_tags})",
        f"CREATE STABLE IF NOT EXISTS {table(db, NOTES)} "
        f"(ts TIMESTAMP, payload VARCHAR({NOTE_BYTES})) TAGS (slot VARCHAR(16))",
        f"CREATE STABLE IF NOT EXISTS {table(db, REPLICAS)} "
        f"(ts TIMESTAMP, first_ms BIGINT, seen_ms BIGINT) "
        f"TAGS (replica_name VARCHAR({REPLICA_BYTES}))",
        f"CREATE STABLE IF NOT EXISTS {table(db, BARS)} (ts TIMESTAMP, shape BIGINT, "
        "open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE, volume DOUBLE, amount DOUBLE, "
        f"chk INT) TAGS ({series_tags})",
    ]


def describe(db: str, stable: str) -> str:
    """A super table's columns and tags, a row each, its name first: whether one of
    :data:`CHECKED` has ``chk`` already (a database made by an earlier version has not).
    Not ``information_schema.ins_columns``, which lists every subtable's columns too."""
    return f"DESCRIBE {table(db, stable)}"


def add_check(db: str, stable: str) -> str:
    """``chk`` added to a super table of an earlier version: its rows read -1 (``CHECK``)."""
    if stable not in CHECKED:
        raise ValueError(f"not a super table with a check: {stable!r}")
    return f"ALTER STABLE {table(db, stable)} ADD COLUMN chk INT"


def topic(db: str) -> str:
    """The name of the database's topic (a topic's name is the cluster's, not the
    database's)."""
    return f"mdcache_{database(db)}_feed"


def legacy_topics(db: str) -> list[str]:
    """Topics earlier versions made (dropped with the database): a query topic, whose rows
    of a submit spanning several subtables of one vnode all carry the first one's tags on
    3.2.2.2, and a topic of the records super table alone (no notes: no marks)."""
    return [f"mdcache_{database(db)}", f"mdcache_{database(db)}_records"]


def create_topic(db: str) -> str:
    """The topic every replica's change feed consumes: every write to the database, a
    block per table named by it, in the order each vnode took them, so the records'
    subtables and the notes' interleave as they were written. The feed reads the blocks
    of both, whose rows are ``(ts, payload)`` (:data:`TOPIC_COLUMNS`), and skips the
    rest (usage counters, heartbeats)."""
    return f"CREATE TOPIC IF NOT EXISTS {topic(db)} AS DATABASE {database(db)}"


def notes_tables(db: str) -> str:
    """``(subtable, vgroup)`` of every subtable of the notes."""
    return (
        "SELECT table_name, vgroup_id FROM information_schema.ins_tables "
        f"WHERE db_name = '{database(db)}' AND stable_name = '{NOTES}'"
    )


def vgroups(db: str) -> str:
    return f"SELECT vgroup_id FROM information_schema.ins_vgroups WHERE db_name = '{database(db)}'"


def create_notes_tables(db: str, slots: Sequence[int]) -> str:
    parts = [
        f"{table(db, notes_table(slot))} USING {table(db, NOTES)} TAGS ('{int(slot)}')"
        for slot in slots
    ]
    return "CREATE TABLE " + " ".join(f"IF NOT EXISTS {part}" for part in parts)


def trim_notes(db: str, before_ms: int) -> str:
    return f"DELETE FROM {table(db, NOTES)} WHERE ts < {int(before_ms)}"


def series_of_tables(db: str, names: Sequence[str]) -> str:
    """``(subtable, symbol, data_type, timeframe)`` of the records subtables named (each a
    checked identifier). The super table's own tags, not ``information_schema.ins_tags``,
    which failed with "Vnode is closed or removed" while another database was dropped."""
    listed = ", ".join(f"'{name}'" for name in names if is_identifier(name)) or "''"
    return (
        f"SELECT TAGS tbname, symbol, data_type, timeframe FROM {table(db, RECORDS)} "
        f"WHERE tbname IN ({listed})"
    )


def drop_topic(db: str) -> list[str]:
    return [drop_topic_named(name) for name in [topic(db), *legacy_topics(db)]]


def drop_topic_named(name: str) -> str:
    if not is_identifier(name):
        raise ValueError(f"not a plain TDengine topic name: {name!r}")
    return f"DROP TOPIC IF EXISTS {name}"


def topics_of(db: str) -> str:
    """The names of the topics on the database (whoever made them)."""
    return f"SELECT topic_name FROM information_schema.ins_topics WHERE db_name = '{database(db)}'"


def drop_database(db: str) -> str:
    return f"DROP DATABASE IF EXISTS {database(db)}"


def server_version() -> str:
    """Answered by the client library from what it learnt at connect, even with the server
    down: not a probe."""
    return "SELECT SERVER_VERSION()"


def probe() -> str:
    """A round trip to the server's management node (SERVER_STATUS() and SERVER_VERSION()
    are answered by the client library alone)."""
    return "SELECT COUNT(*) FROM information_schema.ins_dnodes"


def insert_records(db: str) -> str:
    """The statement a write binds: subtable name, its tags, then (ts, payload, chk) rows."""
    return f"INSERT INTO ? USING {table(db, RECORDS)} TAGS (?, ?, ?) VALUES (?, ?, ?)"


def insert_bars(db: str) -> str:
    """The statement a large write binds for its bars' numbers: (ts, shape, six values,
    chk)."""
    values = ", ".join("?" * 9)
    return f"INSERT INTO ? USING {table(db, BARS)} TAGS (?, ?, ?) VALUES ({values})"


# A Write whose multi-table INSERT is at most this many characters is sent as that text:
# 68 series of one bar each took 2.4-2.6 ms as text against 7.1-7.8 ms bound, where 1,000
# rows of one series (276 KB of text) took 4.5 ms against 3.4 ms bound (3.2.2.2, one run
# each, alternating). libtaos parses the text in the caller's thread.
TEXT_INSERT_MAX_CHARS: Final = 128 * 1024


def literal(text: str) -> str:
    """``text`` as a TDengine string literal: in single quotes, each backslash and quote
    escaped (TDengine reads ``\\`` and ``\'``). Payloads are valid JSON and keys have no
    control characters, so no NUL reaches it (tests: a round trip of any such text)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# Rows of a subtable: each its values, or its text already made (:data:`BAR_ROW`).
TextRows = Sequence[tuple[str, Sequence[str], Sequence[Sequence[int | float | str] | str]]]
BAR_ROW: Final = "(%d, %d, %r, %r, %r, %r, %r, %r, %d)"  # of BARS: ts, shape, six numbers, chk


def _value(v: int | float | str) -> str:
    if isinstance(v, int):
        return str(int(v))
    return repr(float(v)) if isinstance(v, float) else literal(v)


def insert_text(
    db: str, stable: str, rows: TextRows, *, before: Sequence[tuple[str, TextRows]] = ()
) -> str:
    """One multi-table INSERT: for each (subtable, tags, rows), created with its tags if
    missing (``before``: those of other super tables, first in the same INSERT). Integers
    are written as integers, floats as the shortest text that reads back the same, strings
    as :func:`literal`."""
    parts = ["INSERT INTO"]
    for parent_name, of_parent in (*before, (stable, rows)):
        parent = table(db, parent_name)
        for subtable, tags, values in of_parent:
            named = ", ".join(map(literal, tags))
            parts.append(f"{table(db, subtable)} USING {parent} TAGS ({named}) VALUES")
            parts.extend(
                row if isinstance(row, str) else "(" + ", ".join(map(_value, row)) + ")"
                for row in values
            )
    return " ".join(parts)


def insert_totals(db: str) -> str:
    return f"INSERT INTO ? USING {table(db, USAGE_TOTALS)} TAGS (?) VALUES (?, ?, ?, ?)"


def insert_evictions(db: str) -> str:
    return f"INSERT INTO ? USING {table(db, USAGE_EVICTIONS)} TAGS (?) VALUES (?, ?, ?)"


def insert_series_usage(db: str) -> str:
    return f"INSERT INTO ? USING {table(db, USAGE_SERIES)} TAGS (?, ?, ?, ?) VALUES (?, ?, ?)"


def insert_replica(db: str) -> str:
    """A replica's heartbeat: one row at ``USAGE_TS_MS``, when it started and last flushed."""
    return f"INSERT INTO ? USING {table(db, REPLICAS)} TAGS (?) VALUES (?, ?, ?)"


def load_replicas(db: str) -> str:
    return f"SELECT replica_name, first_ms, seen_ms FROM {table(db, REPLICAS)}"


def time_bounds(start_ms: int | None, end_ms: int | None) -> tuple[int | None, int | None] | None:
    """The window's bounds clamped to the stored range; ``None`` when nothing can match.

    A bound at or beyond the stored range is dropped (``None``), as it selects everything.
    """
    low = None if start_ms is None or start_ms <= MIN_TS_MS else start_ms
    high = None if end_ms is None or end_ms >= MAX_TS_MS else end_ms
    if (low is not None and low > MAX_TS_MS) or (high is not None and high < MIN_TS_MS):
        return None
    if low is not None and high is not None and low > high:
        return None
    return low, high


READ_COLUMNS: Final = (Kind.INT64, Kind.TEXT)  # what read() selects
CHECK_COLUMNS: Final = (Kind.INT64, Kind.INT64)  # what read(..., columns=CHECK) selects
BARS_COLUMNS: Final = (Kind.INT64, Kind.INT64, *[Kind.DOUBLE] * 6, Kind.INT64)  # BAR_COLUMNS
# A block of the topic: (ts, payload), and after them any other columns, not read (a
# records row's ``chk``; a block written before it was added has none).
TOPIC_COLUMNS: Final = (Kind.INT64, Kind.TEXT)


def read(
    db: str,
    subtable: str,
    low: int | None,
    high: int | None,
    *,
    newest_first: bool,
    fetch: int,
    columns: str = "payload",
) -> str:
    """One series' window; ``fetch`` is the limit plus one, to tell a truncated window.
    ``columns`` after the timestamp: the payload, the check (:data:`CHECK`), or
    :data:`BAR_COLUMNS` of a bars subtable.

    ``CAST(ts AS BIGINT)`` gives exact epoch milliseconds, whatever the client's time zone.
    """
    if columns not in ("payload", CHECK, BAR_COLUMNS):
        raise ValueError(f"not a column list of read(): {columns!r}")
    where = [f"ts >= {int(low)}"] if low is not None else []
    where += [f"ts <= {int(high)}"] if high is not None else []
    selected = f"CAST(ts AS BIGINT), {columns}"
    sql = f"SELECT {selected} FROM {table(db, subtable)}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY ts {'DESC' if newest_first else 'ASC'}"
    return sql + (f" LIMIT {int(fetch)}" if fetch > 0 else "")


def series_counts(db: str, before_ms: int | None = None) -> str:
    """Rows per subtable that holds any (older than ``before_ms``), with its tags.

    Metadata (``information_schema.ins_tables``/``ins_tags``) lists subtables emptied by
    DELETE too, so counting series that hold records needs the rows: this aggregates
    COUNT(*) per subtable, which TDengine answers largely from per-block statistics
    (every block of every subtable is visited, its rows are not decoded unless a
    ``ts`` bound cuts through it). The cost grows with blocks, not with payload bytes.
    """
    sql = f"SELECT tbname, symbol, data_type, timeframe, COUNT(*) FROM {table(db, RECORDS)}"
    if before_ms is not None:
        sql += f" WHERE ts < {int(before_ms)}"
    return sql + " GROUP BY tbname, symbol, data_type, timeframe"


def purge_all(db: str, before_ms: int, stable: str = RECORDS) -> str:
    """DELETE filters on the timestamp only; over the super table it spans every series."""
    return f"DELETE FROM {table(db, stable)} WHERE ts < {int(before_ms)}"


def purge_subtable(db: str, subtable: str, before_ms: int) -> str:
    return f"DELETE FROM {table(db, subtable)} WHERE ts < {int(before_ms)}"


def delete_subtable(db: str, subtable: str) -> str:
    """Every row of one subtable; the subtable stays (a write may be racing us)."""
    return f"DELETE FROM {table(db, subtable)}"


def load_totals(db: str) -> str:
    return f"SELECT replica_name, since_ms, hits, misses FROM {table(db, USAGE_TOTALS)}"


def load_evictions(db: str) -> str:
    return f"SELECT replica_name, evicted_series, evicted_records FROM {table(db, USAGE_EVICTIONS)}"


def load_series_usage(db: str) -> str:
    return (
        "SELECT replica_name, symbol, data_type, timeframe, reads, last_read_ms "
        f"FROM {table(db, USAGE_SERIES)}"
    )


def series_usage_tables(db: str) -> str:
    """Each series-usage subtable holding a row, with its replica (to forget one replica)."""
    return f"SELECT tbname, replica_name FROM {table(db, USAGE_SERIES)}"


def reset_usage(db: str) -> list[str]:
    return [
        f"DELETE FROM {table(db, USAGE_TOTALS)}",
        f"DELETE FROM {table(db, USAGE_SERIES)}",
        f"DELETE FROM {table(db, USAGE_EVICTIONS)}",
    ]
