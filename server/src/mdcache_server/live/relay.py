"""Every replica's writes to this process's subscribers, through the store's change feed.

Replicas of one store (servers on one SQLite file, ``--processes``, servers on one
TDengine database) each take writes; a subscriber connected to any of them must see them
all. With a relay, a Write's records are not pushed by the replica that took them but
handed to the store's feed (``store.base.ChangeFeed``: a journal beside a SQLite file,
TDengine's own subscriptions; ``live/delivery.py``'s ``Relayed``), and every replica
pushes what comes out of the feed, in its order: one order per series for every
subscriber, whichever replica it is on.

The feed is followed from the first Subscribe stream on (a stream's headers are sent
once it is, so no write acknowledged after them is missed) until no stream has been
open for ``RESUME_SECONDS`` (a TDengine consumer polling every 10 ms costs about 9 % of a
core, idle; nothing when not followed), or all the time where a :class:`Follower` keeps
the hot tier's copies by it (``cache/coherence.py``): it gets every poll, and the marks
and notes it asks for go to the feed on the relay's thread for writes. If
following fails (the store is down), every open stream ends UNAVAILABLE and the hub
starts a new ``stream`` id: clients subscribe again and, their resume point unknown to
the new id, replay from the store (``client/_live.py``), so nothing is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Protocol

import structlog

from mdcache_server.errors import StoreUnavailable
from mdcache_server.live.hub import Hub
from mdcache_server.model import PurgeFilter
from mdcache_server.store.base import ChangeFeed, Polled, StoredChange

log = structlog.get_logger(__name__)
# A mark (``horizon``) resolves at the first empty poll begun HORIZON_MIN after it, or
# after HORIZON_CAP whatever the feed did. The margin covers what an empty poll alone does
# not: another replica's journal append, which follows its store commit, and a TDengine
# consumer's poll of one vnode finding nothing while another still holds changes.
HORIZON_MIN = 0.5
HORIZON_CAP = 2.0
# A poll's wait when only a follower wants the feed, none of its marks is in flight and
# the feed gave nothing for ACTIVE_SECONDS: fewer polls of an idle feed (each 10 ms poll of
# TDengine's costs CPU: about 9 % of a core idle), and a change still reaches the hot tier
# well within its 1 s bound. While changes come, polls wait ``Relay.wait``: another
# replica's Write is in held copies within about 10 ms (``python -m bench.freshness``:
# 50 ms at the 99th percentile with 50 ms polls throughout).
FOLLOWER_WAIT = 0.05
ACTIVE_SECONDS = 1.0


class Follower(Protocol):
    """Keeps something by the feed (the hot tier: ``cache/coherence.py``). Called on the
    event loop."""

    def started(self) -> None:
        """The feed follows: every change acknowledged from now on will be polled."""

    def lost(self) -> None:
        """The feed stopped following: changes may go by unseen until it starts again."""

    def polled(self, polled: Polled) -> None:
        """What a poll gave (also when it gave nothing: marks may have been reached)."""

    @property
    def urgent(self) -> bool:
        """Whether someone waits for the feed now (a mark in flight): polls wait briefly."""


class Relay:
    def __init__(self, feed: ChangeFeed, hub: Hub, wait: float = 0.01) -> None:
        """``wait``: seconds a poll waits for changes. A TDengine consumer's poll waits
        on one vnode at a time, so a write to another waits for it: 10 ms keeps the p99
        delay near 1 ms where 100 ms made it 80 (bench/LIVE.md)."""
        self.feed, self.hub, self.wait = feed, hub, wait
        self._poller = ThreadPoolExecutor(1, thread_name_prefix="mdcache-relay")
        self._recorder = ThreadPoolExecutor(1, thread_name_prefix="mdcache-relay-record")
        self._wanted = asyncio.Event()
        self._ready: asyncio.Future[None] | None = None
        self._marks: list[tuple[float, asyncio.Future[int]]] = []
        self._follower: Follower | None = None

    def follow_always(self, follower: Follower) -> None:
        """Follows the feed from start-up to the end, handing every poll to ``follower``."""
        self._follower = follower
        self._wanted.set()

    async def mark(self) -> int:
        """A mark in the feed (``ChangeFeed.mark``)."""
        number: int = await self._run(self._recorder, self.feed.mark)
        return number

    async def note(self, forgotten: list[PurgeFilter]) -> None:
        """A purge or eviction, done, into the feed (``ChangeFeed.note``)."""
        await self._run(self._recorder, self.feed.note, forgotten)

    async def _run(self, pool: ThreadPoolExecutor, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def acknowledged(self, changes: Sequence[StoredChange]) -> None:
        """A Write's records, stored and not yet answered: into the feed if it journals."""
        if self.feed.journals:
            try:
                await self._run(self._recorder, self.feed.record, changes)
            except StoreUnavailable as exc:
                # The store has the Write: it is answered. Subscribers miss it live (a
                # replay with since_ms has it); the log says so.
                log.warning("subscribe_relay_record_failed", error=str(exc), records=len(changes))

    async def ready(self) -> None:
        """Returns once the feed is followed (started by the first stream)."""
        if self._ready is None or (self._ready.done() and self._ready.exception()):
            self._ready = asyncio.get_running_loop().create_future()
            self._wanted.set()
        await asyncio.shield(self._ready)

    @property
    def following(self) -> bool:
        """Whether the feed is followed now."""
        ready = self._ready
        return ready is not None and ready.done() and ready.exception() is None

    def horizon(self) -> asyncio.Future[int]:
        """The hub's ``seq`` once every change acknowledged before this call is
        published: a poll begun HORIZON_MIN after it found nothing more, or HORIZON_CAP
        passed. (A same-value rewrite within it is not given again: it is left out.)"""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._marks.append((time.monotonic(), future))
        return future

    def _resolve(self, started: float) -> None:
        now, kept = time.monotonic(), []
        for at, future in self._marks:
            if future.done():
                continue
            if started - at >= HORIZON_MIN or now - at > HORIZON_CAP:
                future.set_result(self.hub.seq)
            else:
                kept.append((at, future))
        self._marks = kept

    async def run(self) -> None:
        """Follows the feed whenever a stream wants it, until cancelled (a server job)."""
        while True:
            await self._wanted.wait()
            try:
                await self._run(self._poller, self.feed.start)
                if self._follower is not None:
                    self._follower.started()
                ready = self._ready
                if ready is None or ready.done():  # none asked yet (a follower started it)
                    ready = self._ready = asyncio.get_running_loop().create_future()
                ready.set_result(None)
                log.info("subscribe_relay_following", journals=self.feed.journals)
                await self._follow()
                log.info("subscribe_relay_idle")  # no stream for RESUME_SECONDS
                self.hub.skip()  # what goes by unfollowed: no resume may cross it
                await self._run(self._poller, self.feed.close)
            except StoreUnavailable as exc:
                log.warning("subscribe_relay_interrupted", error=str(exc))
                if self._follower is not None:
                    self._follower.lost()
                else:
                    self._wanted.clear()
                ready = self._ready
                if ready is not None and not ready.done():
                    ready.set_exception(exc)
                    ready.exception()  # retrieved: a stream that awaited it has it
                self._ready = None
                self.hub.interrupt()  # streams end UNAVAILABLE; clients replay
                await self._run(self._poller, self.feed.close)
                await asyncio.sleep(1.0)

    async def _follow(self) -> None:
        """Until no stream has been open for the hub's RESUME_SECONDS (without a follower)."""
        publishing = True
        changed = float("-inf")  # when a poll last gave changes
        while True:
            if not self.hub.wanted and self._follower is None:
                self._ready = None  # the next stream starts the feed again
                self._wanted.clear()
                return
            started = time.monotonic()
            wait = self.wait
            follower = self._follower
            if (
                follower is not None
                and not self.hub.wanted
                and not follower.urgent
                and started - changed > ACTIVE_SECONDS
            ):
                wait = max(wait, FOLLOWER_WAIT)
            polled: Polled = await self._run(self._poller, self.feed.poll, wait)
            if self._follower is not None:
                self._follower.polled(polled)
            changes = polled.changes
            if changes:
                changed = time.monotonic()
                if self.hub.wanted:
                    self.hub.publish([(series, [record]) for series, record in changes])
                    publishing = True
                elif publishing:  # followed for the follower alone: no resume crosses it
                    self.hub.skip()
                    publishing = False
            else:
                self._resolve(started)
            if self._marks:
                self._resolve(-1.0)  # the cap

    def close(self, *, exiting: bool = False) -> None:
        """Blocking: releases the feed and the threads (``exiting``: the process ends next,
        so a TDengine consumer is left to the server rather than closed)."""
        self._poller.submit(partial(self.feed.close, exiting=exiting)).result()
        self._poller.shutdown()
        self._recorder.shutdown()
