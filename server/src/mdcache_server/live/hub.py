"""The subscription hub of one server process.

Every acknowledged write is published here: each record gets the next number of this
process's sequence (``seq``) and goes into a ring of the most recent changes and into the
bounded buffer of every stream that follows its series (or its symbol). Publishing never
waits: a stream whose buffer is full is cut (it learns how far behind it was), so a slow
subscriber holds up neither writers nor other subscribers, and memory stays bounded by
``buffer`` changes a stream plus the ring (``ring`` changes, ``ring_bytes`` of payloads).

The ring lets a client that lost its connection resume right after the last ``seq`` it
received, with nothing lost and nothing twice, while this process still holds it; the
process's random ``epoch`` tells a resume point of an earlier process (a restart) apart.
With no stream open for ``RESUME_SECONDS``, nothing is kept (writes cost no more).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from mdcache_server.errors import Lagging, Stopping
from mdcache_server.model import Record, SeriesKey

RESUME_SECONDS = 300.0  # the ring is kept this long after the last stream closed


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    series: SeriesKey
    record: Record


@dataclass(eq=False)
class Stream:
    """One subscriber's buffer: the changes of its series not yet sent."""

    series: frozenset[SeriesKey]
    symbol: str
    capacity: int
    pending: deque[Change] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    behind: int = 0  # changes dropped once full: the stream is cut
    stopping: bool = False

    def wants(self, series: SeriesKey) -> bool:
        return series in self.series or series.symbol == self.symbol

    def offer(self, change: Change) -> None:
        if self.behind or len(self.pending) >= self.capacity:
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

    async def next_batch(self) -> list[Change]:
        """The changes buffered so far (waiting for one); raises Lagging once cut."""
        while not self.pending:
            if self.behind:
                raise self.lagging()
            if self.stopping:
                raise Stopping("the server is stopping; subscribe again (resume_after)")
            self.ready.clear()
            await self.ready.wait()
        if self.behind:
            raise self.lagging()
        batch = list(self.pending)
        self.pending.clear()
        return batch


class Hub:
    """Publishes changes to the streams that follow them."""

    def __init__(
        self, *, buffer: int = 10_000, ring: int = 100_000, ring_bytes: int = 64 * 1024 * 1024
    ) -> None:
        self.buffer = buffer
        self.epoch = secrets.token_hex(6)
        self.seq = 0
        self._ring: deque[Change] = deque()
        self._ring_size, self._ring_bytes = ring, ring_bytes
        self._ring_held = 0  # payload characters in the ring
        self._last_open = -math.inf  # when a stream was last open
        self._streams: set[Stream] = set()
        # With a journal (live.journal), acknowledged changes go there, and come back
        # from it in the order of every replica's acknowledgements.
        self.journal: Callable[[list[tuple[SeriesKey, Record]]], Awaitable[None]] | None = None

    @property
    def streams(self) -> int:
        return len(self._streams)

    async def acknowledged(self, batches: Sequence[tuple[SeriesKey, Sequence[Record]]]) -> None:
        """Records a Write stored, before it is answered: pushed now, or journalled."""
        if self.journal is None:
            self.publish(batches)
            return
        changes = [
            (series, Record(r.ts_ms, r.payload))
            for series, records in batches
            for r in {r.ts_ms: r for r in records}.values()
        ]
        await self.journal(changes)

    def publish(self, batches: Iterable[tuple[SeriesKey, Sequence[Record]]]) -> None:
        """Pushes acknowledged records to the streams that follow them."""
        streams = self._streams
        if not streams and time.monotonic() - self._last_open > RESUME_SECONDS:
            # Nobody follows, or may resume: number the records, keep nothing (about 1 µs
            # a record otherwise). A resume from before is answered FAILED_PRECONDITION.
            self.seq += sum(len({r.ts_ms for r in records}) for _, records in batches)
            self._ring.clear()
            self._ring_held = 0
            return
        for series, records in batches:
            last = {r.ts_ms: r for r in records}  # a timestamp given twice: the last
            for record in last.values():
                self.seq += 1
                change = Change(self.seq, series, record)
                self._remember(change)
                for stream in streams:
                    if stream.wants(series):
                        stream.offer(change)

    def _remember(self, change: Change) -> None:
        ring = self._ring
        ring.append(change)
        self._ring_held += len(change.record.payload)
        while len(ring) > self._ring_size or self._ring_held > self._ring_bytes:
            self._ring_held -= len(ring.popleft().record.payload)

    def open(self, series: Iterable[SeriesKey], symbol: str) -> Stream:
        stream = Stream(frozenset(series), symbol, self.buffer)
        self._streams.add(stream)
        return stream

    def stop(self) -> None:
        """Ends every stream once it has sent what it holds (the server is stopping)."""
        for stream in self._streams:
            stream.stopping = True
            stream.ready.set()

    def close(self, stream: Stream) -> None:
        self._last_open = time.monotonic()
        self._streams.discard(stream)
        stream.pending.clear()

    def since(self, stream: Stream, after: int) -> list[Change] | None:
        """The stream's changes after ``after`` from the ring; None when it lost some."""
        if after > self.seq:
            return None
        oldest = self._ring[0].seq if self._ring else self.seq + 1
        if after + 1 < oldest:
            return None
        return [c for c in self._ring if c.seq > after and stream.wants(c.series)]
