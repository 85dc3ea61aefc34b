"""The client's DataFrame functions: Read results as pandas and polars DataFrames, and
DataFrames as Writes, on real bars of ../shared/data through a real server on each store."""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

from mdcache_client import (
    AsyncClient,
    Client,
    Record,
    Series,
    Window,
    frame_records,
    get_or_load_frame,
    ranges_loader,
    to_pandas,
    to_polars,
    write_frame,
)
from mdcache_server.app import Server
from mdcache_server.ops.csvformats import detect

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"no {SHARED_DATA} here")
MINUTES_FILE = SHARED_DATA / "cn_index_czsc" / "000001.XSHG_1min.csv"
DAILY_FILE = SHARED_DATA / "cn_daily_qbot_2010_2020" / "600519.SH.csv"
SHANGHAI = "Asia/Shanghai"
MINUTE = 60_000
DAY = 86_400_000


def _bars(path: Path, keep: str = "") -> tuple[Series, list[Record]]:
    """The file's bars as ``mdcache load`` makes them (rows whose text starts ``keep``)."""
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        fmt = detect(path, header)
        found = [fmt.bar(row) for row in reader if row and keep in ",".join(row)]
    return found[0][0], [record for _, record in found]


@cache
def january_2019_minutes() -> tuple[Series, list[Record]]:
    """The SSE Composite index's 5,257 one-minute bars of January 2019 (czsc)."""
    return _bars(MINUTES_FILE, ",2019-01-")


@cache
def moutai_daily() -> tuple[Series, list[Record]]:
    """Kweichow Moutai's daily bars, 2010 to 2020 (tushare, forward-adjusted)."""
    return _bars(DAILY_FILE)


def _ms(frame: pd.DataFrame) -> list[int]:
    stamps: list[int] = frame.index.as_unit("ms").asi8.tolist()
    return stamps


# Reading


@needs_data
async def test_a_month_of_minutes_reads_into_pandas_typed_in_market_time(
    client: AsyncClient,
) -> None:
    series, month = january_2019_minutes()
    assert len(month) == 5257
    await client.write(series, month)
    result = await client.read(series, start_ms=month[0].ts_ms, end_ms=month[-1].ts_ms)
    assert not result.truncated
    bars = to_pandas(result, tz=SHANGHAI)
    assert list(bars.columns) == [
        "symbol",
        "id",
        "dt",
        "freq",
        "open",
        "close",
        "high",
        "low",
        "vol",
    ]
    numbers = ["id", "open", "close", "high", "low", "vol"]
    assert [str(bars[c].dtype) for c in numbers] == ["int64"] + ["float64"] * 4 + ["int64"]
    assert all(pd.api.types.is_string_dtype(bars[c]) for c in ("symbol", "dt", "freq"))
    assert str(bars.index.dtype) == "datetime64[ms, Asia/Shanghai]"
    assert bars.index.name == "ts"
    # the index in China time is the bar's own local time (czsc stamps the bar's end)
    assert list(bars.index.strftime("%Y-%m-%d %H:%M:%S")) == list(bars["dt"])
    assert _ms(bars) == [r.ts_ms for r in month]
    first = month[0].json()
    assert bars.iloc[0][["open", "close", "high", "low"]].tolist() == [
        first["open"],
        first["close"],
        first["high"],
        first["low"],
    ]
    assert bars["vol"].iloc[0] == first["vol"]
    assert len(bars) == 5257
    assert "payload" not in bars.columns  # every field is flat


@needs_data
async def test_a_month_of_minutes_reads_into_polars(client: AsyncClient) -> None:
    series, month = january_2019_minutes()
    await client.write(series, month)
    result = await client.read(series, start_ms=month[0].ts_ms, end_ms=month[-1].ts_ms)
    bars = to_polars(result, tz=SHANGHAI)
    assert bars.schema == pl.Schema(
        {
            "ts": pl.Datetime("ms", SHANGHAI),
            "symbol": pl.String,
            "id": pl.Int64,
            "dt": pl.String,
            "freq": pl.String,
            "open": pl.Float64,
            "close": pl.Float64,
            "high": pl.Float64,
            "low": pl.Float64,
            "vol": pl.Int64,
        }
    )
    assert bars.height == 5257
    assert bars["ts"].dt.epoch("ms").to_list() == [r.ts_ms for r in month]
    assert bars["ts"].dt.strftime("%Y-%m-%d %H:%M:%S").to_list() == bars["dt"].to_list()
    assert bars.drop("ts").to_dicts() == [r.json() for r in month]


