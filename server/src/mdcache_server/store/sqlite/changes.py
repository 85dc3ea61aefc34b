"""The change feed of replicas sharing one SQLite file: a journal file beside it.

Each replica appends the records of a Write to ``<store file>-changes`` once the store
holds them and before the Write is answered, so SQLite numbers them in the order of every
replica's acknowledgements, and every replica reads them back in that order: a subscriber
sees one order whichever replica it is connected to. A poll is one indexed query
(``id > last``): cheap on an idle store. The journal keeps rows for ``keep_seconds``; it
is a relay, not the data (the store is): a replica that crashes between the store's
commit and the journal's leaves that Write unpushed (a subscriber that replays from the
store with ``since_ms`` still gets it).

Appends and polls each have a connection of their own (they run on different threads).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from mdcache_server.errors import StoreUnavailable
from mdcache_server.model import Record, SeriesKey
from mdcache_server.store.base import Change

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS changes (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "replica TEXT NOT NULL, at_ms INTEGER NOT NULL, symbol TEXT NOT NULL, "
    "data_type TEXT NOT NULL, timeframe TEXT NOT NULL, ts_ms INTEGER NOT NULL, "
    "payload TEXT NOT NULL)"
)
BATCH = 10_000  # rows a poll returns at most


class JournalFeed:
    """:class:`~mdcache_server.store.base.ChangeFeed` of replicas on one SQLite file."""

    journals = True

    def __init__(self, path: Path, replica: str, poll: float, keep_seconds: float = 300.0) -> None:
        self.path, self.replica, self.keep_seconds = path, replica, keep_seconds
        self._poll = poll
        self._appender: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # the appender is used by one thread at a time
        self._appended = threading.Event()  # an append here: poll at once
        self._last = 0
        self._trimmed = time.monotonic()

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=5.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # a relay: the store holds the data
            conn.execute(SCHEMA)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"changes journal {self.path}: {exc}") from exc
        return conn

    def record(self, changes: Sequence[Change]) -> None:
        now = int(time.time() * 1000)
        with self._lock:
            try:
                if self._appender is None:
                    self._appender = self._connect()
                with self._appender as conn:
                    conn.execute("BEGIN IMMEDIATE")
                    conn.executemany(
                        "INSERT INTO changes (replica, at_ms, symbol, data_type, timeframe, "
                        "ts_ms, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [(self.replica, now, *key, r.ts_ms, r.payload) for key, r in changes],
                    )
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"changes journal {self.path}: {exc}") from exc
        self._appended.set()

    def _reading(self) -> sqlite3.Connection:
        if self._reader is None:
            self._reader = self._connect()
        return self._reader

    def start(self) -> None:
        try:
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

    def poll(self, wait: float) -> list[Change]:
        try:
            rows = self._after()
            if not rows:
                # An append here wakes the poll at once; others' within ``poll`` seconds.
                self._appended.wait(min(wait, self._poll))
                self._appended.clear()
                rows = self._after()
            if time.monotonic() - self._trimmed > self.keep_seconds / 10:
                self._trimmed = time.monotonic()
                cutoff = int((time.time() - self.keep_seconds) * 1000)
                self._reading().execute("DELETE FROM changes WHERE at_ms < ?", (cutoff,))
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"changes journal {self.path}: {exc}") from exc
        return [(SeriesKey(s, d, t), Record(ts, p)) for _, s, d, t, ts, p in rows]

    def close(self) -> None:
        for conn in (self._appender, self._reader):
            if conn is not None:
                conn.close()
        self._appender = self._reader = None
