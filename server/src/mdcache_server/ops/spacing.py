"""A bar file's timeframe, told from the spacing of its bars.

A file of one-minute bars without a ``freq`` column would otherwise be filed as daily
bars. The rows' series and timestamps are read (the first ``SAMPLE_ROWS`` rows; a row
whose other fields are bad still has its time), and the gaps between consecutive bars
of each series counted. When more gaps fall within a day (under 12 hours) than between
days, the most common of them names the timeframe: 1, 5, 15, 30 or 60 minutes; else the
most common gap in days does: up to 4 days is daily (weekends and holidays), 5 to 10
weekly, 25 to 35 monthly. Anything else, or a file with no two bars of one series, is
refused: pass ``--timeframe``.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from mdcache_server.ops.csvformats import BadRow, CsvFormat, UnknownFormat

SAMPLE_ROWS = 20_000
MINUTE_MS = 60_000
DAY_MS = 86_400_000
MINUTES = (1, 5, 15, 30, 60)


class UnknownTimeframe(UnknownFormat):
    """A file whose bars' spacing names no timeframe."""


@dataclass(frozen=True, slots=True)
class Inferred:
    """A timeframe told from the spacing, and the gap that told it."""

    timeframe: str
    why: str


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" + ("" if n == 1 else "s")


def timeframe_of(stamps: Iterable[Sequence[int]]) -> Inferred | None:
    """The timeframe of series of ascending timestamps (epoch ms), or None."""
    within: Counter[int] = Counter()
    between: Counter[int] = Counter()
    for ts in stamps:
        for a, b in pairwise(ts):
            gap = b - a
            if gap <= 0:
                continue
            if gap < DAY_MS // 2:
                within[round(gap / MINUTE_MS)] += 1
            else:
                between[round(gap / DAY_MS)] += 1
    if within and within.total() > between.total():
        minutes = within.most_common(1)[0][0]
        if minutes in MINUTES:
            return Inferred(f"{minutes}m", f"most often {_plural(minutes, 'minute')} apart")
        return None
    if not between:
        return None
    days = between.most_common(1)[0][0]
    why = f"most often {_plural(days, 'day')} apart"
    if days <= 4:
        return Inferred("1d", why)
    if 5 <= days <= 10:
        return Inferred("1w", why)
    if 25 <= days <= 35:
        return Inferred("1M", why)
    return None


def infer(path: Path, fmt: CsvFormat) -> Inferred:
    """The timeframe of a file of the format, from its first rows; raises UnknownTimeframe."""
    stamps: defaultdict[object, list[int]] = defaultdict(list)
    columns = [(i, name) for i, name in enumerate(fmt.header) if name in fmt.text]
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        next(reader, None)
        for n, fields in enumerate(reader):
            if n >= SAMPLE_ROWS:
                break
            if len(fields) != len(fmt.header):
                continue
            texts = {name: fields[i] for i, name in columns}
            try:
                series = fmt.series(texts)
                stamps[(series.symbol, series.data_type)].append(
                    round(fmt.moment(texts).timestamp() * 1000)
                )
            except BadRow:
                continue
    found = timeframe_of(sorted(ts) for ts in stamps.values())
    if found is None:
        raise UnknownTimeframe(
            f"{path}: cannot tell the timeframe from the spacing of its bars "
            "(1, 5, 15, 30, 60 minutes, or a day, week or month apart); pass --timeframe"
        )
    return found