@needs_data
async def test_a_month_of_minutes_round_trips_byte_for_byte(client: AsyncClient) -> None:
    """Frames made of the read, written to other series, read back: the same payloads."""
    series, month = january_2019_minutes()
    await client.write(series, month)
    result = await client.read(series, start_ms=month[0].ts_ms, end_ms=month[-1].ts_ms)
    via_pandas = Series(series.symbol, "kline-pandas", "1m")
    via_polars = Series(series.symbol, "kline-polars", "1m")
    assert await write_frame(client, via_pandas, to_pandas(result, tz=SHANGHAI)) == 5257
    assert await write_frame(client, via_polars, to_polars(result, tz="America/New_York")) == 5257
    for copy in (via_pandas, via_polars):
        again = await client.read(copy, start_ms=month[0].ts_ms, end_ms=month[-1].ts_ms)
        assert again.records == month


@needs_data
async def test_daily_bars_in_utc_by_default_and_in_any_zone_asked(client: AsyncClient) -> None:
    series, days = moutai_daily()
    await client.write(series, days)
    year = await client.read(series, start_ms=days[-250].ts_ms, end_ms=days[-1].ts_ms)
    assert len(year.records) == 250
    utc = to_pandas(year)
    assert str(utc.index.tz) == "UTC"
    assert set(utc.index.hour) == {7}  # the 15:00 close in China is 07:00 UTC
    china = to_pandas(year, tz=SHANGHAI)
    assert set(china.index.hour) == {15}
    assert list(china.index.strftime("%Y%m%d")) == list(china["trade_date"])  # text in tushare
    assert (china.index == utc.index).all()  # the same instants
    york = to_polars(year, tz="America/New_York")
    assert set(york["ts"].dt.hour().to_list()) == {2, 3}  # EST and EDT
    assert china["ts_code"].iloc[0] == "600519.SH"
    assert china["vol"].dtype == np.float64  # tushare's volumes are in lots: 44304.88


async def test_an_empty_result_is_an_empty_frame_with_its_time(client: AsyncClient) -> None:
    miss = await client.read(Series("NOPE", "kline", "1d"))
    assert not miss.hit
    frame = to_pandas(miss, tz=SHANGHAI)
    assert frame.shape == (0, 0)
    assert str(frame.index.dtype) == "datetime64[ms, Asia/Shanghai]"
    assert frame_records(frame) == []
    polars_frame = to_polars(miss)
    assert polars_frame.schema == pl.Schema({"ts": pl.Datetime("ms", "UTC")})
    assert frame_records(polars_frame) == []


MIXED = Series("MIXED", "quote", "tick")
MIXED_RECORDS = [
    Record.of(1_700_000_000_000, {"bid": 10.5, "size": 3, "venue": "SH", "halted": False}),
    Record.of(1_700_000_001_000, {"bid": 10, "venue": None, "halted": True}),
    Record.of(1_700_000_002_000, {"size": 7, "extra": 1}),
]


