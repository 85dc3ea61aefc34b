"""The cache policy between the service and the worker pool.

Reads go to the hot tier first; what it does not hold is read from the store on a
worker, whole series at once when they fit the tier (so that the next read of any
window of them is served from memory), else just the window asked. Concurrent reads of
a series that is not held share one store read of it (single flight). A hit never
reaches the store: one server alone on its store sees every change pass through it;
replicas sharing a store keep their copies current from the change feed, and answer
from them as ``coherence.py`` allows (else from the store). Writes and purges go to the
store, then keep the hot tier correct (and, with replicas, reach theirs through the
feed). Every series read is counted.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from mdcache_server.cache.coherence import Coherence, Token
from mdcache_server.cache.hot import Encoder, HeldSeries, HotTier
from mdcache_server.cache.retention import RetentionRules
from mdcache_server.cache.stats import ClusterUsage, HitStats, wall_ms
from mdcache_server.cache.writes import GroupWriter
from mdcache_server.errors import MdcacheError
from mdcache_server.model import (
    PurgeFilter,
    Record,
    SeriesKey,
    SeriesRead,
    StoreCounts,
    Usage,
    Window,
)
from mdcache_server.pool import WorkerPool
from mdcache_server.store.base import StoreConnection

log = structlog.get_logger(__name__)
Ticket = tuple[int, int, float]
Pending = asyncio.Future["HeldSeries | None"]
Noter = Callable[[list[PurgeFilter]], Awaitable[None]]


class Reader(Protocol):
    """Reads windows of series through the cache, for one call (``SessionReader``)."""

    async def read(self, series: Sequence[SeriesKey], window: Window) -> list[SeriesRead]: ...


@dataclass(frozen=True, slots=True)
class SessionReader:
    """The cache's reads for one Read call: its session token and consistency."""

    policy: CachePolicy
    token: Token | None
    strict: bool | None

    async def read(self, series: Sequence[SeriesKey], window: Window) -> list[SeriesRead]:
        return await self.policy.read(series, window, self.token, self.strict)


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Stats as the service answers them."""

    counts: StoreCounts
    usage: ClusterUsage
    hot_tier: HotTier
    evicted_series: int
    evicted_records: int
    uptime_seconds: float
    store: str
    store_version: str
    retention: RetentionRules


@dataclass(frozen=True, slots=True)
class Fill:
    """A whole-series store read in flight: its ticket, and what it will hold (None when
    the series is too large to hold)."""

    ticket: Ticket
    future: Pending


def _fields(read: SeriesRead, encode: Encoder | None) -> list[bytes] | None:
    """The records' answer fields: as the store kept them, else encoded here."""
    if encode is None:
        return None
    if read.encoded is not None and len(read.encoded) == len(read.records):
        return list(read.encoded)
    return encode(read.records)


def _retrieved(future: Pending) -> None:
    """Marks a fill's error as seen: a background fill may have no reader to raise it to."""
    if not future.cancelled():
        future.exception()


