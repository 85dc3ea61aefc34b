"""What resampling needs to know besides the bars: each market's trading calendar, which
market a symbol trades on, and which payload fields are summed (built once from the
configuration)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mdcache_server.resample.bars import DEFAULT_SUMMED
from mdcache_server.resample.calendar import (
    DEFAULT_CALENDARS,
    DEFAULT_MARKETS,
    Calendar,
    MarketRules,
    parse_calendars,
)


def parse_summed(text: str) -> frozenset[str]:
    """Field names separated by commas, matched in any case."""
    return frozenset(name.strip().lower() for name in text.split(",") if name.strip())


@dataclass(frozen=True, slots=True)
class Resampling:
    """The trading calendars, which symbol trades where, and which fields are summed."""

    calendars: Mapping[str, Calendar]
    markets: MarketRules
    summed: frozenset[str] = DEFAULT_SUMMED

    @classmethod
    def default(cls) -> Resampling:
        return cls(parse_calendars(DEFAULT_CALENDARS), MarketRules.parse(DEFAULT_MARKETS))

    def calendar_for(self, symbol: str) -> Calendar:
        return self.calendars[self.markets.market_of(symbol)]
