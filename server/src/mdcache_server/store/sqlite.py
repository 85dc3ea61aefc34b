"""The embedded store: one SQLite file in WAL mode.

Records live in a table clustered by ``(series_id, ts)``, so a window read is one
index range whatever else is stored. Each record is kept as it is sent, one
``SeriesResult.records`` field (``codec.py``): an answer's records are then
``group_concat(record)``, one row made by SQLite without holding the GIL, instead of
a Python object and a message per record; the payload is cut out of it by SQL.
``series.records`` is kept exact (by the write path for inserts, by a trigger for
deletes), so counting is a scan of the series, not of the records. Series rows are never
deleted (an emptied series keeps its id), which keeps every connection's id cache
valid, also across several server processes on one file.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit

import structlog

from mdcache_server import codec
from mdcache_server.codec import FieldRecords
from mdcache_server.errors import ConfigError, StoreError, StoreUnavailable
from mdcache_server.model import (
    PurgeFilter,
    Record,
    SeriesKey,
    SeriesRead,
    SeriesUsage,
    StoreCounts,
    Usage,
    Window,
)

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS series (
    id        INTEGER PRIMARY KEY,
    symbol    TEXT NOT NULL,
    data_type TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    records   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (symbol, data_type, timeframe)
);
CREATE TABLE IF NOT EXISTS records (
    series_id INTEGER NOT NULL,
    ts        INTEGER NOT NULL,
    record    BLOB NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage (
    replica   TEXT PRIMARY KEY,
    since_ms  INTEGER NOT NULL,
    hits      INTEGER NOT NULL,
    misses    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS series_usage (
    replica      TEXT NOT NULL,
    series_id    INTEGER NOT NULL,
    reads        INTEGER NOT NULL,
    last_read_ms INTEGER NOT NULL,
    PRIMARY KEY (replica, series_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS heartbeat (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    at_ms INTEGER NOT NULL
);
DROP TRIGGER IF EXISTS records_inserted;
CREATE TRIGGER IF NOT EXISTS records_deleted AFTER DELETE ON records BEGIN
    UPDATE series SET records = records - 1 WHERE id = OLD.series_id;
END;
"""

