"""``mdcache load`` against a real server: the sample formats, bad rows, --strict, progress."""

from __future__ import annotations

import shutil
import socket
import zipfile
from pathlib import Path

import pytest

from mdcache_client import AsyncClient, Series
from mdcache_server.app import Server

from .commands import amdcache, json_out
from .market_data import DATA, aapl_daily_2017, sse_daily_2019, sse_minutes_20190201

# Made-up bars in the tushare pro layout (an unnamed row index first, as pandas writes it).
TUSHARE = """\
,ts_code,trade_date,open,high,low,close,pre_close,change,pct_chg,vol,amount
2,600519.SH,20190102,600.0,610.5,590.25,605.0,598.0,7.0,1.1706,62286.49,3754387.984
1,600519.SH,20190103,605.0,606.0,580.0,590.5,605.0,-14.5,-2.3967,31513.18,535720.422
0,000001.SZ,20190102,9.39,9.42,9.16,9.19,9.38,-0.19,-2.0256,539386.32,498695.109
"""

BAD_YAHOO = """\
Date,Open,High,Low,Close,Adj Close,Volume
2017-01-03,115.800003,116.330002,114.760002,116.150002,114.311760,28781900
2017-01-04,abc,116.510002,115.750000,116.019997,114.183815,21118100
2017-01-05,115.919998,116.860001,115.809998,116.610001,114.764473
2017-01-32,116.779999,118.160004,116.470001,117.910004,116.043915,31751900
2017-01-09,117.949997,119.430000,118.940002,118.989998,117.106812,33561900
2017-01-10,118.769997,119.379997,118.300003,119.110001,117.224907,24462100
"""


def target(port: int) -> tuple[str, str]:
    return "--target", f"127.0.0.1:{port}"


def tushare_file(tmp_path: Path) -> Path:
    path = tmp_path / "daily.csv"
    path.write_text(TUSHARE)
    return path


async def test_the_sample_formats_load_into_their_series_as_the_same_bars(
    server: Server, client: AsyncClient, tmp_path: Path
) -> None:
    port = server.port
    aapl = tmp_path / "yahoofinance-AAPL-20170101-20180101.csv"
    shutil.copy(DATA / "aapl_daily_2017.csv", aapl)
    files = [
        DATA / "sse_000001_daily_2019.csv",
        DATA / "sse_000001_1min_20190201.csv",
        aapl,
        tushare_file(tmp_path),
    ]
    result = await amdcache("load", *map(str, files), *target(port), "--json")
    summary = json_out(result)
    assert result.returncode == 0, result.stderr
    assert (summary["rows"], summary["series"], summary["bad_rows"]) == (244 + 239 + 251 + 3, 5, 0)
    assert summary["files"] == 4
    assert summary["rows_per_second"] > 0
    assert result.stderr == ""  # no progress bar when standard error is not a terminal

    for series, expected in (sse_daily_2019(), sse_minutes_20190201(), aapl_daily_2017()):
        found = await client.read(series)
        assert [r.ts_ms for r in found.records] == [r.ts_ms for r in expected]
        assert found.values() == [r.json() for r in expected]
    moutai = await client.read(Series("600519.SH", "kline", "1d"))
    assert [r.ts_ms for r in moutai.records] == [1_546_412_400_000, 1_546_498_800_000]
    assert moutai.values()[0]["close"] == 605.0
    assert (await client.read(Series("000001.SZ", "kline", "1d"))).hit


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_bad_rows_are_reported_by_file_and_line_and_the_rest_is_loaded(
    server: Server, client: AsyncClient, tmp_path: Path
) -> None:
    path = tmp_path / "yahoofinance-TEST-2017.csv"
    path.write_text(BAD_YAHOO)
    result = await amdcache("load", str(path), *target(server.port))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("loaded 2 rows into 1 series from 1 file in ")
    assert lines[0].endswith("; 4 bad rows (not loaded)")
    assert lines[1:] == [
        f"  {path}: timeframe 1d, inferred: its bars are most often 1 day apart",
        f"  {path} (yahoo): 2 rows -> TEST/kline/1d",
        "bad rows:",
        f"  {path}:3: Open: not a number: 'abc'",
        f"  {path}:4: 6 fields where the header has 7",
        f"  {path}:5: Date: '2017-01-32' is not YYYY-MM-DD or M/D/YYYY",
        f"  {path}:6: Open/High/Low/Close 117.949997/119.43/118.940002/118.989998: "
        "not a bar (low <= open, close <= high)",
    ]
    assert [r.ts_ms for r in (await client.read(Series("TEST", "kline", "1d"))).records] == [
        1_483_401_600_000,
        1_484_006_400_000,
    ]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_strict_loads_nothing_when_any_row_is_bad(
    server: Server, client: AsyncClient, tmp_path: Path
) -> None:
    bad = tmp_path / "yahoofinance-TEST-2017.csv"
    bad.write_text(BAD_YAHOO)
    good = tushare_file(tmp_path)
    args = ("load", str(good), str(bad), *target(server.port), "--strict", "--json")
    result = await amdcache(*args)
    summary = json_out(result)
    assert result.returncode == 1
    assert (summary["rows"], summary["bad_rows"]) == (0, 4)
    assert summary["error"] == "bad rows and --strict: nothing loaded"
    assert [(b["file"], b["line"]) for b in summary["bad"]] == [(str(bad), n) for n in (3, 4, 5, 6)]
    assert (await client.stats()).records == 0

    result = await amdcache("load", str(good), *target(server.port), "--strict")
    assert result.returncode == 0
    assert (await client.stats()).records == 3


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_batches_progress_and_dry_run(
    server: Server, client: AsyncClient, tmp_path: Path
) -> None:
    port = server.port
    minutes = str(DATA / "sse_000001_1min_20190201.csv")
    dry = await amdcache("load", minutes, *target(port), "--dry-run", "--json")
    assert json_out(dry)["checked"] == 239
    assert (await client.stats()).records == 0

    result = await amdcache("load", minutes, *target(port), "--batch-rows", "100", "--progress")
    assert result.returncode == 0
    assert "[##############################] 100%  239/239 rows" in result.stderr
    assert (await client.stats()).calls["Write"].calls == 3  # 100 + 100 + 39


