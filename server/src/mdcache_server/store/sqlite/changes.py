"""The change feed of replicas sharing one SQLite file: a journal file beside it.

Each replica appends the records of a Write to ``<store file>-changes`` once the store
holds them and before the Write is answered, so SQLite numbers them in the order of every
replica's acknowledgements, and every replica reads them back in that order: a subscriber
sees one order whichever replica it is connected to. A poll is one indexed query
(``id > last``): cheap on an idle store. The journal keeps rows for ``keep_seconds``; it
is a relay, not the data (the store is): a replica that crashes between the store's
commit and the journal's leaves that Write unpushed (a subscriber that replays from the
store with ``since_ms`` still gets it).

Only while some replica follows the journal (it has Subscribe streams) do Writes go into
it: a follower keeps a heartbeat row in ``followers``; a writer looks for a fresh one at
most every ``CHECK_SECONDS`` and journals only when it finds one, so replicas nobody
subscribes to write no more than one server does. A follower is ready ``READY_SECONDS``
after its first heartbeat, once every writer has looked again, so no Write acknowledged
after that is left out.

Purges and evictions are journalled too, as notes (a row with an empty symbol, the filter
as JSON in its payload), so every replica drops the copies they touch. A mark is the
journal's highest id: rows are numbered in commit order, so once a poll has read up to it,
every Write acknowledged before it was taken has been read.

Appends and polls each have a connection of their own (they run on different threads).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from mdcache_server.errors import StoreUnavailable
from mdcache_server.model import PurgeFilter, Record, SeriesKey
from mdcache_server.store.base import Polled, StoredChange

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS changes (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "replica TEXT NOT NULL, at_ms INTEGER NOT NULL, symbol TEXT NOT NULL, "
    "data_type TEXT NOT NULL, timeframe TEXT NOT NULL, ts_ms INTEGER NOT NULL, "
    "payload TEXT NOT NULL)"
)
FOLLOWERS = (
    "CREATE TABLE IF NOT EXISTS followers (replica TEXT PRIMARY KEY, seen_ms INTEGER NOT NULL)"
)
BATCH = 10_000  # rows a poll returns at most
CHECK_SECONDS = 1.0  # a writer looks for followers at most this often
READY_SECONDS = 1.5  # a new follower waits this long: every writer has looked again
HEARTBEAT_SECONDS = 1.0  # a follower's heartbeat, at most this often
STALE_SECONDS = 10.0  # a heartbeat older than this is a follower gone (crashed)


class JournalFeed:
    """:class:`~mdcache_server.store.base.ChangeFeed` of replicas on one SQLite file."""

    journals = True

    def __init__(self, path: Path, replica: str, keep_seconds: float = 300.0) -> None:
        self.path, self.replica, self.keep_seconds = path, replica, keep_seconds
        self._appender: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # the appender is used by one thread at a time
        self._appended = threading.Event()  # an append here: poll at once
        self._last = 0
        self._trimmed = time.monotonic()
        self._followed_seen = False  # at a writer's last look
        self._looked = -CHECK_SECONDS
        self._beat = 0.0

    def _followed(self, conn: sqlite3.Connection) -> bool:
        """Whether some replica follows the journal (looked up at most every CHECK_SECONDS)."""
        now = time.monotonic()
        if now - self._looked >= CHECK_SECONDS:
            fresh = int((time.time() - STALE_SECONDS) * 1000)
            row = conn.execute("SELECT 1 FROM followers WHERE seen_ms > ? LIMIT 1", (fresh,))
            self._followed_seen = row.fetchone() is not None
            self._looked = now
        return self._followed_seen

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=5.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # a relay: the store holds the data
            conn.execute(SCHEMA)
            conn.execute(FOLLOWERS)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"changes journal {self.path}: {exc}") from exc
        return conn

    def record(self, changes: Sequence[StoredChange]) -> None:
        self._append([(*key, r.ts_ms, r.payload) for key, r in changes])

    def note(self, forgotten: Sequence[PurgeFilter]) -> None:
        self._append([("", "", "", 0, _note(purge)) for purge in forgotten])

    def mark(self) -> int:
        with self._lock:
            try:
                if self._appender is None:
                    self._appender = self._connect()
                row = self._appender.execute("SELECT COALESCE(MAX(id), 0) FROM changes")
                return int(row.fetchone()[0])
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"changes journal {self.path}: {exc}") from exc

    def _append(self, rows: list[tuple[str, str, str, int, str]]) -> None:
        now = int(time.time() * 1000)
        with self._lock:
            try:
                if self._appender is None:
                    self._appender = self._connect()
                if not self._followed(self._appender):
                    return
                with self._appender as conn:
                    conn.execute("BEGIN IMMEDIATE")
                    conn.executemany(
                        "INSERT INTO changes (replica, at_ms, symbol, data_type, timeframe, "
                        "ts_ms, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [(self.replica, now, *row) for row in rows],
                    )
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"changes journal {self.path}: {exc}") from exc
        self._appended.set()

    def _reading(self) -> sqlite3.Connection:
        if self._reader is None:
            self._reader = self._connect()
        return self._reader

    def _heartbeat(self) -> None:
        self._reading().execute(
            "INSERT INTO followers (replica, seen_ms) VALUES (?, ?) "
            "ON CONFLICT (replica) DO UPDATE SET seen_ms = excluded.seen_ms",
            (self.replica, int(time.time() * 1000)),
        )
        self._beat = time.monotonic()

    def start(self) -> None:
        try:
            self._heartbeat()
            time.sleep(READY_SECONDS)  # every writer has looked again, and found it
            row = self._reading().execute("SELECT COALESCE(MAX(id), 0) FROM changes").fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"changes journal {self.path}: {exc}") from exc
        self._last = int(row[0])

    def _after(self) -> list[tuple[int, str, str, str, int, str]]:
        rows = (
            self._reading()
            .execute(
                "SELECT id, symbol, data_type, timeframe, ts_ms, payload FROM changes "
                "WHERE id > ? ORDER BY id LIMIT ?",
                (self._last, BATCH),
            )
            .fetchall()
        )
        if rows:
            self._last = int(rows[-1][0])
        return rows

    def poll(self, wait: float) -> Polled:
        try:
            rows = self._after()
            if not rows:
                # An append here wakes the poll at once; others' within ``wait`` seconds.
                self._appended.wait(wait)
                self._appended.clear()
                rows = self._after()
            if time.monotonic() - self._beat >= HEARTBEAT_SECONDS:
                self._heartbeat()
            if time.monotonic() - self._trimmed > self.keep_seconds / 10:
                self._trimmed = time.monotonic()
                cutoff = int((time.time() - self.keep_seconds) * 1000)
                self._reading().execute("DELETE FROM changes WHERE at_ms < ?", (cutoff,))
                # and followers that crashed (gone STALE_SECONDS ago; long since, here)
                self._reading().execute("DELETE FROM followers WHERE seen_ms < ?", (cutoff,))
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"changes journal {self.path}: {exc}") from exc
        changes: list[StoredChange] = []
        forgotten: list[PurgeFilter] = []
        for _, s, d, t, ts, p in rows:
            if s:
                changes.append((SeriesKey(s, d, t), Record(ts, p)))
            else:
                forgotten.append(_forgotten(p))
        return Polled(changes, forgotten, self._last)

    def close(self, *, exiting: bool = False) -> None:
        if self._reader is not None:
            with contextlib.suppress(sqlite3.Error):  # else stale in STALE_SECONDS
                self._reader.execute("DELETE FROM followers WHERE replica = ?", (self.replica,))
        for conn in (self._appender, self._reader):
            if conn is not None:
                conn.close()
        self._appender = self._reader = None


def _note(purge: PurgeFilter) -> str:
    return json.dumps([purge.symbol, purge.data_type, purge.timeframe])


def _forgotten(payload: str) -> PurgeFilter:
    symbol, data_type, timeframe = json.loads(payload)
    return PurgeFilter(0, symbol, data_type, timeframe)
