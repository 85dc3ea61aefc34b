"""Real bars from ../shared/data, parsed as ``mdcache load`` parses them.

The payloads are the rows as JSON objects under the files' own column names (about
220 bytes for a tushare daily bar), so every size in the benchmark is a real one.
"""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from mdcache_client import Record, Series
from mdcache_server.ops.csvformats import UnknownFormat
from mdcache_server.ops.load import BadRowAt, bars, open_sources

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HOT_SERIES = Series("600519.SH", "kline", "1d")  # Kweichow Moutai, daily
A_SHARES = "cn_daily_qbot_2010_2020"
YEAR = 250  # records in a Read of "a year of daily bars"

Bars = dict[Series, list[Record]]


def data_dir() -> Path:
    return Path(os.environ.get("MDCACHE_BENCH_DATA", DEFAULT_DATA))


def load_files(paths: list[Path]) -> Bars:
    """Every good row of the files, by series, oldest first, one record per timestamp."""
    found: defaultdict[Series, dict[int, Record]] = defaultdict(dict)
    for path in paths:
        try:
            sources = open_sources([path], symbol=None, data_type="kline")
        except UnknownFormat:
            continue  # a file whose series cannot be told without --symbol
        for item in bars(sources[0]):
            if isinstance(item, BadRowAt):
                continue
            series, record = item
            assert record.ts_ms is not None
            found[series][record.ts_ms] = record
    return {s: [by_ts[t] for t in sorted(by_ts)] for s, by_ts in found.items()}


class MissingData(Exception):
    """The real bars the benchmark runs on are not where it looks."""


def a_shares(root: Path | None = None) -> Bars:
    """The 60 A-share daily files (2010 to 2020)."""
    root = root or data_dir()
    files = sorted((root / A_SHARES).glob("*.csv"))
    if not files:
        raise MissingData(
            f"no A-share daily files (*.csv) in {root / A_SHARES}: the benchmark runs on the "
            "real bars of the shared data folder (its README tells where they come from). "
            "Point MDCACHE_BENCH_DATA at a folder holding cn_daily_qbot_2010_2020/, e.g. "
            "MDCACHE_BENCH_DATA=/path/to/shared/data make bench"
        )
    return load_files(files)


def others(root: Path | None = None) -> Bars:
    """Every series of the other CSV files whose series can be told from the file itself."""
    root = root or data_dir()
    return load_files(sorted(p for p in root.glob("*/*.csv") if p.parent.name != A_SHARES))


def year_window(records: list[Record], year: int = 2019) -> tuple[int, int]:
    """The inclusive window of the ``YEAR`` bars ending with the last bar of ``year``."""
    end_ms = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp() * 1000)
    stamps = [r.ts_ms for r in records if r.ts_ms is not None and r.ts_ms < end_ms]
    if len(stamps) < YEAR:
        raise ValueError(f"fewer than {YEAR} bars before {year + 1}")
    return stamps[-YEAR], stamps[-1]
