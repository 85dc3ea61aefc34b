"""Replicas sharing a store: held copies kept current by the change feed, and when they answer.

Where several servers write to one store (``--processes``, servers on one TDengine
database or one SQLite file with the relay on), each follows the store's change feed
(``store.base.ChangeFeed``: TDengine's subscriptions, a journal beside a SQLite file):
every replica's Writes are merged into the held copies, and its purges and evictions drop
what they touch (:meth:`Coherence.polled`). A hit never reaches the store. (One server
alone on its store has no :class:`Coherence`: every change passes through it.)

What a held copy may promise is known from **marks** (``ChangeFeed.mark``): a mark taken
at time ``t`` and given back by the feed means every change acknowledged before ``t`` by
any replica has been merged. The latest such ``t`` is the replica's **watermark**, and:

- **bounded** (the default): a copy answers while the watermark is within ``bound``
  seconds of now, so any acknowledged Write shows in every replica's answers within
  ``bound``; a replica whose feed lags past it, is lost, or just started answers from the
  store until a mark comes back. The watermark is kept fresh while Reads come (and for
  ``KEEP_FRESH`` seconds after the last): one mark when it is older than half the bound
  (about 12 ms of a TDengine round, off the Reads' path);
- **read-your-writes**: a Write's answer carries a session token (:class:`Token`: when it
  was acknowledged, and by which replica). A Read that brings it back is answered from
  held copies only where they hold that Write: on the replica that took it (merged at
  once), or on one whose watermark is past it (by ``skew``, the clocks' disagreement
  allowed); else from the store;
- **strict** (asked per Read, or the server's default): a copy answers only after a mark
  taken after the Read arrived came back, so every Write acknowledged before the Read is
  in it, on every replica (today's promise of a single store; it costs a mark's round
  trip, shared by the Reads waiting). Past ``wait`` seconds it answers from the store.

A fill (a store read of a whole series) is fenced by the hot tier's generations: a change
the feed gives while it is in flight discards it when it lands. The copy it made may hold
changes the feed has yet to give (the feed lags the store), and what superseded them (a
purge, a later write): the feed's changes are merged into it all the same, and a copy
they reached before the watermark passed the end of its read answers only once it has
(:meth:`Coherence.settled`), when the feed has given what superseded them too. Until then
its Reads go to the store, and a round is begun so that it settles soon. (A copy the feed
gave nothing to is the store's own state: it answers at once.)
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from mdcache_server.cache.hot import HeldSeries, HotTier
from mdcache_server.errors import MdcacheError
from mdcache_server.model import Record, SeriesKey
from mdcache_server.store.base import Polled

log = structlog.get_logger(__name__)
SESSION_FORMAT = "1"
MARK_TIMEOUT = 5.0  # a mark not back by then is given up (the next Read asks for another)
KEEP_FRESH = 60.0  # seconds after the last Read that marks still keep the watermark fresh


@dataclass(frozen=True, slots=True)
class Token:
    """A session token: the latest Write of a session, when (wall clock, ms) and through
    which replica it was acknowledged (``*``: the session wrote through several)."""

    at_ms: int
    replica: str

    def __str__(self) -> str:
        return f"{SESSION_FORMAT}.{self.at_ms}.{self.replica}"

    @classmethod
    def parse(cls, text: str) -> Token | None:
        """The token, or None for an empty or unknown one (a Read then promises no more
        than the bound)."""
        version, _, rest = text.partition(".")
        at, _, replica = rest.partition(".")
        if version != SESSION_FORMAT or not at.isdigit() or not replica:
            return None
        return cls(int(at), replica)


@dataclass
class _Mark:
    started: float  # wall clock, before the mark was asked for
    done: asyncio.Future[bool]
    number: int | None = None  # known once the feed took it


class Coherence:
    """The watermark of one replica's change feed, and the rounds of marks that move it."""

    def __init__(
        self,
        hot: HotTier,
        mark: Callable[[], Awaitable[int]],
        *,
        replica: str,
        bound: float,
        skew: float,
        strict: bool = False,
        wait: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.hot, self._mark, self.replica = hot, mark, replica
        self.bound, self.skew, self.strict, self.wait = bound, skew, strict, wait
        self.clock = clock
        self.following = False
        self.watermark = -math.inf  # wall clock seconds
        self.rounds = 0  # marks taken
        self.applied = 0  # records merged from the feed
        self.served_from_store = 0  # Reads answered by the store as these rules said (policy)
        self._current: _Mark | None = None
        self._next: asyncio.Future[bool] | None = None
        self._waiting: list[_Mark] = []  # marks taken, not yet given back
        self._task: asyncio.Task[None] | None = None
        self._read_at = -math.inf  # when a Read last asked (wall clock)

    # The feed's side (called by the relay, on the event loop).

    def started(self) -> None:
        """The feed follows from now on; what went by before is unknown: copies dropped."""
        self.following = True
        self.watermark = -math.inf
        self._give_up()
        self.hot.clear()
        self._round(self.clock())  # a first watermark, before the first Read wants one
        log.info("coherence_following")

    def lost(self) -> None:
        """The feed stopped (the store is down, the consumer lost): copies dropped, Reads
        go to the store until it follows again."""
        if self.following:
            log.warning("coherence_lost")
        self.following = False
        self._give_up()
        self.hot.clear()

    def polled(self, polled: Polled) -> None:
        """What one poll gave: merged into held copies, purges applied, marks resolved."""
        hot = self.hot
        if polled.changes:
            by_key: dict[SeriesKey, list[Record]] = {}
            for key, record in polled.changes:
                by_key.setdefault(key, []).append(record)
            for key, records in by_key.items():
                hot.applied(key, records, self.watermark)  # as before this poll
            self.applied += len(polled.changes)
        for purge in polled.forgotten:
            hot.forget(purge.matches)
        now = self.clock()
        if (
            self.following
            and now - self.watermark > self.bound / 2
            and now - self._read_at < KEEP_FRESH
            and self._current is None
        ):
            self._round(now)  # Reads will come: fresh before they do
        if self._waiting:
            kept = []
            for mark in self._waiting:
                if mark.number is not None and mark.number <= polled.reached:
                    self.watermark = max(self.watermark, mark.started)
                    if not mark.done.done():
                        mark.done.set_result(True)
                else:
                    kept.append(mark)
            self._waiting = kept

    def settled(self, copy: HeldSeries) -> bool:
        """Whether a held copy may answer: as read from the store, or the feed has given
        every change older than its read (else a round is begun, so that it does soon)."""
        if not copy.doubtful or copy.settles <= self.watermark:
            return True
        if self.following:
            self._round(copy.settles)
        return False

    @property
    def urgent(self) -> bool:
        """A mark is in flight: the relay polls without delay."""
        return self._current is not None or self._next is not None

    # The Reads' side.

    def lag(self) -> float:
        """Seconds since the watermark (infinite before the first mark came back)."""
        return self.clock() - self.watermark

    def servable(self, token: Token | None) -> bool:
        """Whether held copies may answer a Read now (bounded), for a session at ``token``."""
        if not self.following or self.clock() - self.watermark > self.bound:
            return False
        if token is None or token.replica == self.replica:
            return True
        return token.at_ms / 1000 + self.skew < self.watermark

    async def current(self, token: Token | None, strict: bool | None = None) -> bool:
        """Whether held copies may answer a Read arriving now; False: read the store."""
        strict = self.strict if strict is None else strict
        self._read_at = self.clock()
        if not strict:
            if self.servable(token):
                if self.lag() > self.bound / 2:
                    self._round(self.clock())  # kept fresh off the Read's path
                return True
            if self.following:
                self._round(self.clock())  # the next Read may find it caught up
            return False
        if not self.following:
            return False
        done = self._round(self.clock())
        try:
            reached = await asyncio.wait_for(asyncio.shield(done), self.wait)
        except TimeoutError:
            reached = False
        return reached and self.servable(token)

    def _round(self, after: float) -> asyncio.Future[bool]:
        """The round of a mark taken at ``after`` or later: the one in flight if it began
        since, else the next (which begins when the one in flight ends)."""
        current = self._current
        if current is not None and current.started >= after:
            return current.done
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self._next

    async def _run(self) -> None:
        try:
            while self._next is not None:
                done, self._next = self._next, None
                mark = _Mark(self.clock(), done)
                self._current = mark
                try:
                    mark.number = await self._mark()
                except MdcacheError as exc:
                    log.warning("coherence_mark_failed", error=str(exc))
                    done.set_result(False)
                    continue
                self.rounds += 1
                self._waiting.append(mark)
                try:
                    await asyncio.wait_for(asyncio.shield(done), MARK_TIMEOUT)
                except TimeoutError:
                    self._waiting = [m for m in self._waiting if m is not mark]
                    if not done.done():
                        done.set_result(False)
        finally:
            self._current = None
            self._task = None

    def _give_up(self) -> None:
        for mark in self._waiting:
            if not mark.done.done():
                mark.done.set_result(False)
        self._waiting = []

    async def close(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._give_up()
        if self._next is not None and not self._next.done():
            self._next.set_result(False)
