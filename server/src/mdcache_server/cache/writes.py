"""Group commit: Writes that arrive while one is being committed go in together, next.

A committed Write costs the store one durable commit (an fsync, for SQLite with
``synchronous=FULL``), however few its records. Concurrent callers therefore share
commits: the first Write is committed at once, and those that arrive meanwhile are
committed together, in one store call, as soon as it is done. Every caller is answered
only after the commit that holds its records. Should a shared commit fail for a reason
other than the store being unreachable, each of its Writes is retried alone, so that
the error reaches the caller whose records caused it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from mdcache_server.errors import StoreError, StoreUnavailable
from mdcache_server.model import Record, SeriesKey
from mdcache_server.pool import WorkerPool

Batches = Sequence[tuple[SeriesKey, Sequence[Record]]]


class GroupWriter:
    """``await writer.write(batches)`` returns once a commit holding them is done."""

    def __init__(self, pool: WorkerPool, *, max_records: int) -> None:
        self.pool = pool
        self.max_records = max_records  # records in one shared commit at most
        self._queue: list[tuple[Batches, asyncio.Future[int]]] = []
        self._draining: asyncio.Task[None] | None = None
        self.commits = 0

    async def write(self, batches: Batches) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)  # its caller may have gone (a deadline)
        self._queue.append((batches, future))
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain(), name="group-commit")
        return await asyncio.shield(future)  # a cancelled caller's records still commit

    async def _drain(self) -> None:
        try:
            while self._queue:
                group = [self._queue.pop(0)]
                size = _count(group[0][0])
                while self._queue and size + _count(self._queue[0][0]) <= self.max_records:
                    size += _count(self._queue[0][0])
                    group.append(self._queue.pop(0))
                await self._commit(group)
        finally:
            self._draining = None

    async def _commit(self, group: list[tuple[Batches, asyncio.Future[int]]]) -> None:
        merged = [entry for batches, _ in group for entry in batches]
        self.commits += 1
        try:
            await self.pool.run(lambda conn: conn.write(merged), "write")
        except StoreError as exc:
            if len(group) > 1 and not isinstance(exc, StoreUnavailable):
                for member in group:
                    await self._commit([member])
                return
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # cancelled (the server is stopping) or a bug: nobody waits on
            for _, future in group:
                future.cancel()
            raise
        for batches, future in group:
            if not future.done():
                future.set_result(_count(batches))


def _retrieved(future: asyncio.Future[int]) -> None:
    """Marks a commit's error as seen: a caller that went away leaves nobody to raise it to
    (asyncio would print "Future exception was never retrieved")."""
    if not future.cancelled():
        future.exception()


def _count(batches: Batches) -> int:
    return sum(len(records) for _, records in batches)
