"""Trading calendars: the sessions of a market's day, in its own time zone, and which
market a symbol trades on.

A calendar is written ``name=Zone HH:MM-HH:MM [HH:MM-HH:MM ...]``, e.g.
``cn=Asia/Shanghai 09:30-11:30 13:00-15:00`` (A-shares: a morning and an afternoon
session, China time) or ``us=America/New_York 09:30-16:00`` (US equities, New York time
with its daylight saving time, from the IANA database through ``zoneinfo``). Sessions
are on weekdays; which weekdays traded is taken from the data itself.

A symbol's market comes from rules ``KEY=market``: a key starting with ``.`` is a
suffix (``.SH=cn``), ``*`` the default, any other key one symbol (``AAPL=us``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_CALENDARS = "cn=Asia/Shanghai 09:30-11:30 13:00-15:00;us=America/New_York 09:30-16:00"
DEFAULT_MARKETS = ".SH=cn,.SZ=cn,.BJ=cn,.XSHG=cn,.XSHE=cn,*=cn"
_SESSION = re.compile(r"([0-2][0-9]):([0-5][0-9])-([0-2][0-9]):([0-5][0-9])")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class TradingDay:
    """One calendar day of a market, in epoch milliseconds (UTC): from its local midnight
    to the next, and its sessions' opens and closes."""

    day: date
    start_ms: int
    end_ms: int
    sessions: tuple[tuple[int, int], ...]

    @property
    def close_ms(self) -> int:
        """The end of the day's last session."""
        return self.sessions[-1][1]

    def bucket_ends(self, minutes: int) -> tuple[int, ...]:
        """The ends of the day's ``minutes`` buckets: each session cut from its open, the
        last bucket of a session ending at its close (no bucket spans a break)."""
        step = minutes * MINUTE_MS
        ends: list[int] = []
        for open_ms, close_ms in self.sessions:
            ends.extend(range(open_ms + step, close_ms, step))
            ends.append(close_ms)
        return tuple(ends)


@dataclass(eq=False)
class Calendar:
    """A market's sessions in its time zone; days are worked out once and kept."""

    name: str
    zone: ZoneInfo
    sessions: tuple[tuple[time, time], ...]
    _days: dict[date, TradingDay] = field(default_factory=dict, repr=False)
    _ends: dict[tuple[date, int], tuple[int, ...]] = field(default_factory=dict, repr=False)

    def day_of(self, ts_ms: int) -> date:
        """The local date of a moment."""
        return datetime.fromtimestamp(ts_ms / 1000, self.zone).date()

    def day(self, day: date) -> TradingDay:
        found = self._days.get(day)
        if found is None:
            if len(self._days) > 100_000:  # decades of days: a bound, never reached in use
                self._days.clear()
                self._ends.clear()

            def ms(d: date, t: time) -> int:
                return int(datetime.combine(d, t, self.zone).timestamp() * 1000)

            found = self._days[day] = TradingDay(
                day,
                ms(day, time(0)),
                ms(day + timedelta(days=1), time(0)),
                tuple((ms(day, a), ms(day, b)) for a, b in self.sessions),
            )
        return found

    def bucket_ends(self, day: date, minutes: int) -> tuple[int, ...]:
        key = (day, minutes)
        found = self._ends.get(key)
        if found is None:
            found = self._ends[key] = self.day(day).bucket_ends(minutes)
        return found

    @classmethod
    def parse(cls, text: str) -> Calendar:
        """``name=Zone HH:MM-HH:MM ...``; raises ValueError saying what is wrong."""
        name, sep, rest = text.strip().partition("=")
        name = name.strip()
        if not sep or not _NAME.fullmatch(name):
            raise ValueError(f"{text!r}: not name=Zone HH:MM-HH:MM ... (name in lower case)")
        zone_name, *spans = rest.split()
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{name}: unknown time zone {zone_name!r}") from None
        if not spans:
            raise ValueError(f"{name}: name at least one session HH:MM-HH:MM")
        sessions = []
        for span in spans:
            found = _SESSION.fullmatch(span)
            if found is None:
                raise ValueError(f"{name}: session {span!r} is not HH:MM-HH:MM")
            a_h, a_m, b_h, b_m = map(int, found.groups())
            if a_h > 23 or b_h > 23:
                raise ValueError(f"{name}: session {span!r} is not within a day")
            sessions.append((time(a_h, a_m), time(b_h, b_m)))
        for (a, b), after in zip(sessions, [*sessions[1:], None], strict=True):
            if not a < b or (after is not None and not b <= after[0]):
                raise ValueError(f"{name}: sessions must be in order and not overlap")
        return cls(name, zone, tuple(sessions))


def parse_calendars(text: str) -> dict[str, Calendar]:
    """Calendars separated by ``;``."""
    calendars = {}
    for part in text.split(";"):
        if part.strip():
            calendar = Calendar.parse(part)
            calendars[calendar.name] = calendar
    if not calendars:
        raise ValueError("name at least one calendar")
    return calendars


@dataclass(frozen=True, slots=True)
class MarketRules:
    """Which market a symbol trades on: by the symbol itself, else its suffix, else a default."""

    symbols: Mapping[str, str]
    suffixes: tuple[tuple[str, str], ...]  # longest first
    default: str

    @classmethod
    def parse(cls, text: str) -> MarketRules:
        symbols: dict[str, str] = {}
        suffixes: dict[str, str] = {}
        default = ""
        for part in text.split(","):
            if not part.strip():
                continue
            key, sep, market = (s.strip() for s in part.partition("="))
            if not sep or not key or not _NAME.fullmatch(market):
                raise ValueError(f"{part.strip()!r}: not KEY=market (.SUFFIX, SYMBOL or *)")
            if key == "*":
                default = market
            elif key.startswith("."):
                suffixes[key] = market
            else:
                symbols[key] = market
        if not default:
            raise ValueError("name a default market: *=market")
        ordered = tuple(sorted(suffixes.items(), key=lambda kv: -len(kv[0])))
        return cls(symbols, ordered, default)

    def markets(self) -> set[str]:
        return {self.default, *self.symbols.values(), *(m for _, m in self.suffixes)}

    def market_of(self, symbol: str) -> str:
        found = self.symbols.get(symbol)
        if found is not None:
            return found
        for suffix, market in self.suffixes:
            if symbol.endswith(suffix):
                return market
        return self.default


def last_weekday(day: date) -> date:
    """The Friday of a week, or the day itself when it is a weekend day."""
    return day + timedelta(days=max(4 - day.weekday(), 0))


def month_last_weekday(day: date) -> date:
    """The last weekday of the day's month."""
    first_next = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    last = first_next - timedelta(days=1)
    return last - timedelta(days=max(last.weekday() - 4, 0))
