"""Real bars from tests/data as cache records (payloads are the CSV rows as JSON objects)."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from mdcache_client import Record, Series

DATA = Path(__file__).parent / "data"
SHANGHAI = timezone(timedelta(hours=8))  # no daylight saving time


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _value(text: str) -> int | float | str:
    """A CSV field as the JSON value an upstream would send: a number where it is one."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _load(name: str, stamp: str, tz: timezone, fmt: str) -> list[Record]:
    with (DATA / name).open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        Record(
            _ms(datetime.strptime(row[stamp], fmt).replace(tzinfo=tz)),
            json.dumps({k: _value(v) for k, v in row.items()}),
        )
        for row in rows
    ]


def sse_daily_2019() -> tuple[Series, list[Record]]:
    """244 daily bars of the SSE Composite index in 2019."""
    records = _load("sse_000001_daily_2019.csv", "dt", SHANGHAI, "%Y-%m-%d %H:%M:%S")
    return Series("000001.SH", "kline", "1d"), records


def sse_minutes_20190201() -> tuple[Series, list[Record]]:
    """239 one-minute bars of the SSE Composite index on 2019-02-01."""
    records = _load("sse_000001_1min_20190201.csv", "dt", SHANGHAI, "%Y-%m-%d %H:%M:%S")
    return Series("000001.SH", "kline", "1m"), records


def aapl_daily_2017() -> tuple[Series, list[Record]]:
    """251 daily bars of AAPL in 2017, stamped at 00:00 UTC of the trading day."""
    return Series("AAPL", "kline", "1d"), _load("aapl_daily_2017.csv", "Date", UTC, "%Y-%m-%d")


def sse_minutes_20180813_17() -> tuple[Series, list[Record]]:
    """1,200 one-minute bars of the SSE Composite index, 2018-08-13 to 17 (240 a day)."""
    records = _load("sse_000001_1min_20180813_17.csv", "dt", SHANGHAI, "%Y-%m-%d %H:%M:%S")
    return Series("000001.SH", "kline", "1m"), records


def sp500_minutes_20191107_08() -> tuple[Series, list[Record]]:
    """781 one-minute bars of the S&P 500 index, 09:30 to 16:00 New York time (EST)."""
    eastern = timezone(timedelta(hours=-5))  # November 2019, after the switch of Nov 3
    records = _load("sp500_1min_20191107_08.csv", "Date", eastern, "%Y-%m-%d %H:%M:%S")
    return Series("SPX", "kline", "1m"), records
