"""When the cache covers a window: the rule of ``get_or_load``, shared by both flavours.

The cache covers ``Window(start_ms, end_ms)`` with tolerance ``t`` when it holds a record
of the series at or before ``start_ms + t`` and one at or after ``end_ms - t``. Only the
edges are judged: a loader writes whole windows, and purges and retention remove records
from the old end, so what goes missing is an edge. The tolerance absorbs the bars that
cannot exist: for daily bars a window starting on a Saturday has its first bar on
Monday, so ``t`` of a few days (the longest market holiday) is right; for minute bars,
the lunch break and the night.
"""

from __future__ import annotations

from collections.abc import Iterable

from mdcache_client._types import Record, Window


def covers(window: Window, first_ms: int, last_ms: int, tolerance_ms: int) -> bool:
    """Whether records from ``first_ms`` to ``last_ms`` cover the window's edges."""
    return first_ms <= window.start_ms + tolerance_ms and last_ms >= window.end_ms - tolerance_ms


def stamp(record: Record) -> int:
    """The record's timestamp; a record without one cannot be placed in a window."""
    if record.ts_ms is None:
        raise ValueError("records for get_or_load need ts_ms; the loader returned one without")
    return record.ts_ms


def within(records: Iterable[Record], window: Window) -> list[Record]:
    """The records in the window, oldest first, one per timestamp (the last given wins).

    That is what a read of the window answers once these records are written, so a
    load and a later cache hit give the same records.
    """
    latest = {stamp(r): r for r in records}
    return [latest[ts] for ts in sorted(latest) if ts in window]