async def test_missing_fields_are_missing_values_of_typed_columns(client: AsyncClient) -> None:
    await client.write(MIXED, MIXED_RECORDS)
    result = await client.read(MIXED)
    frame = to_pandas(result)
    assert list(frame.columns) == ["bid", "size", "venue", "halted", "extra"]
    assert frame["bid"].dtype == np.float64  # 10.5 and 10: numbers, one with a fraction
    assert frame["bid"].tolist()[:2] == [10.5, 10.0]
    assert np.isnan(frame["bid"].iloc[2])
    assert str(frame["size"].dtype) == "Int64"  # integers, one missing: still integers
    assert frame["size"].tolist() == [3, pd.NA, 7]
    assert frame["venue"].iloc[0] == "SH"
    assert frame["venue"].isna().tolist() == [False, True, True]
    assert str(frame["halted"].dtype) == "boolean"
    assert frame["extra"].tolist() == [pd.NA, pd.NA, 1]
    polars_frame = to_polars(result)
    assert polars_frame.schema == pl.Schema(
        {
            "ts": pl.Datetime("ms", "UTC"),
            "bid": pl.Float64,
            "size": pl.Int64,
            "venue": pl.String,
            "halted": pl.Boolean,
            "extra": pl.Int64,
        }
    )
    assert polars_frame["size"].to_list() == [3, None, 7]
    # back: a missing value leaves its field out (the null of "venue" with it)
    expected = [
        {"bid": 10.5, "size": 3, "venue": "SH", "halted": False},
        {"bid": 10.0, "halted": True},
        {"size": 7, "extra": 1},
    ]
    for frame_read in (frame, polars_frame):
        copy = Series("MIXED", "copy", type(frame_read).__module__.split(".")[0])
        assert await write_frame(client, copy, frame_read) == 3
        assert (await client.read(copy)).values() == expected


NESTED = Series("BOOK", "depth", "tick")
NESTED_RECORDS = [
    Record.of(1_700_000_000_000, {"last": 10.5, "bids": [[10.4, 100]], "meta": {"src": "a"}}),
    Record.of(1_700_000_001_000, {"last": 10.6, "bids": [], "flag": 1}),
    Record.of(1_700_000_002_000, {"last": 10.7, "flag": "x"}),  # flag: a number, then text
]


async def test_nested_fields_stay_in_the_payload_column_and_write_back(
    client: AsyncClient,
) -> None:
    await client.write(NESTED, NESTED_RECORDS)
    result = await client.read(NESTED)
    frame = to_pandas(result)
    assert list(frame.columns) == ["last", "payload"]  # bids, meta, flag: not flat
    assert list(frame["payload"]) == [r.payload for r in NESTED_RECORDS]
    assert list(to_polars(result).columns) == ["ts", "last", "payload"]
    assert list(to_pandas(result, payload=False).columns) == ["last"]
    assert list(to_pandas(MIXED_RECORDS, payload=True).columns)[-1] == "payload"
    # written back, the column's values set over the stored payloads, in their places
    frame["last"] = frame["last"] + 1
    copy = Series("BOOK", "depth", "copy")
    assert await write_frame(client, copy, frame) == 3
    assert [r.json() for r in (await client.read(copy)).records] == [
        {"last": 11.5, "bids": [[10.4, 100]], "meta": {"src": "a"}},
        {"last": 11.6, "bids": [], "flag": 1},
        {"last": 11.7, "flag": "x"},
    ]
    polars_copy = Series("BOOK", "depth", "copy-polars")
    await write_frame(client, polars_copy, to_polars(result))
    assert (await client.read(polars_copy)).records == NESTED_RECORDS


@needs_data
async def test_a_resampled_read_is_a_frame_of_its_bars(client: AsyncClient) -> None:
    series, month = january_2019_minutes()
    await client.write(series, month)
    hourly = await client.read(
        series, start_ms=month[0].ts_ms, end_ms=month[-1].ts_ms, resample="60m"
    )
    assert hourly.series.timeframe == "60m"
    frame = to_pandas(hourly, tz=SHANGHAI)
    assert len(frame) == len(hourly.records) == 22 * 4  # 4 bars a day
    for name in ("open", "high", "low", "close"):
        assert frame[name].dtype == np.float64
    assert frame["vol"].dtype == np.int64
    assert set(frame.index.strftime("%H:%M")) == {"10:30", "11:30", "14:00", "15:00"}
    assert frame.drop(columns=[c for c in frame.columns if c not in hourly.values()[0]]).to_dict(
        "records"
    ) == [dict(v) for v in hourly.values()]
    minutes = to_pandas(month, tz=SHANGHAI)
    first_hour = minutes[minutes.index <= frame.index[0]]
    assert frame["high"].iloc[0] == first_hour["high"].max()
    assert frame["vol"].iloc[0] == first_hour["vol"].sum()
    polars_frame = to_polars(hourly, tz=SHANGHAI)
    assert polars_frame["close"].to_list() == frame["close"].tolist()


# Writing


