"""The subscription hub of one server process.

Every acknowledged write is published here (``live/delivery.py``: directly, or from the
store's change feed through the relay): each record gets the next number of this
process's sequence (``seq``) and goes into a ring of the most recent changes and into the
bounded buffer of every stream that follows its series (or its symbol). Publishing never
waits: a stream whose buffer is full is cut (it learns how far behind it was), so a slow
subscriber holds up neither writers nor other subscribers, and memory stays bounded by
``buffer`` changes a stream (plus one publish that began below it: one Write, or one batch
of the relay's) and the ring (``ring`` changes, ``ring_bytes`` of payloads).

The ring lets a client that lost its connection resume right after the last ``seq`` it
received, with nothing lost and nothing twice, while this process still holds it; the
process's random ``epoch`` tells a resume point of an earlier process (a restart) apart.
A record published again with the value the ring holds for its series and timestamp is
left out: streams have it. (TDengine's log can hold one Write twice: libtaos sent its
submit again to a vgroup's new leader, issue 26's fault 4, and both were applied.)
With no stream open for ``RESUME_SECONDS``, nothing is kept (writes cost no more).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import structlog

from mdcache_server.errors import Lagging, Stopping
from mdcache_server.model import Record, SeriesKey

log = structlog.get_logger(__name__)

RESUME_SECONDS = 300.0  # the ring is kept this long after the last stream closed


@dataclass(frozen=True, slots=True)
class Published:
    """A record as the hub pushed it: numbered by this process's ``seq``."""

    seq: int
    series: SeriesKey
    record: Record


@dataclass(eq=False)
class Stream:
    """One subscriber's buffer: the changes of its series not yet sent."""

    series: frozenset[SeriesKey]
    symbol: str
    capacity: int
    pending: deque[Published] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    behind: int = 0  # changes dropped once full: the stream is cut
    stopping: str = ""  # why the stream ends, once it is to

    def wants(self, series: SeriesKey) -> bool:
        return series in self.series or series.symbol == self.symbol

    def offer(self, change: Published, full: bool) -> None:
        """``full``: the buffer held ``capacity`` changes before this publish began (a
        publish, one Write or one batch of the relay, is taken whole otherwise)."""
        if self.behind or full:
            self.behind += 1
            self.pending.clear()  # frees the memory at once; the stream is cut
        else:
            self.pending.append(change)
        self.ready.set()

    def lagging(self) -> Lagging:
        return Lagging(
            f"subscriber fell {self.behind + self.capacity} changes behind (its buffer holds "
            f"{self.capacity}); resume after the last seq received"
        )

    async def next(self) -> Published:
        """The oldest change not sent (waiting for one); raises Lagging once cut. It
        stays counted in the buffer until taken, so the buffer is what is unsent."""
        while not self.pending:
            if self.behind:
                raise self.lagging()
            if self.stopping:
                raise Stopping(self.stopping)
            self.ready.clear()
            await self.ready.wait()
        if self.behind:
            raise self.lagging()
        return self.pending.popleft()