async def test_an_unknown_file_stops_the_load_before_anything_is_written(tmp_path: Path) -> None:
    ticks = tmp_path / "ticks.csv"
    ticks.write_text("symbol,date,time,lastPrice\nRM705,20170320,09:00:00.5,2374.0\n")
    result = await amdcache("load", str(tushare_file(tmp_path)), str(ticks), "--target", "x:1")
    assert result.returncode == 2
    assert result.stderr.startswith(f"mdcache load: {ticks}: header 'symbol,date,time,lastPrice'")
    missing = await amdcache("load", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2
    assert "No such file or directory" in missing.stderr


async def test_a_server_that_does_not_answer_fails_the_load(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ("load", str(tushare_file(tmp_path)), *target(port), "--timeout", "1", "--json")
    result = await amdcache(*args)
    assert result.returncode == 1
    assert json_out(result)["error"].startswith("a Write failed after 0 rows: UNAVAILABLE")


async def test_us_minutes_and_futures_ticks_load_and_the_summary_says_where(
    server: Server, client: AsyncClient
) -> None:
    minutes = DATA / "SP500_IDay_20191105.csv"  # CRLF, M/D/YYYY H:MM, no volume
    volume = DATA / "SP500_IDayRVol_20191105.csv"  # the same bars, ISO dates, with volume
    ticks = DATA / "RM705-2017-03-20_0900.csv"
    args = ("load", str(minutes), str(volume), str(ticks), *target(server.port))
    result = await amdcache(*args, "--json")
    assert result.returncode == 0, result.stderr
    summary = json_out(result)
    # the second file's 30 bars replace the first's in the same Write: 150 records stored
    assert (summary["rows"], summary["series"], summary["bad_rows"]) == (30 + 120, 2, 0)
    assert summary["loaded"] == [
        {
            "file": str(minutes),
            "format": "us-1m",
            "series": [{"symbol": "SP500", "data_type": "kline", "timeframe": "1m", "rows": 30}],
        },
        {
            "file": str(volume),
            "format": "us-1m",
            "series": [{"symbol": "SP500", "data_type": "kline", "timeframe": "1m", "rows": 30}],
        },
        {
            "file": str(ticks),
            "format": "vnpy-tick",
            "series": [{"symbol": "RM705", "data_type": "tick", "timeframe": "tick", "rows": 120}],
        },
    ]
    bars = await client.read(Series("SP500", "kline", "1m"))
    first = 1_572_964_200_000  # 2019-11-05 09:30 New York time
    assert [r.ts_ms for r in bars.records] == [first + 60_000 * i for i in range(30)]
    assert bars.values()[0] == {  # the later file's bar replaced the earlier one's
        "Date": "2019-11-05 09:30:00",
        "Open": 3080.8,
        "Close": 3080.49,
        "High": 3081.47,
        "Low": 3080.3,
        "Volume": 2209795,
    }
    tick = await client.read(Series("RM705", "tick", "tick"))
    assert [r.ts_ms for r in tick.records] == [1_489_971_600_500 + 500 * i for i in range(120)]
    assert tick.values()[-1]["time"] == "09:01:00.0"

    text = await amdcache("load", str(ticks), *target(server.port))
    assert text.stdout.splitlines()[1:] == [
        f"  {ticks}: timeframe tick, vnpy-tick files have no other",
        f"  {ticks} (vnpy-tick): 120 rows -> RM705/tick/tick",
    ]


async def test_a_zip_or_a_readme_is_refused_by_name_and_nothing_is_loaded(
    server: Server, client: AsyncClient, tmp_path: Path
) -> None:
    archive = tmp_path / "000001.XSHG_1min.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(DATA / "sse_000001_1min_20190201.csv", "000001.XSHG_1min.csv")
    readme = tmp_path / "README.txt"
    readme.write_text("Market data for developers: real, third-party OHLCV / tick data.\n")
    good = str(tushare_file(tmp_path))
    for refused, why in (
        (archive, "a zip archive, not a CSV file: extract it and load the CSV files in it"),
        (readme, "not a CSV file of bars or ticks (its first line: 'Market data for developers"),
    ):
        result = await amdcache("load", good, str(refused), *target(server.port))
        assert result.returncode == 2
        assert result.stderr.startswith(f"mdcache load: {refused}: {why}")
        assert "Traceback" not in result.stderr
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x01")
    result = await amdcache("load", str(tmp_path / "binary.csv"), *target(server.port))
    assert result.returncode == 2
    assert result.stderr.startswith(f"mdcache load: {tmp_path / 'binary.csv'}: not UTF-8 text")
    assert (await client.stats()).records == 0


async def test_a_directory_loads_the_csv_files_under_it(
    server: Server, client: AsyncClient, tmp_path: Path
) -> None:
    (tmp_path / "README.txt").write_text("not data\n")
    (tmp_path / "ticks").mkdir()
    shutil.copy(DATA / "RM705-2017-03-20_0900.csv", tmp_path / "ticks" / "RM705.csv")
    tushare_file(tmp_path)
    result = await amdcache("load", str(tmp_path), *target(server.port), "--json")
    assert result.returncode == 0, result.stderr
    summary = json_out(result)
    assert [f["file"] for f in summary["loaded"]] == [
        str(tmp_path / "daily.csv"),
        str(tmp_path / "ticks" / "RM705.csv"),
    ]
    assert (await client.stats()).records == 3 + 120
    empty = tmp_path / "empty"
    empty.mkdir()
    result = await amdcache("load", str(empty), *target(server.port))
    assert result.returncode == 2
    assert result.stderr == f"mdcache load: {empty}: a directory with no .csv file under it\n"


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"no {SHARED_DATA} on this machine")
async def test_every_csv_file_of_the_shared_data_is_read() -> None:
    """Checked, not loaded, to keep the suite quick; the 21 MB minute bars of the SSE index
    are left out (their format, czsc minutes, is loaded by the sample tests above)."""
    files = sorted(p for p in SHARED_DATA.rglob("*.csv") if p.stat().st_size < 5_000_000)
    result = await amdcache("load", *map(str, files), "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    summary = json_out(result)
    assert summary["files"] == len(files) >= 70
    formats = {f["format"] for f in summary["loaded"]}
    assert formats == {"tushare", "czsc", "yahoo", "us-1m", "vnpy-tick"}
    assert all(f["series"] for f in summary["loaded"]), "a file gave no rows"
    # the two bad rows the data's README names, in SPY 2008-2018
    assert [(Path(b["file"]).name, b["line"]) for b in summary["bad"]] == [
        ("yahoofinance-SPY-20080101-20180101.csv", 1808),
        ("yahoofinance-SPY-20080101-20180101.csv", 1825),
    ]
