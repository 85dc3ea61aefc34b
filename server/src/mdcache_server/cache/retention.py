"""Retention rules: how long records are kept, by data_type (and timeframe).

The clock is the record's own timestamp (its market time), as in the first version:
a quote from last week is stale however recently it was cached, and both stores
delete by timestamp range cheaply (TDengine's DELETE filters on the timestamp only).
Historical bars are old the moment they are cached, so a data_type holding history
needs a rule of its own: by default ``kline`` is kept (0 days = forever).

Rules are written ``*=7,quote=1,fund_flow=7,kline=0,kline/1m=30``: ``*`` is the
default, ``data_type/timeframe`` wins over ``data_type``, which wins over ``*``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mdcache_server.model import DAY_MS, PurgeFilter, SeriesKey

DEFAULT = "*"


@dataclass(frozen=True, slots=True)
class RetentionRules:
    """Days to keep, by rule key (``*``, ``data_type`` or ``data_type/timeframe``); 0 keeps."""

    days: dict[str, int]

    @classmethod
    def parse(cls, text: str) -> RetentionRules:
        days: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ValueError(f"{part!r} is not KEY=DAYS")
            try:
                days[key] = int(value.strip().removesuffix("d"))
            except ValueError:
                raise ValueError(f"{part!r}: days must be a whole number") from None
            if not 0 <= days[key] <= 365_000:
                raise ValueError(f"{part!r}: days must be from 0 (keep) to 365000")
        days.setdefault(DEFAULT, 7)
        return cls(days)

    def days_for(self, key: SeriesKey) -> int:
        for rule in (f"{key.data_type}/{key.timeframe}", key.data_type, DEFAULT):
            if rule in self.days:
                return self.days[rule]
        return self.days[DEFAULT]  # pragma: no cover (DEFAULT is always present)

    def purges(self, series: Iterable[SeriesKey], now_ms: int) -> list[PurgeFilter]:
        """One purge per (data_type, timeframe) that has records and a rule other than keep."""
        groups = {(k.data_type, k.timeframe): self.days_for(k) for k in series}
        return [
            PurgeFilter(before_ms=now_ms - days * DAY_MS, data_type=dt, timeframe=tf)
            for (dt, tf), days in sorted(groups.items())
            if days > 0
        ]
