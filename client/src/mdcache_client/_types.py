"""The client's values: series, records, windows, read and load results, stats."""

from __future__ import annotations

import enum
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeAlias


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
    """One series' answer to a read. A miss is ``hit=False`` with no records.

    A resampled read (``resample="60m"``) answers ``series`` in the new timeframe,
    ``source`` the series its bars were made of, and ``partial`` when the newest bar
    answered covers only part of its bucket.
    """

    series: Series
    hit: bool
    records: Sequence[Record]
    truncated: bool
    source: Series | None = None
    partial: bool = False

    def values(self) -> list[Any]:
        """Every payload decoded, in the order read."""
        return [r.json() for r in self.records]


@dataclass(frozen=True, slots=True)
class Window:
    """A window of time, inclusive at both ends, in epoch milliseconds (UTC).

    ``Window(1704067200000, 1704585600000)`` is 2024-01-01 00:00 to 2024-01-07 00:00 UTC.
    """

    start_ms: int
    end_ms: int

    def __post_init__(self) -> None:
        if not 0 <= self.start_ms <= self.end_ms:
            raise ValueError(f"window needs 0 <= start_ms <= end_ms, got {self}")

    def __contains__(self, ts_ms: object) -> bool:
        return isinstance(ts_ms, int) and self.start_ms <= ts_ms <= self.end_ms


class Source(enum.Enum):
    """Where the records of a :meth:`get_or_load <mdcache_client.Client.get_or_load>` came from."""

    CACHE = "cache"  # the cache covered the window
    LOADER = "loader"  # a miss or only part of the window: loaded, then written back
    FALLBACK = "fallback"  # the cache could not be reached: loaded, not written back


@dataclass(frozen=True, slots=True)
class LoadResult:
    """The records of a window, oldest first, and where they came from.

    ``truncated`` is true when the cache holds more records in the window than one read
    returns (the server's ``MDCACHE_MAX_READ_RECORDS``).
    """

    series: Series
    records: Sequence[Record]
    source: Source
    truncated: bool = False

    def values(self) -> list[Any]:
        """Every payload decoded, oldest first."""
        return [r.json() for r in self.records]


Loader: TypeAlias = Callable[[Series, Window], Iterable[Record]]
"""Fetches a series' records for a window from the upstream (blocking ``Client``)."""

AsyncLoader: TypeAlias = Callable[[Series, Window], Awaitable[Iterable[Record]]]
"""Fetches a series' records for a window from the upstream (``AsyncClient``)."""

RangesLoader: TypeAlias = Callable[[Series, Sequence[Window]], Iterable[Record]]
"""Fetches a series' records for several windows in one upstream call (``Client``);
marked with :func:`~mdcache_client.ranges_loader`."""

AsyncRangesLoader: TypeAlias = Callable[[Series, Sequence[Window]], Awaitable[Iterable[Record]]]
"""Fetches a series' records for several windows in one upstream call (``AsyncClient``);
marked with :func:`~mdcache_client.ranges_loader`."""


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
    resampled_reads: int = 0  # series reads answered resampled, this process since it started
