"""How the report shows a figure: numbers, ratios, verdicts (shared by the cases' tables)."""

from __future__ import annotations

import math
from typing import Any


def ratio_of(a: float, b: float) -> float:
    """a / b, or NaN where b is 0 or NaN."""
    return a / b if b and not math.isnan(b) else math.nan


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("**met**" if ok else "**missed**")


def mark(value: float, target: float | None) -> str:
    """A ratio, with ✓ or ✗ against its target when it has one."""
    shown = fmt(value, 2)
    if target is None or math.isnan(value):
        return shown
    return f"{shown} {'✓' if value >= target else '✗'}"


def pq(cell: dict[str, Any] | None) -> str:
    """p50 / p99 ms of a measurement."""
    if not cell:
        return "-"
    return f"{cell['p50_ms']:.2f} / {cell['p99_ms']:.2f}"
