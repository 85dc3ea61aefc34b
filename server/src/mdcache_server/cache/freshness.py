"""Read-your-writes across replicas: held copies checked against the store's change versions.

Every write, purge and eviction advances a series' version in the store
(``StoreConnection.versions``). A held copy remembers the version it was read at, and
answers a Read only if a check of that version that started after the Read arrived
found it unchanged; a copy that changed is dropped (and read again, whole, by the Read).

Checks run in rounds, one store call each for every series the waiting Reads hold: a
Read that arrives while a round is in flight joins the next one, which starts when that
one ends. So a write acknowledged by any replica before a Read starts is in its answer,
at the price of one short store round trip per round, shared by every Read waiting.

A store with a change stamp (SQLite's ``PRAGMA data_version``, read on the event loop in
microseconds) spares most rounds: while the stamp reads as it did when the last round
began, nothing was committed since, so every copy current then is current still.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

from mdcache_server.cache.hot import HotTier
from mdcache_server.model import SeriesKey
from mdcache_server.pool import WorkerPool
from mdcache_server.store.base import StoreConnection


@dataclass
class _Round:
    keys: set[SeriesKey] = field(default_factory=set)
    done: asyncio.Future[None] | None = None


class Freshness:
    """Checks held copies in shared rounds; ``await check(keys)`` returns after a round
    that started after the call has checked every key."""

    def __init__(
        self, pool: WorkerPool, hot: HotTier, stamp: Callable[[], int] | None = None
    ) -> None:
        self.pool = pool
        self.hot = hot
        self.stamp = stamp
        self._stamped: tuple[int, float] | None = None  # (stamp, when) as a round began
        self.rounds = 0  # store calls made
        self.dropped = 0  # held copies found changed
        self._next: _Round | None = None
        self._task: asyncio.Task[None] | None = None

    async def check(self, keys: Iterable[SeriesKey]) -> None:
        keys = list(keys)
        if self.stamp is not None and self._stamped is not None:
            value, since = self._stamped
            if self.stamp() == value and self.hot.current_since(keys, since, self.hot.clock()):
                return  # nothing committed since a round found them current
        loop = asyncio.get_running_loop()
        pending = self._next
        if pending is None:
            pending = self._next = _Round(done=loop.create_future())
        pending.keys.update(keys)
        assert pending.done is not None
        if self._task is None:
            self._task = loop.create_task(self._run())
        # Shielded: a Read that goes away does not cancel the round others wait for.
        await asyncio.shield(pending.done)

    async def _run(self) -> None:
        try:
            while self._next is not None:
                current, self._next = self._next, None
                assert current.done is not None
                keys = list(current.keys)
                at = self.hot.clock()  # after every waiting Read arrived
                stamped = None if self.stamp is None else (self.stamp(), at)
                try:
                    found = await self.pool.run(partial(_versions, keys))
                except BaseException as exc:
                    if not current.done.done():
                        current.done.set_exception(exc)
                        current.done.add_done_callback(_retrieved)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                self.rounds += 1
                self.dropped += self.hot.revalidated(found, at)
                if stamped is not None:
                    self._stamped = stamped
                if not current.done.done():
                    current.done.set_result(None)
        finally:
            self._task = None

    async def close(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _versions(keys: list[SeriesKey], conn: StoreConnection) -> dict[SeriesKey, int]:
    return conn.versions(keys)


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