async def test_a_frame_is_written_from_its_index_or_a_named_column(client: AsyncClient) -> None:
    series = Series("600519.SH", "kline", "1d")
    naive = pd.DataFrame(
        {"close": [1702.5, 1710.0], "volume": [100, 200]},
        index=pd.DatetimeIndex(["2024-01-02 15:00", "2024-01-03 15:00"]),
    )
    assert await write_frame(client, series, naive, tz=SHANGHAI) == 2
    read = await client.read(series)
    assert [r.ts_ms for r in read.records] == [1704178800000, 1704265200000]  # 07:00 UTC
    assert read.values() == [{"close": 1702.5, "volume": 100}, {"close": 1710.0, "volume": 200}]
    aware = naive.tz_localize(SHANGHAI).tz_convert("America/New_York")
    assert frame_records(aware) == read.records  # the instant, whatever the zone shown
    column = naive.reset_index(names="when")
    assert frame_records(column, time="when", tz=SHANGHAI) == read.records
    millis = column.assign(when=[1704178800000, 1704265200000])
    assert frame_records(millis, time="when") == read.records
    polars_frame = pl.from_dict(
        {"day": ["2024-01-02 15:00", "2024-01-03 15:00"], "close": [1702.5, 1710.0]}
    ).with_columns(pl.col("day").str.to_datetime(), volume=pl.Series([100, 200]))
    assert frame_records(polars_frame, time="day", tz=SHANGHAI) == read.records


def test_a_frame_that_cannot_be_written_says_why() -> None:
    frame = pd.DataFrame({"close": [1.0, np.inf]}, index=pd.DatetimeIndex(["2024-01-02"] * 2))
    with pytest.raises(ValueError, match="close: an infinite number"):
        frame_records(frame)
    with pytest.raises(TypeError, match="the index: times are datetimes or epoch millis"):
        frame_records(pd.DataFrame({"close": [1.0]}, index=["2024-01-02"]))
    with pytest.raises(ValueError, match="time: no column 'when'"):
        frame_records(frame, time="when")
    with pytest.raises(ValueError, match="tz: unknown time zone 'Mars/Olympus'"):
        frame_records(frame, tz="Mars/Olympus")
    with pytest.raises(ValueError, match="the index: a time is missing"):
        frame_records(pd.DataFrame({"x": [1]}, index=pd.DatetimeIndex([pd.NaT])))
    with pytest.raises(TypeError, match="a pandas or polars DataFrame, not list"):
        frame_records([{"close": 1.0}])
    with pytest.raises(ValueError, match="ts: a time is missing"):
        frame_records(pl.DataFrame({"ts": [None, 1], "x": [1, 2]}))
    with pytest.raises(ValueError, match="a payload field is named 'ts'"):
        to_polars([Record.of(1, {"ts": 5})])


def test_frame_values_become_json_values() -> None:
    frame = pd.DataFrame(
        {
            "int": pd.array([1, None], dtype="Int64"),
            "flag": [True, False],
            "when": pd.to_datetime(["2024-01-02 09:30", None]).tz_localize(SHANGHAI),
            "text": ["a", None],
            "nested": [{"a": [1, 2]}, None],
            "price": np.array([1.5, np.nan], dtype=np.float32),
        },
        index=pd.to_datetime([0, 1], unit="ms", utc=True),
    )
    assert [r.json() for r in frame_records(frame)] == [
        {
            "int": 1,
            "flag": True,
            "when": "2024-01-02T09:30:00+08:00",
            "text": "a",
            "nested": {"a": [1, 2]},
            "price": 1.5,
        },
        {"flag": False},
    ]
    assert [r.ts_ms for r in frame_records(frame)] == [0, 1]


# Cache-aside


class Upstream:
    """A vendor whose API answers DataFrames (a tushare-like daily of one symbol)."""

    def __init__(self, days: list[Record], library: str) -> None:
        self.days = days
        self.library = library
        self.calls: list[Any] = []

    def frame(self, series: Series, asked: Any) -> Any:
        self.calls.append(asked)
        windows = asked if isinstance(asked, list) else [asked]
        rows = [r for r in self.days if any(r.ts_ms in w for w in windows)]
        if self.library == "pandas":
            return to_pandas(rows, tz=SHANGHAI)
        return to_polars(rows)


