"""The domain: series, records, windows and the limits every store enforces alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from mdcache_server.barnumbers import BarNumbers

DAY_MS = 86_400_000
RESPONSE_ROOM = 64 * 1024  # of the gRPC message limit, room for an answer's own fields


class SeriesKey(NamedTuple):
    """One series: ``SeriesKey("600519", "kline", "1d")``."""

    symbol: str
    data_type: str
    timeframe: str


class Record(NamedTuple):
    """One record: epoch milliseconds (UTC) and a JSON payload as text."""

    ts_ms: int
    payload: str


@dataclass(frozen=True, slots=True)
class Window:
    """A read window, inclusive at both ends; ``None`` is unbounded."""

    start_ms: int | None = None
    end_ms: int | None = None
    limit: int = 0  # 0: no limit
    newest_first: bool = False
    # For resampling: a store that keeps bars' numbers (``barnumbers.py``) may answer
    # with them (``SeriesRead.bars``) in place of the payloads.
    bars: bool = False


@dataclass(frozen=True, slots=True)
class SeriesRead:
    """What was found for one series in a window.

    ``encoded``, when present, is the same records already serialized for the answer
    (the hot tier keeps them so), in the same order; ``held`` then names the held copy
    they came from (its serial and version): the same window of the same copy is the
    same answer. ``bars``, when present (a window read with ``Window.bars``), is every
    record's numbers, and ``records`` only counts them.
    """

    records: Sequence[Record]
    truncated: bool  # the window holds more than ``limit`` records
    encoded: Sequence[bytes] | None = None
    held: tuple[int, int] | None = None
    bars: BarNumbers | None = None


@dataclass(frozen=True, slots=True)
class ReadQuery:
    """What a Read asks for: the window of each series, in the order given."""

    series: list[SeriesKey]
    window: Window


@dataclass(frozen=True, slots=True)
class PurgeFilter:
    """Delete records with ``ts_ms < before_ms``, optionally of one symbol, data_type, timeframe."""

    before_ms: int
    symbol: str | None = None
    data_type: str | None = None
    timeframe: str | None = None

    def matches(self, key: SeriesKey) -> bool:
        """Whether the filter may touch records of this series."""
        return (
            self.symbol in (None, key.symbol)
            and self.data_type in (None, key.data_type)
            and self.timeframe in (None, key.timeframe)
        )


@dataclass(frozen=True, slots=True)
class StoreCounts:
    """What a store holds."""

    records: int
    series: int
    symbols: int


@dataclass(frozen=True, slots=True)
class SeriesUsage:
    """How often one series was read, and when last."""

    reads: int
    last_read_ms: int


@dataclass(frozen=True, slots=True)
class Usage:
    """One replica's read counters since ``since_ms``, and what its capacity checks evicted
    since then, as stored so that they survive restarts."""

    replica: str
    since_ms: int
    hits: int
    misses: int
    series: dict[SeriesKey, SeriesUsage]
    evicted_series: int = 0
    evicted_records: int = 0


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits enforced before any store sees a call, so that every store answers alike.

    The payload limit is TDengine's largest VARCHAR column (65,517 bytes); identifiers
    fit a 64-byte tag; timestamps span what TDengine stores with millisecond precision.
    """

    max_identifier_bytes: int = 64
    max_payload_bytes: int = 65_517
    min_ts_ms: int = 0  # 1970-01-01T00:00:00Z
    max_ts_ms: int = 4_102_444_800_000 - 1  # 2099-12-31T23:59:59.999Z
    max_records_per_write: int = 100_000
    max_series_per_call: int = 1_000
    max_read_records: int = 100_000
    max_response_bytes: int = 64 * 1024 * 1024 - RESPONSE_ROOM  # the gRPC message limit, less room
