"""The hot tier: whole series held in memory, least recently used out first, bounded in bytes.

A series is held whole (sorted by timestamp), so any window of it is answered by two
bisections, with no worker thread and no store. The tier is touched only from the
event loop thread. It is kept correct by the cache policy:

- a Write merges its records into a held series once the store has them;
- a Purge or an eviction drops the series it touches;
- a fill (a store read of a whole series) started before a change to that series is
  discarded when it lands (per-series generations, and one epoch for purges);
- a held copy remembers the store's change version it was read at (``stored``), and
  the cache policy checks it before each Read (``cache/freshness.py``): a copy found
  changed is dropped, one found unchanged counts as loaded at the check
  (:meth:`HotTier.revalidated`), so a Write through another replica is seen by the next
  Read here, and a series that does not change is never read again;
- an entry not checked for ``max_age`` is read again from the store (a bound for
  what is not read through the policy).
"""

from __future__ import annotations

import itertools
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
    stored: int = -1  # the store's change version it was read at
    merged: int = 0  # writes of this replica merged into it since (see HotTier.revalidated)

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
        """Upserts records (distinct timestamps), keeping the order; ``fragments`` are theirs."""
        self.version += 1
        self.merged += 1
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
    # The store advances a version by exactly one per series of a write (SQLite): a copy
    # read at v with n of this replica's writes merged since is unchanged at v + n. Else
    # (TDengine) a copy written through here is read again at its next check.
    counted_versions: bool = False
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

    def written(self, key: SeriesKey, records: Sequence[Record]) -> None:
        """After the store acknowledged a Write: merge into the held series, void fills."""
        self._generations[key] = self._generations.get(key, 0) + 1
        held = self._held.get(key)
        if held is None:
            return
        before = held.size
        held.merge(
            records, self.encode(records) if self.encode and held.fragments is not None else None
        )
        self.bytes += held.size - before
        if held.size > self.max_entry_bytes or len(held.ts) > self.max_series_records:
            self._drop(key)
            self.found_too_large(key)
        self._shrink()

    def revalidated(self, versions: dict[SeriesKey, int], at: float) -> int:
        """The store's change versions, checked at ``at``: a held copy read at another
        version is dropped (and fills in flight voided); one unchanged counts as loaded at
        ``at``. Returns how many were dropped."""
        dropped = 0
        for key, version in versions.items():
            held = self._held.get(key)
            if held is None:
                continue
            same = (
                held.stored == version
                if not held.merged
                else (self.counted_versions and held.stored + held.merged == version)
            )
            if same:
                held.stored, held.merged = version, 0
                held.loaded_at = max(held.loaded_at, at)
                held.refreshing = False
            else:
                self._generations[key] = self._generations.get(key, 0) + 1
                self._drop(key)
                dropped += 1
        return dropped

    def current_since(self, keys: Sequence[SeriesKey], since: float, now: float) -> bool:
        """When every key's copy was known current at ``since`` or later (and the store
        has changed nothing since), counts them current at ``now``; else changes nothing
        and returns False."""
        copies = [self._held.get(key) for key in keys]
        if any(c is None or c.loaded_at < since or c.merged for c in copies):
            return False
        for copy in copies:
            assert copy is not None
            copy.loaded_at = now
        return True

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
