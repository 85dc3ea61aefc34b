"""Hit statistics: counted in memory on the event loop, flushed to the store now and then.

Each replica (server process) keeps its own counters (reads, and the series its capacity
checks evicted) and stores them under its replica id (absolute values, so a flush is
idempotent); Stats sums every replica's, so hits and evictions are the store's.
A reset writes a marker row; every replica that sees a marker newer than its own
counters starts anew, so a reset through one replica resets them all.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from dataclasses import dataclass, field

from mdcache_server.model import SeriesKey, SeriesUsage, Usage

RESET_MARKER = "*reset*"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class HitStats:
    """One replica's counters. A read of a series that found records is a hit, else a miss."""

    replica: str
    since_ms: int = field(default_factory=wall_ms)
    hits: int = 0
    misses: int = 0
    evicted_series: int = 0
    evicted_records: int = 0
    series: dict[SeriesKey, SeriesUsage] = field(default_factory=dict)
    _dirty: set[SeriesKey] = field(default_factory=set)

    def record(self, key: SeriesKey, *, hit: bool, now_ms: int) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1
        before = self.series.get(key)
        self.series[key] = SeriesUsage((before.reads if before else 0) + 1, now_ms)
        self._dirty.add(key)

    def evicted(self, series: int, records: int) -> None:
        """Whole series evicted by this replica's capacity check."""
        self.evicted_series += series
        self.evicted_records += records

    def resume(self, stored: Usage) -> None:
        """Continues from what this replica stored before a restart."""
        self.since_ms, self.hits, self.misses = stored.since_ms, stored.hits, stored.misses
        self.evicted_series, self.evicted_records = stored.evicted_series, stored.evicted_records
        for key, usage in stored.series.items():
            if key not in self.series:
                self.series[key] = usage

    def reset(self, since_ms: int) -> None:
        self.since_ms, self.hits, self.misses = since_ms, 0, 0
        self.evicted_series = self.evicted_records = 0
        self.series.clear()
        self._dirty.clear()

    def to_flush(self) -> Usage:
        """The counters to store: totals, and the series read since the last flush."""
        changed = {key: self.series[key] for key in self._dirty if key in self.series}
        self._dirty.clear()
        return self._usage(changed)

    def as_usage(self) -> Usage:
        return self._usage(dict(self.series))

    def _usage(self, series: dict[SeriesKey, SeriesUsage]) -> Usage:
        return Usage(
            self.replica,
            self.since_ms,
            self.hits,
            self.misses,
            series,
            self.evicted_series,
            self.evicted_records,
        )


@dataclass(frozen=True, slots=True)
class ClusterUsage:
    """Every replica's counters, this one's live and the others' as last flushed."""

    replicas: int
    since_ms: int
    hits: int
    misses: int
    series: dict[SeriesKey, SeriesUsage]
    evicted_series: int = 0
    evicted_records: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def hottest_symbols(self, n: int) -> list[tuple[str, int]]:
        """The ``n`` most read symbols, most read first (ties by symbol)."""
        reads: Counter[str] = Counter()
        for key, usage in self.series.items():
            reads[key.symbol] += usage.reads
        return heapq.nsmallest(n, reads.items(), key=lambda kv: (-kv[1], kv[0]))

    def hottest_series(self) -> list[SeriesKey]:
        """Series most read first."""
        return sorted(self.series, key=lambda k: (-self.series[k].reads, k))

    @classmethod
    def combine(cls, mine: Usage, others: list[Usage]) -> ClusterUsage:
        series: dict[SeriesKey, SeriesUsage] = {}
        for usage in (mine, *others):
            for key, u in usage.series.items():
                seen = series.get(key)
                series[key] = (
                    SeriesUsage(seen.reads + u.reads, max(seen.last_read_ms, u.last_read_ms))
                    if seen
                    else u
                )
        return cls(
            replicas=1 + len(others),
            since_ms=min(u.since_ms for u in (mine, *others)),
            hits=sum(u.hits for u in (mine, *others)),
            misses=sum(u.misses for u in (mine, *others)),
            series=series,
            evicted_series=sum(u.evicted_series for u in (mine, *others)),
            evicted_records=sum(u.evicted_records for u in (mine, *others)),
        )


def split_stored(stored: list[Usage], replica: str) -> tuple[Usage | None, list[Usage], int]:
    """This replica's stored counters, the other replicas' (counted since the last reset),
    and the last reset's time (0 if none)."""
    reset_ms = max((u.since_ms for u in stored if u.replica == RESET_MARKER), default=0)
    mine = next((u for u in stored if u.replica == replica), None)
    others = [
        u for u in stored if u.replica not in (replica, RESET_MARKER) and u.since_ms >= reset_ms
    ]
    return mine, others, reset_ms