COUNT_RANGE: Final = "SELECT COUNT(*) FROM records WHERE series_id = ? AND ts >= ? AND ts <= ?"
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
UPSERT_ROWS: Final = (256, 64, 16, 4, 1)  # at most 768 parameters a statement
UPSERT: Final = {
    rows: "INSERT INTO records (series_id, ts, record) VALUES "  # noqa: S608 (constants only)
    + ", ".join(["(?, ?, ?)"] * rows)
    + " ON CONFLICT (series_id, ts) DO UPDATE SET record = excluded.record"
    for rows in UPSERT_ROWS
}
# Where the payload starts in a record: 1 tag + its length's bytes + 1 tag + the
# timestamp's bytes + 1 tag + the payload length's bytes (varints, see codec.py).
_SIZE = "length(record)"
_SIZE_BYTES = (
    f"(CASE WHEN {_SIZE} <= 129 THEN 1 WHEN {_SIZE} <= 16386 THEN 2 "
    f"WHEN {_SIZE} <= 2097155 THEN 3 ELSE 4 END)"
)
_TS_BYTES = (
    "(CASE WHEN ts < 0 THEN 10 "
    + " ".join(f"WHEN ts < {1 << (7 * n)} THEN {n}" for n in range(1, 9))
    + " ELSE 9 END)"
)
_REST = f"({_SIZE} - {_SIZE_BYTES} - {_TS_BYTES} - 3)"  # payload bytes and their length's
_PAYLOAD_BYTES = (
    f"(CASE WHEN {_REST} <= 128 THEN 1 WHEN {_REST} <= 16385 THEN 2 "
    f"WHEN {_REST} <= 2097154 THEN 3 ELSE 4 END)"
)
PAYLOAD: Final = (
    # Almost every record: a timestamp of 1971 to 2109 (six bytes), a payload of 128 to
    # 16,373 bytes (two length bytes, and two for the record's): the payload at byte 14.
    f"CASE WHEN ts >= {1 << 35} AND ts < {1 << 42} AND {_SIZE} BETWEEN 141 AND 16386 "
    "THEN CAST(substr(record, 14) AS TEXT) "
    f"WHEN {_REST} < 1 THEN '' "  # an empty payload has no field
    f"ELSE CAST(substr(record, 4 + {_SIZE_BYTES} + {_TS_BYTES} + {_PAYLOAD_BYTES}) AS TEXT) END"
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
OLD_LAYOUT: Final = "SELECT COUNT(*) FROM pragma_table_info('records') WHERE name = 'payload'"
MIGRATE: Final = (
    "CREATE TABLE records_as_sent (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, "
    "record BLOB NOT NULL, PRIMARY KEY (series_id, ts)) WITHOUT ROWID",
    "INSERT INTO records_as_sent SELECT series_id, ts, mdcache_record(ts, payload) FROM records",
    "DROP TABLE records",
    "ALTER TABLE records_as_sent RENAME TO records",
)
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
LOAD_USAGE: Final = "SELECT replica, since_ms, hits, misses FROM usage ORDER BY replica"
LOAD_SERIES_USAGE: Final = (
    "SELECT u.replica, s.symbol, s.data_type, s.timeframe, u.reads, u.last_read_ms "
    "FROM series_usage u JOIN series s ON s.id = u.series_id"
)
log = structlog.get_logger(__name__)
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
SYNCHRONOUS: Final = ("OFF", "NORMAL", "FULL", "EXTRA")


def purge_sql(purge: PurgeFilter) -> tuple[str, tuple[object, ...]]:
    """The DELETE for a purge: one primary-key range per matching series."""
    values = (purge.symbol, purge.data_type, purge.timeframe)
    given = tuple(v is not None for v in values)
    return PURGE[given], (*(v for v in values if v is not None), purge.before_ms)


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Translates sqlite3 errors: a file unreachable, locked or full is UNAVAILABLE."""
    try:
        yield
    except (sqlite3.OperationalError, OSError) as exc:
        raise StoreUnavailable(f"sqlite {action}: {exc}") from exc
    except sqlite3.Error as exc:
        raise StoreError(f"sqlite {action}: {exc}") from exc


class SqliteStore:
    """SQLite in one file; with ``synchronous=FULL`` an answered Write survives power loss."""

    name = "sqlite"

    def __init__(
        self, path: Path, *, synchronous: str = "FULL", busy_timeout_ms: int = 5000
    ) -> None:
        if synchronous not in SYNCHRONOUS:
            raise ConfigError(f"sqlite synchronous must be one of {', '.join(SYNCHRONOUS)}")
        self.path = path
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self._schema_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        """``sqlite:///relative.db`` or ``sqlite:////absolute.db``.

        Options: ``?synchronous=NORMAL`` (default FULL), ``?busy_timeout_ms=5000``.
        """
        parts = urlsplit(url)
        path = unquote(parts.path)[1:] if parts.path.startswith("/") else unquote(parts.path)
        if parts.netloc or not path:
            raise ConfigError(f"sqlite URL needs a file path: sqlite:///path/to/file.db, not {url}")
        options = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        try:
            busy_timeout_ms = int(options.get("busy_timeout_ms", "5000"))
        except ValueError:
            raise ConfigError(f"sqlite busy_timeout_ms must be an integer, not {url}") from None
        return cls(
            Path(path),
            synchronous=options.get("synchronous", "FULL").upper(),
            busy_timeout_ms=busy_timeout_ms,
        )

    def connect(self) -> SqliteConnection:
        with translated("connect"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=0
            )
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            except sqlite3.Error:
                conn.close()
                raise
        return SqliteConnection(conn, self._schema_lock)


class SqliteConnection:
    """One SQLite connection, used by one worker thread at a time."""

    def __init__(self, conn: sqlite3.Connection, schema_lock: threading.Lock) -> None:
        self._conn = conn
        self._schema_lock = schema_lock
        self._series_ids: dict[SeriesKey, int] = {}

    def ensure_schema(self) -> None:
        with self._schema_lock, translated("schema"):
            if self._conn.execute(OLD_LAYOUT).fetchone()[0]:
                self._migrate()
            self._conn.executescript(SCHEMA)

    def _migrate(self) -> None:
        """Rewrites a file of mdcache 0.1 (payloads as text) with records as sent, in one
        transaction: another process finds the file either before or after it."""
        started = time.monotonic()
        self._conn.create_function("mdcache_record", 2, codec.encode, deterministic=True)
        with self._transaction():
            if not self._conn.execute(OLD_LAYOUT).fetchone()[0]:
                return  # another process did it meanwhile
            for statement in MIGRATE:
                self._conn.execute(statement)
        log.info(
            "schema_migrated",
            change="records kept as sent",
            seconds=round(time.monotonic() - started, 3),
        )

    def server_version(self) -> str:
        with translated("probe"):
            row = self._conn.execute("SELECT sqlite_version()").fetchone()
        return str(row[0])

    def probe(self) -> None:
        """Writes a heartbeat: a file that can no longer be written (disk full, read-only,
        locked past the busy timeout) fails here, as it would fail a Write."""
        with translated("probe"), self._transaction():
            self._conn.execute(HEARTBEAT, (time.time_ns() // 1_000_000,))

    def _series_id(self, key: SeriesKey, *, create: bool) -> int | None:
        sid = self._series_ids.get(key)
        if sid is None:
            if create:
                self._conn.execute(ADD_SERIES, key)
            row = self._conn.execute(SERIES_ID, key).fetchone()
            if row is None:
                return None
            sid = self._series_ids[key] = int(row[0])
        return sid

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """A write transaction taken at once (BEGIN IMMEDIATE): it never upgrades a read lock."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def write(self, batches: Sequence[tuple[SeriesKey, Sequence[Record]]]) -> int:
        """Upserts; ``series.records`` grows by the rows new in the batch's time range (two
        index range counts a batch, not a trigger a row: a third of the cost of a write)."""
        written = 0
        execute = self._conn.execute
        with translated("write"), self._transaction():
            for key, records in batches:
                sid = self._series_id(key, create=True)
                if sid is None:  # made just above, in this transaction
                    raise StoreError(f"sqlite write: no series row for {key}")
                stamps = (
                    records.ts if isinstance(records, FieldRecords) else [r[0] for r in records]
                )
                low, high = min(stamps), max(stamps)
                before = execute(COUNT_RANGE, (sid, low, high)).fetchone()[0]
                self._upsert(sid, stamps, codec.fields_of(records))
                after = execute(COUNT_RANGE, (sid, low, high)).fetchone()[0]
                execute(ADD_RECORDS, (after - before, sid))
                written += len(records)
        return written

    def _upsert(self, sid: int, stamps: Sequence[int], fields: Sequence[bytes]) -> None:
        values = list(itertools.chain.from_iterable(zip(itertools.repeat(sid), stamps, fields)))
        done, total = 0, len(stamps)
        for rows in UPSERT_ROWS:
            while total - done >= rows:
                self._conn.execute(UPSERT[rows], values[3 * done : 3 * (done + rows)])
                done += rows

    def _windows(
        self,
        series: Sequence[SeriesKey],
        window: Window,
        read: Callable[[int, int, int, int], SeriesRead],
    ) -> list[SeriesRead]:
        """``read(series_id, start, end, limit)`` for each series that exists; SQLite
        bounds (a negative limit is none)."""
        start = INT64_MIN if window.start_ms is None else window.start_ms
        end = INT64_MAX if window.end_ms is None else window.end_ms
        limit = window.limit if window.limit > 0 else -1
        results = []
        with translated("read"):
            for key in series:
                sid = self._series_id(key, create=False)
                found = None if sid is None else read(sid, start, end, limit)
                results.append(found or SeriesRead([], truncated=False))
        return results

    def read(self, series: Sequence[SeriesKey], window: Window) -> list[SeriesRead]:
        sql = READ[window.newest_first]

        def rows(sid: int, start: int, end: int, limit: int) -> SeriesRead:
            found = self._conn.execute(sql, (sid, start, end, limit + 1 if limit > 0 else -1))
            kept = found.fetchall()
            truncated = 0 < limit < len(kept)
            if truncated:
                kept = kept[:limit]
            records = [Record(ts, p) for ts, p, _ in kept]
            return SeriesRead(records, truncated, encoded=[r[2] for r in kept])

        return self._windows(series, window, rows)

    def read_answer(self, series: Sequence[SeriesKey], window: Window) -> list[SeriesRead]:
        """The window of each series as :meth:`read` finds it, its records encoded in one
        run (``SeriesRead.encoded``: one item) and decoded only if looked at."""
        sql = ANSWER[window.newest_first]

        def run(sid: int, start: int, end: int, limit: int) -> SeriesRead:
            count, data, more = self._conn.execute(sql, (sid, start, end, limit)).fetchone()
            if not count:
                return SeriesRead([], truncated=False)
            return SeriesRead(codec.EncodedRecords(data, count), bool(more), encoded=[data])

        return self._windows(series, window, run)

    def purge(self, purge: PurgeFilter) -> int:
        sql, params = purge_sql(purge)
        with translated("purge"):
            return int(self._conn.execute(sql, params).rowcount)

    def counts(self) -> StoreCounts:
        with translated("count"):
            records, series, symbols = self._conn.execute(COUNTS).fetchone()
        return StoreCounts(records=int(records), series=int(series), symbols=int(symbols))

    def list_series(self) -> list[tuple[SeriesKey, int]]:
        with translated("list series"):
            rows = self._conn.execute(LIST_SERIES).fetchall()
        return [(SeriesKey(sym, dt, tf), int(n)) for sym, dt, tf, n in rows]

    def drop_series(self, series: Sequence[SeriesKey]) -> int:
        dropped = 0
        with translated("drop series"), self._transaction():
            for key in series:
                sid = self._series_id(key, create=False)
                if sid is not None:
                    dropped += self._conn.execute(DROP_SERIES, (sid,)).rowcount
        return dropped

    def save_usage(self, usage: Usage) -> None:
        with translated("save usage"), self._transaction():
            self._conn.execute(
                SAVE_USAGE, (usage.replica, usage.since_ms, usage.hits, usage.misses)
            )
            rows = [
                (usage.replica, self._series_id(key, create=True), u.reads, u.last_read_ms)
                for key, u in usage.series.items()
            ]
            self._conn.executemany(SAVE_SERIES_USAGE, rows)

    def load_usage(self) -> list[Usage]:
        with translated("load usage"):
            totals = self._conn.execute(LOAD_USAGE).fetchall()
            series_rows = self._conn.execute(LOAD_SERIES_USAGE).fetchall()
        by_replica: dict[str, dict[SeriesKey, SeriesUsage]] = {r[0]: {} for r in totals}
        for replica, sym, dt, tf, reads, last in series_rows:
            by_replica.setdefault(replica, {})[SeriesKey(sym, dt, tf)] = SeriesUsage(reads, last)
        return [
            Usage(replica, since, hits, misses, by_replica[replica])
            for replica, since, hits, misses in totals
        ]

    def reset_usage(self, replica: str | None = None) -> None:
        with translated("reset usage"), self._transaction():
            if replica is None:
                self._conn.execute("DELETE FROM usage")
                self._conn.execute("DELETE FROM series_usage")
            else:
                self._conn.execute("DELETE FROM usage WHERE replica = ?", (replica,))
                self._conn.execute("DELETE FROM series_usage WHERE replica = ?", (replica,))

    def close(self) -> None:
        with suppress(sqlite3.Error):
            self._conn.close()