class CachePolicy:
    """Runs each call on the pool, keeps the hot tier correct and counts reads."""

    def __init__(
        self,
        pool: WorkerPool,
        *,
        hot: HotTier,
        stats: HitStats,
        retention: RetentionRules,
        max_group_records: int,
    ) -> None:
        self.pool = pool
        self.writer = GroupWriter(pool, max_records=max_group_records)
        self.hot = hot
        # Set by the composition root where replicas share the store (app.compose).
        self.coherence: Coherence | None = None
        self._note: Noter | None = None  # a purge or eviction into the change feed
        self.stats = stats
        self.retention = retention
        # Changed only through the methods below (the usage, capacity and start-up code).
        self._others: list[Usage] = []  # other replicas' counters, as last loaded
        self._store_version = ""  # learnt once, when the store is prepared at start-up
        self.started = time.monotonic()
        self._filling: dict[SeriesKey, Fill] = {}
        self._fill_tasks: set[asyncio.Task[None]] = set()

    def store_prepared(self, version: str, replica: str) -> None:
        """At start-up, the store answered with its version; ``replica`` names this process
        among those sharing the store unless the configuration named it already."""
        self._store_version = version
        if not self.stats.replica:
            self.stats.replica = replica

    def others_seen(self, others: list[Usage]) -> None:
        """The other replicas' counters, as just loaded from the store."""
        self._others = others

    def evicted(self, series: int, records: int) -> None:
        """Whole series evicted for capacity (counted with the reads: summed across
        replicas)."""
        self.stats.evicted(series, records)

    def follow(self, coherence: Coherence, note: Noter) -> None:
        """Replicas share the store: held copies are kept by its change feed
        (``coherence``), and purges and evictions are ``note``d into it."""
        self.coherence, self._note = coherence, note

    async def close(self) -> None:
        """Cancels the fills and rounds in flight (before the pool closes)."""
        if self.coherence is not None:
            await self.coherence.close()
        for task in list(self._fill_tasks):
            task.cancel()
        await asyncio.gather(*self._fill_tasks, return_exceptions=True)

    async def write(self, batches: Sequence[tuple[SeriesKey, Sequence[Record]]]) -> int:
        written = await self.writer.write(batches)
        fed = self.coherence is not None
        for key, records in batches:
            self.hot.written(key, records, fed=fed)
        return written

    async def _held_may_answer(
        self, token: Token | None, strict: bool | None, *, count: bool = False
    ) -> bool:
        """Whether held copies may answer a Read now (``coherence.py``); ``count``: a
        Read the store must answer is counted."""
        coherence = self.coherence
        if coherence is None or await coherence.current(token, strict):
            return True
        coherence.served_from_store += count
        return False

    async def read(
        self,
        series: Sequence[SeriesKey],
        window: Window,
        token: Token | None = None,
        strict: bool | None = None,
    ) -> list[SeriesRead]:
        """Each series' window: from held copies where they may answer (``token``: the
        caller's session, ``strict``: as asked, None: the server's default)."""
        results: list[SeriesRead | None] = [None] * len(series)
        cold: list[int] = []
        unsettled: list[int] = []
        hot = self.hot
        if hot.enabled and await self._held_may_answer(token, strict, count=True):
            for i, key in enumerate(series):
                held = hot.get(key)
                if held is None:
                    cold.append(i)
                    continue
                if not self._may_answer(held):
                    unsettled.append(i)  # the feed may still owe it older changes
                    continue
                results[i] = held.window(window)
                if hot.refresh_due(held):
                    self._start_fill([key], background=True)
            if cold:
                found = await self._read_cold([series[i] for i in cold], window)
                for i, result in zip(cold, found, strict=True):
                    results[i] = result
            if unsettled:
                keys = [series[i] for i in unsettled]
                found = await self._from_store(keys, window)
                for i, result in zip(unsettled, found, strict=True):
                    results[i] = result
        elif hot.enabled and self.coherence is not None and self.coherence.following:
            # Held copies may not answer (the feed's watermark is behind, or the caller's
            # session is ahead of it): from the store, filling the tier with the series it
            # does not hold, as a miss would, so that they can answer later Reads.
            unheld = [i for i, key in enumerate(series) if key not in hot]
            if unheld:
                found = await self._read_cold([series[i] for i in unheld], window, fresh=True)
                for i, result in zip(unheld, found, strict=True):
                    results[i] = result
            rest = [i for i in range(len(series)) if results[i] is None]
            if rest:
                keys = [series[i] for i in rest]
                found = await self._from_store(keys, window)
                for i, result in zip(rest, found, strict=True):
                    results[i] = result
        else:
            found = await self._from_store(series, window)
            results = list(found)
        now = wall_ms()
        done = [r for r in results if r is not None]
        assert len(done) == len(series)
        for key, result in zip(series, done, strict=True):
            self.stats.record(key, hit=bool(result.records), now_ms=now)
        return done

    async def read_again(
        self,
        series: Sequence[SeriesKey],
        held: Sequence[tuple[int, int]],
        hits: Sequence[bool],
        token: Token | None = None,
        strict: bool | None = None,
    ) -> bool:
        """A read answered before from held copies (``held``: their serials and versions),
        made again: when held copies may answer and every one is still held and unchanged,
        counts the read as :meth:`read` would and returns True; else counts nothing and
        returns False (the read proper answers)."""
        hot = self.hot
        try:
            if not await self._held_may_answer(token, strict):
                return False
        except MdcacheError:
            return False
        copies = []
        for key, (serial, version) in zip(series, held, strict=True):
            copy = hot.peek(key)
            if copy is None or copy.serial != serial or copy.version != version:
                return False
            if not self._may_answer(copy):
                return False
            copies.append(copy)
        now = wall_ms()
        for key, copy, hit in zip(series, copies, hits, strict=True):
            hot.touch(key)
            if hot.refresh_due(copy):
                self._start_fill([key], background=True)
            self.stats.record(key, hit=hit, now_ms=now)
        return True

    def _may_answer(self, copy: HeldSeries) -> bool:
        """Whether a held copy may answer: not doubtful, or settled since
        (:meth:`Coherence.settled`; only a followed feed makes a copy doubtful)."""
        return not copy.doubtful or self.coherence is None or self.coherence.settled(copy)

    async def _from_store(self, keys: Sequence[SeriesKey], window: Window) -> list[SeriesRead]:
        """Each series' window, read from the store."""
        return await self.pool.run(lambda conn: conn.read_answer(keys, window), "read")

    async def _read_cold(
        self, keys: list[SeriesKey], window: Window, *, fresh: bool = False
    ) -> list[SeriesRead]:
        """Series the hot tier does not hold: whole (shared with concurrent readers whose
        series nothing changed since it began: ``_fills_of``) when they may fit it, else
        the window from the store. ``fresh``: only reads begun now (none in flight)."""
        hot = self.hot
        if not hot.enabled or all(map(hot.too_large, keys)):
            return await self._from_store(keys, window)
        found: dict[SeriesKey, SeriesRead] = {}
        wanted = [k for k in keys if not hot.too_large(k)]
        fills = self._start_fill(list(dict.fromkeys(wanted))) if fresh else self._fills_of(wanted)
        for key, future in fills.items():
            # Shielded: a caller that goes away does not cancel a read others wait for.
            held = await asyncio.shield(future)
            # Unless the feed merged into it a change that may be older than it (settled).
            if held is not None and self._may_answer(held):
                found[key] = held.window(window)
        rest = [key for key in dict.fromkeys(keys) if key not in found]
        if rest:
            reads = await self._from_store(rest, window)
            found.update(zip(rest, reads, strict=True))
        return [found[key] for key in keys]

    def _fills_of(self, keys: list[SeriesKey]) -> dict[SeriesKey, Pending]:
        """A whole-series read of each key: the one in flight if nothing changed the series
        here since it started, else a new one (one worker call for all the new ones)."""
        futures = {}
        new = []
        for key in dict.fromkeys(keys):
            fill = self._filling.get(key)
            if fill is not None and self.hot.valid(fill.ticket, key):
                futures[key] = fill.future
            else:
                new.append(key)
        if new:
            futures.update(self._start_fill(new))
        return futures

    def _start_fill(
        self, keys: list[SeriesKey], *, background: bool = False
    ) -> dict[SeriesKey, Pending]:
        loop = asyncio.get_running_loop()
        fills = {key: Fill(self.hot.ticket(key), loop.create_future()) for key in keys}
        for fill in fills.values():
            fill.future.add_done_callback(_retrieved)
        self._filling.update(fills)
        task = loop.create_task(self._fill(fills, background))
        self._fill_tasks.add(task)
        task.add_done_callback(self._fill_tasks.discard)
        return {key: fill.future for key, fill in fills.items()}

    async def _fill(self, fills: dict[SeriesKey, Fill], background: bool) -> None:
        """Reads whole series, holds those that fit, and answers everyone waiting."""
        keys = list(fills)
        try:
            held = await self.fetch_whole(keys)
        except BaseException as exc:
            for key, fill in fills.items():
                if self._filling.get(key) is fill:
                    del self._filling[key]
                if isinstance(exc, asyncio.CancelledError):
                    fill.future.cancel()
                else:
                    fill.future.set_exception(exc)
            if background and isinstance(exc, Exception):
                log.warning("refresh_failed", series=len(keys), error=str(exc))
            if not isinstance(exc, Exception):
                raise
            return
        for (key, fill), series in zip(fills.items(), held, strict=True):
            if self._filling.get(key) is fill:
                del self._filling[key]
            if series is None:
                if self.hot.valid(fill.ticket, key):
                    self.hot.found_too_large(key)
            else:
                self.hot.fill(key, series, fill.ticket)
            fill.future.set_result(series)

    async def fetch_whole(self, keys: list[SeriesKey]) -> list[HeldSeries | None]:
        """Whole series from the store, made ready to hold (records encoded) in one worker
        call, off the event loop; None for a series too large to hold. Each copy's
        ``loaded_at`` is when the read began (its age counts from then); where a change
        feed is followed, ``settles`` when it ended (by the feed's clock)."""
        whole = Window(limit=self.hot.max_series_records)
        encode, clock = self.hot.encode, self.hot.clock
        feed_clock = None if self.coherence is None else self.coherence.clock

        def fetch(conn: StoreConnection) -> list[HeldSeries | None]:
            began = clock()
            reads = conn.read(keys, whole)
            ended = -math.inf if feed_clock is None else feed_clock()
            copies: list[HeldSeries | None] = []
            for read in reads:
                copy = None
                if not read.truncated:
                    copy = HeldSeries.of(read.records, began, _fields(read, encode))
                    copy.settles = ended
                copies.append(copy)
            return copies

        return await self.pool.run(fetch, "fill")

    async def forgotten(self, filters: list[PurgeFilter]) -> None:
        """Records deleted (a purge, an eviction): the held copies they touch dropped here,
        and, where replicas share the store, through the change feed in every replica."""
        for purge in filters:
            self.hot.forget(purge.matches)
        if self._note is not None and filters:
            await self._note(filters)

    async def purge(self, purge: PurgeFilter) -> int:
        try:
            return await self.pool.run(lambda conn: conn.purge(purge), "purge")
        finally:
            await self.forgotten([purge])

    async def drop(self, series: Sequence[SeriesKey]) -> int:
        """Deletes whole series (capacity eviction)."""
        try:
            return await self.pool.run(lambda conn: conn.drop_series(series), "purge")
        finally:
            await self.forgotten([PurgeFilter(0, *key) for key in series])

    async def probe(self) -> None:
        """One round trip that fails when the store cannot serve."""
        await self.pool.run(lambda conn: conn.probe(), "probe")

    def usage(self) -> ClusterUsage:
        return ClusterUsage.combine(self.stats.as_usage(), self._others)

    async def snapshot(self) -> CacheStats:
        counts = await self.pool.run(lambda conn: conn.counts(), "count")
        usage = self.usage()
        return CacheStats(
            counts=counts,
            usage=usage,
            hot_tier=self.hot,
            evicted_series=usage.evicted_series,
            evicted_records=usage.evicted_records,
            uptime_seconds=time.monotonic() - self.started,
            store=self.pool.store.name,
            store_version=self._store_version,
            retention=self.retention,
        )
