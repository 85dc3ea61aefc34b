"""Changes shared by the replicas of one SQLite store, through a journal file beside it.

Each replica appends the records of a Write to ``<store file>-changes`` once the store
holds them and before the Write is answered, so SQLite numbers them in the order of every
replica's acknowledgements. Each replica polls the journal every ``poll`` seconds (at
once after its own appends) and its hub pushes the rows, its own and the others', in
that order: a subscriber sees one order whichever replica it is connected to. A poll is
one indexed query (``id > last``): cheap on an idle store. The journal keeps rows for
``keep_seconds``; it is a relay, not the data (the store is): a replica that crashes
between the store's commit and the journal's leaves that Write unpushed (a subscriber
that replays from the store with ``since_ms`` still gets it), and a journal that cannot
be written is logged (``journal_failed``) without failing the Write.

All blocking calls run on one thread of the journal's own, which owns the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import structlog

from mdcache_server.errors import StoreUnavailable
from mdcache_server.live.hub import Hub
from mdcache_server.model import Record, SeriesKey

log = structlog.get_logger(__name__)
T = TypeVar("T")
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS changes (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "replica TEXT NOT NULL, at_ms INTEGER NOT NULL, symbol TEXT NOT NULL, "
    "data_type TEXT NOT NULL, timeframe TEXT NOT NULL, ts_ms INTEGER NOT NULL, "
    "payload TEXT NOT NULL)"
)
Row = tuple[str, str, str, int, str]


class Journal:
    def __init__(self, path: Path, replica: str, keep_seconds: float = 300.0) -> None:
        self.path, self.replica, self.keep_seconds = path, replica, keep_seconds
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="mdcache-journal")
        self._conn: sqlite3.Connection | None = None
        self._wake = asyncio.Event()

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"changes journal: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # a relay: the store holds the data
            conn.execute(SCHEMA)
            self._conn = conn
        return self._conn

    def _latest(self) -> int:
        row = self._connection().execute("SELECT COALESCE(MAX(id), 0) FROM changes").fetchone()
        return int(row[0])

    def _append(self, changes: Sequence[tuple[SeriesKey, Record]]) -> None:
        now = int(time.time() * 1000)
        conn = self._connection()
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO changes (replica, at_ms, symbol, data_type, timeframe, ts_ms, "
                "payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(self.replica, now, *key, r.ts_ms, r.payload) for key, r in changes],
            )

    def _after(self, last: int) -> tuple[int, list[Row]]:
        rows = (
            self._connection()
            .execute(
                "SELECT id, replica, symbol, data_type, timeframe, ts_ms, payload FROM changes "
                "WHERE id > ? ORDER BY id LIMIT 10000",
                (last,),
            )
            .fetchall()
        )
        if not rows:
            return last, []
        return int(rows[-1][0]), [(r[2], r[3], r[4], r[5], r[6]) for r in rows]

    def _trim(self) -> None:
        cutoff = int((time.time() - self.keep_seconds) * 1000)
        self._connection().execute("DELETE FROM changes WHERE at_ms < ?", (cutoff,))

    async def append(self, changes: list[tuple[SeriesKey, Record]]) -> None:
        """Journals a Write's records (the hub's ``journal``)."""
        try:
            await self._run(self._append, changes)
        except StoreUnavailable as exc:
            log.warning("journal_failed", error=str(exc), records=len(changes))
        self._wake.set()

    async def relay(self, hub: Hub, poll: float) -> None:
        """Publishes the journal's rows to the hub in their order, until cancelled."""
        last = await self._run(self._latest)
        hub.journal = self.append
        trimmed = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll)
            self._wake.clear()
            try:
                last, rows = await self._run(self._after, last)
                if rows:
                    hub.publish([(SeriesKey(s, d, t), [Record(ts, p)]) for s, d, t, ts, p in rows])
                if time.monotonic() - trimmed > self.keep_seconds / 10:
                    trimmed = time.monotonic()
                    await self._run(self._trim)
            except StoreUnavailable as exc:
                log.warning("journal_failed", error=str(exc))

    def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()

        self._thread.submit(shut).result()
        self._thread.shutdown()
