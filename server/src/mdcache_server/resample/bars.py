"""OHLCV bars of a coarser timeframe made of a series' bars, along a trading calendar.

A bar is stamped at its end, as ``mdcache load`` stamps them (czsc minute bars at their
``dt``, the bar's end; daily bars at the close): a minute bar ending at ``t`` belongs to
the first bucket of its local day that ends at or after ``t`` (one ending at 11:30
closes the A-share morning; one after the day's last close joins its last bucket, one
before its first open its first). An intraday bucket is stamped at its end, a day at its
last close; a week or a month is stamped as its last trading day present in the data.
A daily bar's day is its local date, or its UTC date when it is stamped at 00:00 UTC
(date-only stamps, as Yahoo's).

The new bar: ``open`` of the first, highest ``high``, lowest ``low``, ``close`` of the
last, and the summed fields (``volume``, ``vol``, ``amount``, configurable) added up;
fields are found by name in any case and written under the source's own names. Other
fields (dates, codes, ``pre_close``...) are left out: they mean nothing for the new bar.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson

from mdcache_server import barnumbers
from mdcache_server.barnumbers import BarNumbers
from mdcache_server.errors import InvalidArgument
from mdcache_server.model import DAY_MS, Record
from mdcache_server.resample.calendar import Calendar, last_weekday, month_last_weekday
from mdcache_server.resample.timeframe import Timeframe, Unit

OHLC = ("open", "high", "low", "close")
SUMMED = "volume,vol,amount"  # the fields added up by default (MDCACHE_SUMMED_FIELDS)
DEFAULT_SUMMED = frozenset(SUMMED.split(","))
NUMBERS = frozenset({int, float})
Group = tuple[int, int, int]  # first bar, past the last bar, the new bar's timestamp


@dataclass(frozen=True, slots=True)
class Bars:
    """The new bars, oldest first, and whether the last one covers only part of its bucket."""

    records: list[Record]
    partial: bool


def _intraday(ts: list[int], calendar: Calendar, minutes: int) -> list[Group]:
    """Buckets of ``minutes`` within each session (0: the whole day), stamped at their end."""
    groups: list[Group] = []
    i, n = 0, len(ts)
    while i < n:
        day = calendar.day(calendar.day_of(ts[i]))
        ends = calendar.bucket_ends(day.day, minutes) if minutes else (day.close_ms,)
        past = bisect_left(ts, day.end_ms, i, n)
        first = i
        for end in ends[:-1]:
            cut = bisect_right(ts, end, first, past)
            if cut > first:
                groups.append((first, cut, end))
                first = cut
        if past > first:
            groups.append((first, past, ends[-1]))
        i = past
    return groups


def _day_of_daily(ts_ms: int, calendar: Calendar) -> date:
    if ts_ms % DAY_MS == 0:  # a date-only stamp (00:00 UTC)
        return datetime.fromtimestamp(ts_ms // 1000, UTC).date()
    return calendar.day_of(ts_ms)


def _periods(
    ts: list[int], source: Timeframe, target: Timeframe, calendar: Calendar
) -> tuple[list[Group], bool]:
    """Weeks or months of trading days; whether the last one is partial."""
    if source.intraday:
        days = _intraday(ts, calendar, 0)
        dates = [calendar.day_of(ts[first]) for first, _, _ in days]
        last_day_whole = ts[-1] >= days[-1][2] if days else True
    else:
        days = [(i, i + 1, t) for i, t in enumerate(ts)]
        dates = [_day_of_daily(t, calendar) for t in ts]
        last_day_whole = True
    period: Callable[[date], Hashable]
    if target.unit is Unit.WEEK:
        period, period_end = (lambda d: d.isocalendar()[:2]), last_weekday
    else:
        period, period_end = (lambda d: (d.year, d.month)), month_last_weekday
    groups: list[Group] = []
    current: Hashable = None
    for (first, past, stamp), day in zip(days, dates, strict=True):
        key = period(day)
        if groups and key == current:
            groups[-1] = (groups[-1][0], past, stamp)
        else:
            groups.append((first, past, stamp))
            current = key
    partial = bool(dates) and (not last_day_whole or dates[-1] < period_end(dates[-1]))
    return groups, partial


def groups_of(
    ts: list[int], source: Timeframe, target: Timeframe, calendar: Calendar
) -> tuple[list[Group], bool]:
    """The buckets of ascending timestamps ``ts``, and whether the last one is partial."""
    if not ts:
        return [], False
    if target.unit in (Unit.WEEK, Unit.MONTH):
        return _periods(ts, source, target, calendar)
    groups = _intraday(ts, calendar, target.minutes if target.intraday else 0)
    return groups, ts[-1] < groups[-1][2]


def bucket_start(start_ms: int, source: Timeframe, target: Timeframe, calendar: Calendar) -> int:
    """The earliest timestamp a source bar of the bucket holding ``start_ms`` may have."""
    day = calendar.day(calendar.day_of(start_ms))
    if target.intraday:
        ends = calendar.bucket_ends(day.day, target.minutes)
        i = min(bisect_left(ends, start_ms), len(ends) - 1)
        return ends[i - 1] + 1 if i else day.start_ms
    if target.unit is Unit.DAY:
        return day.start_ms
    if target.unit is Unit.WEEK:
        first = day.day - timedelta(days=day.day.weekday())
    else:
        first = day.day.replace(day=1)
    local = calendar.day(first).start_ms
    if source.intraday:
        return local
    utc = int(datetime.combine(first, time(0), UTC).timestamp() * 1000)  # date-only stamps
    return min(local, utc)


def _at(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Fields:
    """The payloads' fields that make bars, as columns: ``open``, ``high``, ``low``,
    ``close`` and the summed ones, under the names of the first payload. Raises
    InvalidArgument naming a missing or non-numeric field and the record it is missing from."""

    def __init__(
        self, ts: list[int], payloads: Sequence[str], summed: frozenset[str], field: str
    ) -> None:
        self.ts, self.field = ts, field
        try:
            values = orjson.loads("[" + ",".join(payloads) + "]")
        except orjson.JSONDecodeError:  # JSON that orjson refuses (integers past 64 bits)
            values = [json.loads(p) for p in payloads]
        first = values[0]
        if not isinstance(first, dict):
            self._fail(0, "payload", "is not a JSON object; resample needs bars")
        by_lower: dict[str, str] = {}
        for name in first:
            by_lower.setdefault(name.lower(), name)
        self.names = [by_lower.get(name) or self._missing(0, name) for name in OHLC]
        self.summed = [name for name in first if name.lower() in summed]
        self.kept = [name for name in first if name in self.names or name in self.summed]
        try:
            self.columns = [[v[name] for v in values] for name in self.names]
            self.sums = [[v.get(name, 0) for v in values] for name in self.summed]
        except (KeyError, TypeError, AttributeError):  # a record with other names, or none
            self._by_record(values, summed)
        for name, column in zip(self.names + self.summed, self.columns + self.sums, strict=True):
            if not set(map(type, column)) <= NUMBERS:
                bad = next(i for i, v in enumerate(column) if type(v) not in NUMBERS)
                self._fail(bad, f"payload.{name}", f"{column[bad]!r} is not a number")

    @classmethod
    def from_numbers(cls, bars: BarNumbers, summed: frozenset[str], field: str) -> Fields:
        """The fields of records whose numbers were kept when they were written (all of one
        signature, see ``barnumbers.py``), as parsing their payloads finds them: names from
        the first, each value an int or a float as written. Only for ``summed`` fields
        that :func:`numbers_suffice` accepts."""
        self = object.__new__(cls)
        self.ts, self.field = bars.ts, field
        shapes = bars.shapes
        ints = {barnumbers.int_slots(shape) for shape in set(shapes)}
        names: list[str] = ["", "", "", ""]
        self.summed, self.kept, self.sums = [], [], []
        columns: list[list[Any]] = [[], [], [], []]
        for name, slot, _ in barnumbers.keys(shapes[0]):
            values: list[Any] = bars.columns[barnumbers.column(slot)]
            bit = 1 << slot
            if all(i & bit for i in ints):
                values = list(map(int, values))
            elif any(i & bit for i in ints):
                values = [int(v) if s & bit else v for v, s in zip(values, shapes, strict=True)]
            if slot < len(OHLC):
                names[slot], columns[slot] = name, values
            elif name.lower() in summed:
                self.summed.append(name)
                self.sums.append(values)
            else:
                continue
            self.kept.append(name)
        self.names, self.columns = names, columns
        return self

    def __len__(self) -> int:
        return len(self.ts)

    def cut(self, lo: int, hi: int) -> Fields:
        """The fields of records ``lo`` to ``hi`` (a window of a held series' fields)."""
        part = object.__new__(Fields)
        part.ts, part.field = self.ts[lo:hi], self.field
        part.names, part.summed, part.kept = self.names, self.summed, self.kept
        part.columns = [column[lo:hi] for column in self.columns]
        part.sums = [column[lo:hi] for column in self.sums]
        return part

    def _by_record(self, values: list[Any], summed: frozenset[str]) -> None:
        self.columns = [[] for _ in OHLC]
        self.sums = [[] for _ in self.summed]
        wanted = [name.lower() for name in self.summed]
        for i, value in enumerate(values):
            if not isinstance(value, dict):
                self._fail(i, "payload", "is not a JSON object; resample needs bars")
            lower: dict[str, Any] = {}
            for name, v in value.items():
                lower.setdefault(name.lower(), v)
            for column, name in zip(self.columns, OHLC, strict=True):
                column.append(lower[name] if name in lower else self._missing(i, name))
            for column, name in zip(self.sums, wanted, strict=True):
                column.append(lower.get(name, 0))

    def _missing(self, i: int, name: str) -> Any:
        self._fail(i, f"payload.{name}", "missing; resample needs open, high, low and close")

    def _fail(self, i: int, name: str, why: str) -> Any:
        raise InvalidArgument(
            f"{self.field}.{name}", f"{why} (the record at ts_ms {self.ts[i]}, {_at(self.ts[i])})"
        )


def numbers_suffice(summed: frozenset[str]) -> bool:
    """Whether bars' numbers kept at write time (``barnumbers.py``) make the bars their
    payloads make when these fields are summed: no summed name that they do not keep
    (names are matched in lower case, so one with a capital matches none)."""
    return all(name in barnumbers.SUMMED for name in summed if name == name.lower())


def resample(
    ts: list[int],
    payloads: Sequence[str],
    source: Timeframe,
    target: Timeframe,
    calendar: Calendar,
    summed: frozenset[str] = DEFAULT_SUMMED,
    field: str = "series[0]",
    since_ms: int | None = None,
    cut: str = "",
    parsed: Fields | None = None,
) -> Bars:
    """Bars of ``target`` made of the records (ascending ``ts``) of a ``source`` series;
    with ``since_ms``, only those of buckets holding a record at or after it. ``cut``
    (``"end"`` or ``"start"``) says the records were cut short there (a read's limit): the
    bucket at that end is left out unless it is whole. ``parsed``: the records' fields,
    parsed before (else the payloads are parsed here)."""
    groups, partial = groups_of(ts, source, target, calendar)
    if cut == "end" and partial:
        groups, partial = groups[:-1], False
    elif cut == "start":
        groups = groups[1:]
    if since_ms is not None:
        groups = [g for g in groups if ts[g[1] - 1] >= since_ms]
    if not groups:
        return Bars([], False)
    lo, hi = groups[0][0], groups[-1][1]  # only the records of the bars answered
    if lo or hi < len(ts):
        groups = [(first - lo, past - lo, stamp) for first, past, stamp in groups]
    if parsed is not None:
        fields = parsed.cut(lo, hi)
    else:
        fields = Fields(ts[lo:hi], payloads[lo:hi], summed, field)
    opens, highs, lows, closes = fields.columns
    o_name, h_name, l_name, c_name = fields.names
    kept = fields.kept
    adders: list[tuple[str, list[Any], Callable[[list[Any]], Any]]] = [
        (name, column, sum if set(map(type, column)) == {int} else math.fsum)
        for name, column in zip(fields.summed, fields.sums, strict=True)
    ]
    dumps = orjson.dumps
    records = []
    for first, past, stamp in groups:
        bar: dict[str, Any] = {
            o_name: opens[first],
            h_name: max(highs[first:past]),
            l_name: min(lows[first:past]),
            c_name: closes[past - 1],
        }
        for name, column, add in adders:
            bar[name] = add(column[first:past])
        records.append(Record(stamp, dumps({name: bar[name] for name in kept}).decode()))
    return Bars(records, partial)
