"""Adjusted prices of raw bars, from a series of cumulative adjustment factors.

Vendors publish raw bars and, per day, a cumulative factor (tushare's ``adj_factor``,
Yahoo's ``Adj Close / Close``) that grows at each dividend or split. The factor in force
at a bar is that of the latest factor record at or before the bar (a bar before the first
record takes the first one). Backward (hfq): price x factor(t). Forward (qfq): price x
factor(t) / factor(as of), with the factor in force at the as-of time (the latest by
default), so that prices then are as traded.

The prices adjusted are ``open``, ``high``, ``low`` and ``close``, found by name in any
case as resampling finds them; with ``volume``, the volume fields (``volume``, ``vol``)
are divided by the same ratio. Every other field (``amount``, ``pre_close``, ``Adj
Close``...) is left as it is. Numbers are not rounded: a price is the float computed.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson

from mdcache_server.errors import InvalidArgument
from mdcache_server.resample.bars import OHLC, Fields

FACTOR_NAMES = ("adj_factor", "factor")  # the payload field of a factor record
VOLUMES = frozenset({"volume", "vol"})
NUMBERS = (int, float)


class Adjust(Enum):
    FORWARD = "forward"
    BACKWARD = "backward"


@dataclass(frozen=True, slots=True)
class Factors:
    """A factor series, ascending: ``ts`` and the factor of each record."""

    ts: list[int]
    values: list[float]

    @classmethod
    def parse(
        cls, ts: Sequence[int], payloads: Sequence[str], field: str, series: str = ""
    ) -> Factors:
        """The factors of records (ascending) of ``series``; InvalidArgument naming ``field``
        and the record when one holds no positive number under ``adj_factor`` (or ``factor``)."""
        values = []
        for t, payload in zip(ts, payloads, strict=True):
            try:
                value = orjson.loads(payload)
            except orjson.JSONDecodeError:
                value = json.loads(payload)
            factor: Any = None
            if isinstance(value, dict):
                lower = {name.lower(): v for name, v in value.items()}
                factor = next((lower[n] for n in FACTOR_NAMES if n in lower), None)
            if type(factor) not in NUMBERS or not factor > 0:
                raise InvalidArgument(
                    field,
                    f"the record{series and ' of ' + series} at ts_ms {t} holds no positive "
                    "adj_factor (or factor): "
                    f"{payload[:80]}",
                )
            values.append(float(factor))
        return cls(list(ts), values)

    def __len__(self) -> int:
        return len(self.ts)

    def at(self, ts_ms: int) -> float:
        """The factor in force at ``ts_ms``: the latest at or before it, else the first."""
        return self.values[max(bisect_right(self.ts, ts_ms) - 1, 0)]


@dataclass(frozen=True, slots=True)
class Adjustment:
    """How to adjust one series' bars: the factors, and the base to divide by (1 backward)."""

    factors: Factors
    base: float
    volume: bool = False

    @classmethod
    def of(
        cls, mode: Adjust, factors: Factors, as_of_ms: int | None, volume: bool = False
    ) -> Adjustment:
        """``as_of_ms`` None: relative to the latest factor (forward)."""
        if mode is Adjust.BACKWARD:
            return cls(factors, 1.0, volume)
        base = factors.values[-1] if as_of_ms is None else factors.at(as_of_ms)
        return cls(factors, base, volume)

    def price(self, value: float, ts_ms: int) -> float:
        return value * self.factors.at(ts_ms) / self.base  # backward: / 1.0, exact

    def quantity(self, value: float, ts_ms: int) -> float:
        return value * self.base / self.factors.at(ts_ms)

    def payloads(self, ts: Sequence[int], payloads: Sequence[str], field: str) -> list[str]:
        """The payloads with their prices (and volumes) adjusted; InvalidArgument naming
        ``field.payload.NAME`` for a payload that is not a bar."""
        out = []
        for t, payload in zip(ts, payloads, strict=True):
            try:
                bar = orjson.loads(payload)
            except orjson.JSONDecodeError:
                bar = json.loads(payload)
            if not isinstance(bar, dict):
                raise InvalidArgument(
                    f"{field}.payload",
                    f"the record at ts_ms {t} is not a JSON object; adjust needs bars",
                )
            found = {name.lower(): name for name in reversed(list(bar))}  # the first in any case
            for name in OHLC:
                real = found.get(name)
                if real is None:
                    raise InvalidArgument(
                        f"{field}.payload.{name}",
                        f"missing from the record at ts_ms {t}; adjust needs open, high, low "
                        "and close",
                    )
                bar[real] = self.price(_number(bar[real], field, real, t), t)
            if self.volume:
                for name in VOLUMES:
                    real = found.get(name)
                    if real is not None:
                        bar[real] = self.quantity(_number(bar[real], field, real, t), t)
            out.append(orjson.dumps(bar).decode())
        return out

    def fields(self, fields: Fields) -> Fields:
        """Parsed bar fields (``resample.bars.Fields``), adjusted, as a new object."""
        part = fields.cut(0, len(fields))
        ts = part.ts
        factors = [self.factors.at(t) for t in ts]
        base = self.base
        part.columns = [
            [v * f / base for v, f in zip(c, factors, strict=True)] for c in part.columns
        ]
        if self.volume:
            part.sums = [
                [v * base / f for v, f in zip(c, factors, strict=True)]
                if name.lower() in VOLUMES
                else c
                for name, c in zip(part.summed, part.sums, strict=True)
            ]
        return part


def _number(value: Any, field: str, name: str, ts_ms: int) -> float:
    if type(value) not in NUMBERS:
        raise InvalidArgument(
            f"{field}.payload.{name}", f"{value!r} is not a number (the record at ts_ms {ts_ms})"
        )
    return value  # type: ignore[no-any-return]
