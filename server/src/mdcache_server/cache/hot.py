"""The hot tier: whole series held in memory, least recently used out first, bounded in bytes.

A series is held whole (sorted by timestamp), so any window of it is answered by two
bisections, with no worker thread and no store. The tier is touched only from the
event loop thread. It is kept correct by the cache policy:

- a Write merges its records into a held series once the store has them;
- a Purge or an eviction drops the series it touches;
- where replicas share the store, every replica's Writes come from the change feed and are
  merged the same way (:meth:`HotTier.applied`, ``cache/coherence.py``), and their purges
  and evictions drop what they touch; a Write of this replica merged at once is kept over
  older changes the feed gives until the feed gives it back (``HeldSeries.pending``);
- a fill (a store read of a whole series) started before a change to that series is
  discarded when it lands (per-series generations, and one epoch for purges); a copy
  read from the store since the feed's watermark, into which the feed merged a change,
  does not answer until the watermark passes its read (the change may be older than the
  copy: ``HeldSeries.settles``);
- an entry read from the store ``max_age`` ago is read again (a safety net for what does
  not pass through the policy or the feed: another program writing to the store).
"""

from __future__ import annotations

import itertools
import math
import time
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import overload

from mdcache_server.model import Record, SeriesKey, SeriesRead, Window

# Memory of Python objects a held record takes besides its payload text and its encoded
# field (counted by their length): the int, the str and bytes headers, the list slots.
# Not the bytes a record adds to an answer on the wire besides its payload, which are
# wire.encoding.RECORD_OVERHEAD (16): two measures of two things.
HELD_RECORD_BYTES = 96
REFRESH_AT = 0.5  # share of the max age after which a read entry is refreshed ahead


Fragments = list[bytes]  # each record serialized for the answer
Encoder = Callable[[Sequence[Record]], Fragments]


class HeldRecords(Sequence[Record]):
    """Records of a held series picked by a range of indices, made only when looked at."""

    __slots__ = ("_payloads", "_picked", "_ts")

    def __init__(self, ts: list[int], payloads: list[str], picked: range) -> None:
        self._ts, self._payloads, self._picked = ts, payloads, picked

    def __len__(self) -> int:
        return len(self._picked)

    @overload
    def __getitem__(self, i: int) -> Record: ...
    @overload
    def __getitem__(self, i: slice) -> list[Record]: ...
    def __getitem__(self, i: int | slice) -> Record | list[Record]:
        if isinstance(i, slice):
            return [Record(self._ts[j], self._payloads[j]) for j in self._picked[i]]
        j = self._picked[i]
        return Record(self._ts[j], self._payloads[j])

    def whole(self) -> tuple[list[int], list[str], range]:
        """The held series' timestamps and payloads (all of them), and the indices picked."""
        return self._ts, self._payloads, self._picked

    def columns(self) -> tuple[list[int], list[str]]:
        """The picked timestamps and payloads, as two lists."""
        picked = self._picked
        if picked.step == 1:
            return self._ts[picked.start : picked.stop], self._payloads[picked.start : picked.stop]
        return [self._ts[j] for j in picked], [self._payloads[j] for j in picked]


