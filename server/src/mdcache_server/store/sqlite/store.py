"""The SQLite store and its connections (the SQL is in ``sql.py``, the tables in ``schema.py``)."""

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

from mdcache_server.barnumbers import BarNumbers, Counted, packed
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
from mdcache_server.store.base import Chooser, Eviction
from mdcache_server.store.sqlite.changes import JournalFeed
from mdcache_server.store.sqlite.schema import (
    ADD_BARS,
    ADD_VERSION,
    MIGRATE,
    NO_BARS,
    NO_VERSION,
    OLD_LAYOUT,
    SCHEMA,
)
from mdcache_server.store.sqlite.servers import FileClaim
from mdcache_server.store.sqlite.sql import (
    ADD_RECORDS,
    ADD_SERIES,
    ANSWER,
    BARS,
    COUNT_RANGE,
    COUNTS,
    DROP_SERIES,
    HEARTBEAT,
    LIST_SERIES,
    LOAD_REPLICAS,
    LOAD_SERIES_USAGE,
    LOAD_USAGE,
    READ,
    SAVE_EVICTIONS,
    SAVE_REPLICA,
    SAVE_SERIES_USAGE,
    SAVE_USAGE,
    SERIES_ID,
    UPSERT,
    UPSERT_ROWS,
    UPSERT_VALUES,
    purge_sql,
)
from mdcache_server.wire import codec
from mdcache_server.wire.codec import FieldRecords

log = structlog.get_logger(__name__)
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
SYNCHRONOUS: Final = ("OFF", "NORMAL", "FULL", "EXTRA")


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Translates sqlite3 errors: a file unreachable, locked or full is UNAVAILABLE."""
    try:
        yield
    except (sqlite3.OperationalError, OSError) as exc:
        raise StoreUnavailable(f"sqlite {action}: {exc}") from exc
    except sqlite3.Error as exc:
        raise StoreError(f"sqlite {action}: {exc}") from exc


def _payloads(records: Sequence[Record]) -> Sequence[str]:
    if isinstance(records, FieldRecords):
        return records.payloads
    return [r.payload for r in records]


class SqliteStore:
    """SQLite in one file; with ``synchronous=FULL`` an answered Write survives power loss."""

    name = "sqlite"
    default_workers = 2  # its calls hold the GIL: more threads only contend
    shared = False  # a file on this machine: its replicas are this server's --processes
    atomic_evictions = True  # count and evict in one write transaction

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

    def change_feed(self, replica: str) -> JournalFeed:
        """A journal beside the file (``<file>-changes``), shared by its replicas."""
        return JournalFeed(Path(f"{self.path}-changes"), replica)

    def claim(self, *, alone: bool) -> FileClaim:
        """A lock beside the file (``<file>-servers``, ``servers.py``)."""
        with translated("claim"):
            return FileClaim(self.path, alone=alone)

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
            with self._transaction():  # before the trigger that uses it; once among processes
                if self._conn.execute(NO_VERSION).fetchone()[0]:
                    self._conn.execute(ADD_VERSION)
            self._conn.executescript(SCHEMA)
            with self._transaction():
                if self._conn.execute(NO_BARS).fetchone()[0]:
                    self._conn.execute(ADD_BARS)
                    log.info("schema_migrated", change="records keep bars' numbers")

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
                bars = packed(stamps, _payloads(records))
                self._upsert(sid, stamps, codec.fields_of(records), bars)
                after = execute(COUNT_RANGE, (sid, low, high)).fetchone()[0]
                execute(ADD_RECORDS, (after - before, sid))
                written += len(records)
        return written

    def _upsert(
        self,
        sid: int,
        stamps: Sequence[int],
        fields: Sequence[bytes],
        bars: Sequence[bytes | None],
    ) -> None:
        values = list(
            itertools.chain.from_iterable(zip(itertools.repeat(sid), stamps, fields, bars))
        )
        done, total, n = 0, len(stamps), UPSERT_VALUES
        for rows in UPSERT_ROWS:
            while total - done >= rows:
                self._conn.execute(UPSERT[rows], values[n * done : n * (done + rows)])
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
        bars_sql = BARS[window.newest_first]

        def run(sid: int, start: int, end: int, limit: int) -> SeriesRead:
            if window.bars:  # their numbers, when every record keeps them alike
                count, numbered, data, more = self._conn.execute(
                    bars_sql, (sid, start, end, limit)
                ).fetchone()
                if not count:
                    return SeriesRead([], truncated=False)
                if numbered == count:
                    bars = BarNumbers.unpacked(data)
                    if bars.uniform():
                        return SeriesRead(Counted[Record](count), bool(more), bars=bars)
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

    def evict(self, max_records: int, choose: Chooser) -> Eviction:
        """Counts, reads every replica's counters and drops what ``choose`` picks, in one
        write transaction: replicas sharing the file evict one after another, each from
        the count the one before left."""
        with translated("evict"), self._transaction():
            listed = self.list_series()
            chosen = choose(listed, self.load_usage(), max_records)
            dropped = 0
            for key in chosen:
                sid = self._series_id(key, create=False)
                if sid is not None:
                    dropped += self._conn.execute(DROP_SERIES, (sid,)).rowcount
        return Eviction(listed, chosen, dropped)

    def heartbeat(self, replica: str, first_ms: int, now_ms: int) -> dict[str, tuple[int, int]]:
        with translated("heartbeat"):
            with self._transaction():
                self._conn.execute(SAVE_REPLICA, (replica, first_ms, now_ms))
            rows = self._conn.execute(LOAD_REPLICAS).fetchall()
        return {str(r): (int(first), int(seen)) for r, first, seen in rows}

    def save_usage(self, usage: Usage) -> None:
        with translated("save usage"), self._transaction():
            self._conn.execute(
                SAVE_USAGE, (usage.replica, usage.since_ms, usage.hits, usage.misses)
            )
            self._conn.execute(
                SAVE_EVICTIONS, (usage.replica, usage.evicted_series, usage.evicted_records)
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
            Usage(replica, since, hits, misses, by_replica[replica], series, records)
            for replica, since, hits, misses, series, records in totals
        ]

    def reset_usage(self, replica: str | None = None) -> None:
        with translated("reset usage"), self._transaction():
            if replica is None:
                self._conn.execute("DELETE FROM usage")
                self._conn.execute("DELETE FROM usage_evictions")
                self._conn.execute("DELETE FROM series_usage")
            else:
                self._conn.execute("DELETE FROM usage WHERE replica = ?", (replica,))
                self._conn.execute("DELETE FROM usage_evictions WHERE replica = ?", (replica,))
                self._conn.execute("DELETE FROM series_usage WHERE replica = ?", (replica,))

    def close(self) -> None:
        with suppress(sqlite3.Error):
            self._conn.close()
