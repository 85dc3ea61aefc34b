"""The client's values: series, records, read results and stats."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple


class Series(NamedTuple):
    """One series: ``Series("600519", "kline", "1d")``."""

    symbol: str
    data_type: str
    timeframe: str


@dataclass(frozen=True, slots=True)
class Record:
    """One record: epoch milliseconds and a JSON payload as text, exactly as stored.

    ``ts_ms=None`` in a write lets the server stamp it with its clock.
    """

    ts_ms: int | None
    payload: str

    @classmethod
    def of(cls, ts_ms: int | None, value: Any) -> Record:
        """A record holding ``value`` encoded as JSON: ``Record.of(ts, {"close": 10.5})``."""
        return cls(ts_ms, json.dumps(value, ensure_ascii=False, separators=(",", ":")))

    def json(self) -> Any:
        """The payload decoded."""
        return json.loads(self.payload)


@dataclass(frozen=True, slots=True)
class ReadResult:
    """One series' answer to a read. A miss is ``hit=False`` with no records."""

    series: Series
    hit: bool
    records: Sequence[Record]
    truncated: bool

    def values(self) -> list[Any]:
        """Every payload decoded, in the order read."""
        return [r.json() for r in self.records]


@dataclass(frozen=True, slots=True)
class HotTierStats:
    """The server's in-memory tier (one process)."""

    enabled: bool
    bytes: int
    capacity_bytes: int
    series: int
    hits: int
    misses: int
    evictions: int


@dataclass(frozen=True, slots=True)
class MethodCalls:
    calls: int
    errors: int


@dataclass(frozen=True, slots=True)
class Stats:
    """What the cache holds and how it is used; counters are summed over every replica."""

    records: int
    symbols: int
    series: int
    hits: int
    misses: int
    hit_rate: float
    hot_symbols: Mapping[str, int]
    uptime_seconds: float
    store: str
    store_version: str
    counting_since_ms: int
    hot_tier: HotTierStats
    evicted_series: int
    evicted_records: int
    replicas: int
    retention: Mapping[str, int]  # data_type ("*": default) -> days, 0 = kept
    calls: Mapping[str, MethodCalls]  # by method, this process since it started
