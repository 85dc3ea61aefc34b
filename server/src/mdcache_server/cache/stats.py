"""Hit statistics: hits, misses and reads per symbol, counted in memory on the event loop."""

from __future__ import annotations

import heapq
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class HitStats:
    """Counts series reads. A read of a series that found records is a hit, else a miss."""

    hits: int = 0
    misses: int = 0
    reads_by_symbol: Counter[str] = field(default_factory=Counter)
    since_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)

    def record(self, symbol: str, *, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1
        self.reads_by_symbol[symbol] += 1

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def hottest(self, n: int) -> list[tuple[str, int]]:
        """The ``n`` most read symbols, most read first (ties by symbol)."""
        return heapq.nsmallest(n, self.reads_by_symbol.items(), key=lambda kv: (-kv[1], kv[0]))
