"""Timeframes a series can be resampled from and to: ``Nm`` minutes, ``Nh`` hours, ``1d``,
``1w``, ``1M``.

``m`` is a minute and ``M`` a month (as the platform's series are named); ``h`` is
60 minutes. A timeframe is coarser than another when each of its bars is made of whole
bars of the other along the trading calendar: minutes of a multiple of the source's,
a day of minute bars, a week or a month of minute or daily bars.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

_PATTERN = re.compile(r"([1-9][0-9]{0,3})(m|min|h|d|w|M)")
MAX_MINUTES = 1440


class Unit(enum.Enum):
    MINUTES = "minutes"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class Timeframe:
    """A bar's length: ``minutes`` for intraday bars, else a trading day, week or month."""

    unit: Unit
    minutes: int = 0

    @property
    def intraday(self) -> bool:
        return self.unit is Unit.MINUTES

    def __str__(self) -> str:
        if self.intraday:
            return f"{self.minutes}m"
        return {Unit.DAY: "1d", Unit.WEEK: "1w", Unit.MONTH: "1M"}[self.unit]


def parse(text: str) -> Timeframe | None:
    """The timeframe named ``text`` (``5m``, ``60m``, ``1h``, ``1d``, ``1w``, ``1M``), or None."""
    found = _PATTERN.fullmatch(text)
    if found is None:
        return None
    n, unit = int(found[1]), found[2]
    if unit in ("m", "min", "h"):
        minutes = n * 60 if unit == "h" else n
        return Timeframe(Unit.MINUTES, minutes) if minutes <= MAX_MINUTES else None
    if n != 1:
        return None
    return Timeframe({"d": Unit.DAY, "w": Unit.WEEK, "M": Unit.MONTH}[unit])


def why_not_coarser(source: Timeframe, target: Timeframe) -> str | None:
    """Why bars of ``target`` cannot be made of bars of ``source``, or None when they can."""
    if target.intraday:
        if not source.intraday or target.minutes <= source.minutes:
            return f"{target} is not coarser than the series' {source}"
        if target.minutes % source.minutes:
            return f"{target} is not a whole number of the series' {source} bars"
        return None
    if target.unit is Unit.DAY:
        return None if source.intraday else f"{target} is not coarser than the series' {source}"
    if target.unit is Unit.WEEK:
        ok = source.intraday or source.unit is Unit.DAY
        return None if ok else f"{target} is not coarser than the series' {source}"
    ok = source.intraday or source.unit is Unit.DAY
    return None if ok else f"{target} bars cannot be made of {source} bars (weeks span months)"
