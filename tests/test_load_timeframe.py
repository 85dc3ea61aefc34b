"""``mdcache load`` files bars under their true timeframe: ``--timeframe``, or told from
the spacing of the file's bars, said in the summary; a file whose spacing tells none is
refused before anything is written."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from mdcache_client import AsyncClient, Series
from mdcache_server.app import Server
from mdcache_server.ops.spacing import timeframe_of

from .commands import amdcache, json_out
from .market_data import DATA, SHANGHAI, sse_minutes_20190201

MINUTE = 60_000
DAY = 86_400_000


def without_freq(tmp_path: Path) -> Path:
    """The SSE index's minute bars of 2019-02-01 as czsc writes them without a freq column."""
    path = tmp_path / "000001.SH_1min.csv"
    with (DATA / "sse_000001_1min_20190201.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["symbol", "dt", "open", "close", "high", "low", "vol"])
        for row in rows:
            writer.writerow(
                [row[k] for k in ("symbol", "dt", "open", "close", "high", "low", "vol")]
            )
    return path


def a_shares_day(minutes: int, day: str = "2019-02-01") -> list[int]:
    """Bar ends of one A-share day of ``minutes`` bars."""
    ends = []
    for open_, close in (("09:30", "11:30"), ("13:00", "15:00")):
        t = datetime.fromisoformat(f"{day} {open_}").replace(tzinfo=SHANGHAI)
        end = datetime.fromisoformat(f"{day} {close}").replace(tzinfo=SHANGHAI)
        while t < end:
            t += timedelta(minutes=minutes)
            ends.append(int(t.timestamp() * 1000))
    return ends


@pytest.mark.parametrize("minutes", [1, 5, 15, 30, 60])
def test_intraday_spacing_names_the_minutes(minutes: int) -> None:
    days = a_shares_day(minutes, "2019-01-31") + a_shares_day(minutes)
    found = timeframe_of([days])
    assert found is not None
    assert found.timeframe == f"{minutes}m"


def test_daily_weekly_monthly_and_unknown_spacings() -> None:
    start = 1_546_412_400_000  # 2019-01-02 15:00 China time
    weekdays = [start + d * DAY for d in range(60) if (d + 2) % 7 < 5]  # Wednesday first
    assert timeframe_of([weekdays]).timeframe == "1d"  # type: ignore[union-attr]
    weeks = [start + 2 * DAY + w * 7 * DAY for w in range(20)]
    weeks[5] -= DAY  # a holiday Friday: that week ends on Thursday
    assert timeframe_of([weeks]).timeframe == "1w"  # type: ignore[union-attr]
    months = [start + m * 30 * DAY + (m % 3) * DAY for m in range(12)]
    assert timeframe_of([months]).timeframe == "1M"  # type: ignore[union-attr]
    assert timeframe_of([[start + i * 7 * MINUTE for i in range(30)]]) is None  # 7 minutes
    assert timeframe_of([[start + q * 91 * DAY for q in range(8)]]) is None  # quarters
    assert timeframe_of([[start]]) is None  # one bar tells nothing
    # series of one file are spaced apart each on its own
    assert timeframe_of([[start, start + DAY], [start + 1, start + DAY + 1]]).timeframe == "1d"  # type: ignore[union-attr]


async def test_minute_bars_without_a_freq_column_are_filed_as_minute_bars(
    server: Server, client: AsyncClient, tmp_path: Path
) -> None:
    path = without_freq(tmp_path)
    result = await amdcache("load", str(path), "--target", f"127.0.0.1:{server.port}", "--json")
    assert result.returncode == 0, result.stderr
    summary = json_out(result)
    assert summary["rows"] == 239
    assert summary["timeframes"] == {
        str(path): {"timeframe": "1m", "how": "inferred: its bars are most often 1 minute apart"}
    }
    series, expected = sse_minutes_20190201()
    found = await client.read(series)
    assert [r.ts_ms for r in found.records] == [r.ts_ms for r in expected]
    assert not (await client.read(Series("000001.SH", "kline", "1d"))).hit

    hourly = await client.read(series, resample="60m")  # and it resamples as minute bars
    assert len(hourly.records) == 4

    text = await amdcache("load", str(path), "--target", f"127.0.0.1:{server.port}")
    assert text.stdout.splitlines()[1] == (
        f"  {path}: timeframe 1m, inferred: its bars are most often 1 minute apart"
    )


async def test_a_given_timeframe_is_used(
    server: Server, client: AsyncClient, tmp_path: Path
) -> None:
    path = without_freq(tmp_path)
    args = ("load", str(path), "--target", f"127.0.0.1:{server.port}", "--timeframe", "1min")
    result = await amdcache(*args, "--json")
    assert result.returncode == 0, result.stderr
    assert json_out(result)["timeframes"][str(path)] == {
        "timeframe": "1min",
        "how": "given (--timeframe)",
    }
    assert (await client.read(Series("000001.SH", "kline", "1min"))).hit


async def test_a_file_whose_spacing_tells_no_timeframe_is_refused(
    server: Server, client: AsyncClient, tmp_path: Path
) -> None:
    seven = tmp_path / "seven.csv"
    with seven.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["symbol", "dt", "open", "close", "high", "low", "vol"])
        t = datetime(2019, 2, 1, 9, 30)
        for _ in range(20):
            t += timedelta(minutes=7)
            writer.writerow(["000001.SH", t.isoformat(" "), 1, 1, 1, 1, 10])
    one = tmp_path / "one.csv"
    one.write_text("symbol,dt,open,close,high,low,vol\n000001.SH,2019-02-01 15:00:00,1,1,1,1,1\n")
    good = without_freq(tmp_path)
    for bad in (seven, one):
        result = await amdcache("load", str(good), str(bad), "--target", f"127.0.0.1:{server.port}")
        assert result.returncode == 2
        assert result.stderr == (
            f"mdcache load: {bad}: cannot tell the timeframe from the spacing of its bars "
            "(1, 5, 15, 30, 60 minutes, or a day, week or month apart); pass --timeframe\n"
        )
    assert (await client.stats()).records == 0  # nothing of the good file either
    args = ("load", str(one), "--target", f"127.0.0.1:{server.port}", "--timeframe", "1d")
    assert (await amdcache(*args)).returncode == 0
    assert (await client.stats()).records == 1
