"""Numbers as an operator reads them: counts, bytes, durations, rates, days."""

from __future__ import annotations

from collections.abc import Mapping

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def count(n: int) -> str:
    """``1234567`` -> ``1,234,567``."""
    return f"{n:,}"


def plural(n: int, noun: str) -> str:
    """``plural(1, "file")`` -> ``1 file``; ``plural(2, "file")`` -> ``2 files``."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def nbytes(n: int) -> str:
    """``1536`` -> ``1.5 KiB``."""
    value = float(n)
    for unit in _BYTE_UNITS:
        if value < 1024 or unit == _BYTE_UNITS[-1]:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def duration(seconds: float) -> str:
    """``93784`` -> ``1d 2h 3m 4s``; below a minute, seconds with a decimal."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    first = next(i for i, (value, _) in enumerate(parts) if value)
    return " ".join(f"{value}{unit}" for value, unit in parts[first:])


def elapsed(seconds: float) -> str:
    """A step's time: ``0.4 ms``, ``12 ms``, ``3.1 s``."""
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s"


def percent(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


def rate(per_second: float) -> str:
    """``12.345`` -> ``12.3/s``."""
    return f"{per_second:,.1f}/s"


def retention(rules: Mapping[str, int]) -> str:
    """Retention rules by data_type (``*``: default; 0 days: kept), default last."""
    if not rules:
        return "none: records are kept until purged"
    ordered = sorted(rules.items(), key=lambda kv: (kv[0] == "*", kv[0]))
    return ", ".join(
        f"{'default' if dt == '*' else dt} {'kept' if days == 0 else _days(days)}"
        for dt, days in ordered
    )


def _days(days: int) -> str:
    return "1 day" if days == 1 else f"{days} days"