class Hub:
    """Publishes changes to the streams that follow them."""

    def __init__(
        self, *, buffer: int = 10_000, ring: int = 100_000, ring_bytes: int = 64 * 1024 * 1024
    ) -> None:
        self.buffer = buffer
        self.epoch = secrets.token_hex(6)
        self.seq = 0
        self.repeats = 0  # records left out as the same value again
        self._ring: deque[Published] = deque()
        self._ring_size, self._ring_bytes = ring, ring_bytes
        self._ring_held = 0  # payload characters in the ring
        self._latest: dict[tuple[SeriesKey, int], Published] = {}  # the ring's, by record
        self._last_open = -math.inf  # when a stream was last open
        self._streams: set[Stream] = set()
        # Writes of this process between the store and their publish, and the horizons
        # waiting for those in flight when they were asked for.
        self._writing: set[object] = set()
        self._settling: list[tuple[set[object], Callable[[], None]]] = []

    @property
    def streams(self) -> int:
        return len(self._streams)

    @property
    def wanted(self) -> bool:
        """Whether a stream is open, or one closed recently enough to resume."""
        return bool(self._streams) or time.monotonic() - self._last_open <= RESUME_SECONDS

    def writing(self) -> _Writing:
        """``with hub.writing():`` around a Write, from before the store takes it until
        it is published: a replay's read may see it stored before it is pushed
        (``horizon``). About 0.5 µs a Write."""
        return _Writing(self)

    def _settle(self, token: object) -> None:
        kept = []
        for writes, then in self._settling:
            writes.discard(token)
            if writes:
                kept.append((writes, then))
            else:
                then()
        self._settling = kept

    def settled(self, then: Callable[[], None]) -> None:
        """Calls ``then`` once the Writes in flight now are published (at once if none):
        a read may have seen them stored, not yet pushed."""
        if self._writing:
            self._settling.append((set(self._writing), then))
        else:
            then()

    def horizon(self) -> asyncio.Future[int]:
        """The ``seq`` by which every change this process stored before this call is
        published: once the Writes in flight now are (``live.delivery`` adds what a
        change feed still holds)."""
        result: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.settled(lambda: None if result.done() else result.set_result(self.seq))
        return result

    def skip(self) -> None:
        """Changes went by unread (nobody followed): no resume may cross them."""
        self.seq += 1
        self._forget()

    def _forget(self) -> None:
        self._ring.clear()
        self._latest.clear()
        self._ring_held = 0

    def interrupt(self) -> None:
        """Changes may have been missed: a new ``epoch`` (so no resume crosses the gap),
        and every open stream ends for its client to subscribe again."""
        self.epoch = secrets.token_hex(6)
        self.skip()
        self.stop("the changes of other replicas were interrupted; subscribe again")

    def publish(self, batches: Iterable[tuple[SeriesKey, Sequence[Record]]]) -> None:
        """Pushes acknowledged records to the streams that follow them."""
        streams = self._streams
        if not streams and time.monotonic() - self._last_open > RESUME_SECONDS:
            # Nobody follows, or may resume: number the records, keep nothing (about 1 µs
            # a record otherwise). A resume from before is answered FAILED_PRECONDITION.
            self.seq += sum(len({r.ts_ms for r in records}) for _, records in batches)
            self._forget()
            return
        full = {stream for stream in streams if len(stream.pending) >= stream.capacity}
        latest, repeats = self._latest, 0
        for series, records in batches:
            last = {r.ts_ms: r for r in records}  # a timestamp given twice: the last
            for record in last.values():
                held = latest.get((series, record.ts_ms))
                if held is not None and held.record.payload == record.payload:
                    repeats += 1  # the same value again: streams have it
                    continue
                self.seq += 1
                change = Published(self.seq, series, record)
                self._remember(change)
                for stream in streams:
                    if stream.wants(series):
                        stream.offer(change, stream in full)
        if repeats:
            self.repeats += repeats
            log.info("subscribe_repeats_left_out", records=repeats, total=self.repeats)

    def _remember(self, change: Published) -> None:
        ring, latest = self._ring, self._latest
        ring.append(change)
        latest[change.series, change.record.ts_ms] = change
        self._ring_held += len(change.record.payload)
        while len(ring) > self._ring_size or self._ring_held > self._ring_bytes:
            old = ring.popleft()
            self._ring_held -= len(old.record.payload)
            key = (old.series, old.record.ts_ms)
            if latest.get(key) is old:
                del latest[key]

    def open(self, series: Iterable[SeriesKey], symbol: str) -> Stream:
        stream = Stream(frozenset(series), symbol, self.buffer)
        self._streams.add(stream)
        return stream

    def stop(self, why: str = "the server is stopping; subscribe again (resume_after)") -> None:
        """Ends every stream (UNAVAILABLE) once it has sent what it holds."""
        for stream in self._streams:
            stream.stopping = why
            stream.ready.set()

    def close(self, stream: Stream) -> None:
        self._last_open = time.monotonic()
        self._streams.discard(stream)
        stream.pending.clear()

    def since(self, stream: Stream, after: int) -> list[Published] | None:
        """The stream's changes after ``after`` from the ring; None when it lost some."""
        if after > self.seq:
            return None
        oldest = self._ring[0].seq if self._ring else self.seq + 1
        if after + 1 < oldest:
            return None
        return [c for c in self._ring if c.seq > after and stream.wants(c.series)]


class _Writing:
    """One Write in flight (``Hub.writing``); itself the token a horizon waits for."""

    __slots__ = ("hub",)

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def __enter__(self) -> None:
        self.hub._writing.add(self)

    def __exit__(self, *exc: object) -> None:
        hub = self.hub
        hub._writing.discard(self)
        if hub._settling:
            hub._settle(self)