@dataclass(slots=True)
class HeldSeries:
    """One series in memory: timestamps ascending, payloads alongside, and (with an
    encoder) each record serialized for the answer."""

    ts: list[int]
    payloads: list[str]
    loaded_at: float
    fragments: Fragments | None = None
    size: int = 0  # bytes held
    refreshing: bool = False  # a refresh of this entry was started (at most one)
    serial: int = 0  # set when the tier holds it: unique among every copy it ever held
    version: int = 0  # changes with every merge
    # This replica's Writes merged, not yet given back by the change feed: timestamp ->
    # payload. The feed gives every change in the store's order, so one it gives before
    # them is older, and does not replace them (None: no feed follows the store).
    pending: dict[int, str] | None = None
    # Wall clock (the change feed's) when the store read this copy was made of had ended.
    # The feed lags the store: until its watermark passes this, it may still give changes
    # the copy already holds, and merging one superseded since (by a purge, or a later
    # write) puts the copy in the past. What superseded it comes before the watermark
    # passes (the feed gives each vnode's log in order, and a purge's note goes to every
    # vnode), so the copy is right again by then. ``doubtful``: the feed merged a change
    # into it before then; it answers only once the watermark passed (``cache/policy.py``).
    settles: float = -math.inf
    doubtful: bool = False

    @classmethod
    def of(
        cls, records: Sequence[Record], loaded_at: float, fragments: Fragments | None = None
    ) -> HeldSeries:
        held = cls([r.ts_ms for r in records], [r.payload for r in records], loaded_at, fragments)
        held.size = sum(len(p) for p in held.payloads) + HELD_RECORD_BYTES * len(held.ts)
        if fragments is not None:
            held.size += sum(len(f) for f in fragments)
        return held

    def window(self, window: Window) -> SeriesRead:
        lo = 0 if window.start_ms is None else bisect_left(self.ts, window.start_ms)
        hi = len(self.ts) if window.end_ms is None else bisect_right(self.ts, window.end_ms)
        count = max(hi - lo, 0)
        limit = window.limit if 0 < window.limit < count else count
        picked = range(hi - 1, hi - 1 - limit, -1) if window.newest_first else range(lo, lo + limit)
        records = HeldRecords(self.ts, self.payloads, picked)
        encoded = None
        if self.fragments is not None:
            encoded = (
                self.fragments[hi - limit : hi][::-1]
                if window.newest_first
                else self.fragments[lo : lo + limit]
            )
        return SeriesRead(
            records, truncated=limit < count, encoded=encoded, held=(self.serial, self.version)
        )

    def merge(self, records: Sequence[Record], fragments: Fragments | None) -> None:
        """Upserts records in order (a timestamp given twice: the later one), keeping the
        series sorted; ``fragments`` are theirs."""
        self.version += 1
        ts, payloads, held = self.ts, self.payloads, self.fragments
        if held is not None and fragments is None:
            self.size -= sum(len(f) for f in held)
            self.fragments = held = None
        for n, (t, p) in enumerate(records):
            i = bisect_left(ts, t)
            if i < len(ts) and ts[i] == t:
                self.size += len(p) - len(payloads[i])
                payloads[i] = p
                if held is not None and fragments is not None:
                    self.size += len(fragments[n]) - len(held[i])
                    held[i] = fragments[n]
            else:
                ts.insert(i, t)
                payloads.insert(i, p)
                self.size += len(p) + HELD_RECORD_BYTES
                if held is not None and fragments is not None:
                    held.insert(i, fragments[n])
                    self.size += len(fragments[n])