@needs_data
@pytest.mark.parametrize("library", ["pandas", "polars"])
async def test_get_or_load_frame_loads_frames_and_answers_one(
    client: AsyncClient, library: str
) -> None:
    series, days = moutai_daily()
    upstream = Upstream(days[-400:], library)

    async def load(series: Series, window: Window) -> Any:
        return upstream.frame(series, window)

    year = Window(days[-250].ts_ms, days[-1].ts_ms)
    first = await get_or_load_frame(
        client, series, year, load, library=library, tz=SHANGHAI, tolerance_ms=4 * DAY
    )
    assert len(upstream.calls) == 1
    assert len(first) == 250
    assert (await client.read(series)).records == days[-250:]  # written back, as stored
    longer = Window(days[-300].ts_ms, days[-1].ts_ms)

    @ranges_loader
    async def load_ranges(series: Series, ranges: list[Window]) -> Any:
        return upstream.frame(series, ranges)

    second = await get_or_load_frame(
        client, series, longer, load_ranges, library=library, tz=SHANGHAI, tolerance_ms=4 * DAY
    )
    assert len(upstream.calls) == 2
    assert isinstance(upstream.calls[1], list)  # the ranges loader's ranges
    assert len(second) == 300
    if library == "pandas":
        assert str(second.index.tz) == SHANGHAI
        assert list(second["close"]) == [r.json()["close"] for r in days[-300:]]
    else:
        assert second["close"].to_list() == [r.json()["close"] for r in days[-300:]]
        assert second.schema["ts"] == pl.Datetime("ms", SHANGHAI)


@needs_data
async def test_the_blocking_client_reads_writes_and_loads_frames(server: Server) -> None:
    series, days = moutai_daily()
    upstream = Upstream(days, "pandas")
    target = f"127.0.0.1:{server.port}"

    def use() -> tuple[int, pd.DataFrame, pl.DataFrame, pd.DataFrame]:
        with Client(target) as cache:
            written = write_frame(cache, series, to_polars(days[:100]))
            read = to_pandas(cache.read(series), tz=SHANGHAI)
            window = Window(days[0].ts_ms, days[149].ts_ms)
            loaded = get_or_load_frame(
                cache, series, window, upstream.frame, library="polars", tolerance_ms=8 * DAY
            )
            again = get_or_load_frame(cache, series, window, upstream.frame)
            return written, read, loaded, again

    written, read, loaded, again = await asyncio.to_thread(use)
    assert written == 100
    assert _ms(read) == [r.ts_ms for r in days[:100]]
    assert len(upstream.calls) == 1  # only the 50 days the cache lacked
    assert upstream.calls[0].start_ms == days[99].ts_ms + 1
    assert loaded.height == 150
    assert _ms(again) == [r.ts_ms for r in days[:150]]


# Without the extras


def test_the_client_imports_and_says_which_extra_without_the_libraries() -> None:
    code = """
import sys
sys.modules["pandas"] = sys.modules["polars"] = None  # as if not installed
from mdcache_client import Record, to_pandas, to_polars  # the client imports
for call in (to_pandas, to_polars):
    try:
        call([Record.of(1, {"close": 1.0})])
    except ImportError as exc:
        print(exc)
print(sorted(m for m in ("numpy", "orjson") if m in sys.modules))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "mdcache_client.to_pandas needs pandas: pip install 'mdcache-client[pandas]'",
        "mdcache_client.to_polars needs polars: pip install 'mdcache-client[polars]'",
        "['orjson']",
    ]
    plain = subprocess.run(
        [sys.executable, "-c", "import sys, mdcache_client; print('pandas' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert plain.stdout == "False\n"


def test_records_without_a_json_object_keep_their_payload() -> None:
    frame = to_pandas([Record(1, "[1,2]"), Record(2, '{"a":1}')])
    assert list(frame.columns) == ["a", "payload"]
    assert frame["a"].tolist() == [pd.NA, 1]
    big = to_polars([Record(1, '{"n":18446744073709551615,"m":1}')])
    assert big.columns == ["ts", "m", "payload"]  # past int64: not a column
    assert json.loads(big["payload"][0])["n"] == 18446744073709551615