@dataclass
class HotTier:
    """A byte-bounded LRU of whole series. ``capacity_bytes`` 0 turns it off."""

    capacity_bytes: int
    max_age: float
    max_series_records: int
    encode: Encoder | None = None
    clock: Callable[[], float] = time.monotonic
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    bytes: int = 0
    _held: OrderedDict[SeriesKey, HeldSeries] = field(default_factory=OrderedDict)
    _generations: dict[SeriesKey, int] = field(default_factory=dict)
    _too_large: set[SeriesKey] = field(default_factory=set)
    _epoch: int = 0
    _serials: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def enabled(self) -> bool:
        return self.capacity_bytes > 0

    @property
    def max_entry_bytes(self) -> int:
        """A series larger than this is never held: it would push out too much else."""
        return self.capacity_bytes // 2

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, key: SeriesKey) -> bool:
        return key in self._held

    def get(self, key: SeriesKey) -> HeldSeries | None:
        """The held series if fresh (and marks it recently used); counts a hit or a miss."""
        held = self.peek(key)
        if held is not None:
            self.touch(key)
            return held
        self._drop(key)  # expired, if held at all
        self.misses += 1
        return None

    def peek(self, key: SeriesKey) -> HeldSeries | None:
        """The held series if fresh, without counting or touching it."""
        held = self._held.get(key)
        if held is not None and self.clock() - held.loaded_at <= self.max_age:
            return held
        return None

    def touch(self, key: SeriesKey) -> None:
        """Counts a hit on a held series (found by :meth:`peek`) and marks it recently used."""
        self._held.move_to_end(key)
        self.hits += 1

    def refresh_due(self, held: HeldSeries) -> bool:
        """Whether a held series is old enough to be refreshed ahead (once per entry)."""
        if held.refreshing or self.clock() - held.loaded_at <= self.max_age * REFRESH_AT:
            return False
        held.refreshing = True
        return True

    def too_large(self, key: SeriesKey) -> bool:
        """Whether the series was found too large to hold (read its windows, not all of it)."""
        return key in self._too_large

    def found_too_large(self, key: SeriesKey) -> None:
        """Remembers a series too large to hold, until a Purge or an eviction may shrink it."""
        self._too_large.add(key)

    def ticket(self, key: SeriesKey) -> tuple[int, int, float]:
        """Taken before a fill starts; :meth:`fill` accepts the fill only if nothing changed."""
        return self._generations.get(key, 0), self._epoch, self.clock()

    def valid(self, ticket: tuple[int, int, float], key: SeriesKey) -> bool:
        """Whether nothing changed the series since the ticket was taken."""
        generation, epoch, _ = ticket
        return (self._generations.get(key, 0), self._epoch) == (generation, epoch)

    def fill(self, key: SeriesKey, held: HeldSeries, ticket: tuple[int, int, float]) -> bool:
        """Holds a whole series read from the store (built off the event loop by the
        caller, ``loaded_at`` the ticket's time), unless it changed since the ticket."""
        if not self.valid(ticket, key):
            return False
        if held.size > self.max_entry_bytes:
            self.found_too_large(key)
            return False
        self._drop(key)
        held.serial = next(self._serials)
        self._held[key] = held
        self.bytes += held.size
        self._shrink()
        return True

    def written(self, key: SeriesKey, records: Sequence[Record], *, fed: bool = False) -> None:
        """After the store acknowledged a Write of this replica: merge into the held
        series, void fills. ``fed``: the change feed will give it back (see ``pending``)."""
        self._generations[key] = self._generations.get(key, 0) + 1
        held = self._held.get(key)
        if held is None:
            return
        if fed:
            if held.pending is None:
                held.pending = {}
            for record in records:
                held.pending[record.ts_ms] = record.payload
        self._merge(key, held, records)

    def applied(
        self, key: SeriesKey, records: Sequence[Record], watermark: float = math.inf
    ) -> None:
        """Records of any replica's Write, as the change feed gave them (in the store's
        order): merged into the held series, fills voided. A timestamp this replica wrote
        and the feed has not given back keeps this replica's record (it is the newer).
        A copy read since ``watermark`` (the feed's) becomes doubtful (``settles``)."""
        self._generations[key] = self._generations.get(key, 0) + 1
        held = self._held.get(key)
        if held is None:
            return
        pending = held.pending
        if pending:
            kept = []
            for record in records:
                mine = pending.get(record.ts_ms)
                if mine is None:
                    kept.append(record)
                elif mine == record.payload:
                    del pending[record.ts_ms]  # ours, given back: already merged
            records = kept
        if records:
            if held.settles > watermark:
                held.doubtful = True
            self._merge(key, held, records)

    def _merge(self, key: SeriesKey, held: HeldSeries, records: Sequence[Record]) -> None:
        before = held.size
        held.merge(
            records, self.encode(records) if self.encode and held.fragments is not None else None
        )
        self.bytes += held.size - before
        if held.size > self.max_entry_bytes or len(held.ts) > self.max_series_records:
            self._drop(key)
            self.found_too_large(key)
        self._shrink()

    def clear(self) -> None:
        """Drops every held series and voids every fill (the change feed was lost: what it
        did not give cannot be known)."""
        self.forget(lambda _: True)

    def forget(self, matches: Callable[[SeriesKey], bool]) -> int:
        """After a Purge or an eviction: drop every held series it may touch, void all fills."""
        self._epoch += 1
        self._too_large = {key for key in self._too_large if not matches(key)}
        dropped = [key for key in self._held if matches(key)]
        for key in dropped:
            self._drop(key)
        return len(dropped)

    def _drop(self, key: SeriesKey) -> None:
        held = self._held.pop(key, None)
        if held is not None:
            self.bytes -= held.size

    def _shrink(self) -> None:
        while self.bytes > self.capacity_bytes and self._held:
            _, held = self._held.popitem(last=False)
            self.bytes -= held.size
            self.evictions += 1
