"""The CSV bar formats ``mdcache load`` reads: detection by header, series, timestamps, bad rows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mdcache_client import Series
from mdcache_server.ops.csvformats import (
    BadRow,
    Czsc,
    Tushare,
    UnknownFormat,
    UsMinutes,
    VnpyTick,
    Yahoo,
    detect,
)


def cells(line: str) -> list[str]:
    return line.split(",")


TUSHARE = cells(",ts_code,trade_date,open,high,low,close,pre_close,change,pct_chg,vol,amount")
CZSC_MINUTES = cells("symbol,id,dt,freq,open,close,high,low,vol")
CZSC_DAILY = cells("symbol,dt,open,close,high,low,vol")
YAHOO = cells("Date,Open,High,Low,Close,Adj Close,Volume")
US_MINUTES = cells("Date,Open,Close,High,Low,Volume")
TICKS = cells("symbol,date,time,lastPrice,lastVolume,bidPrice1,askPrice1,bidVolume1,askVolume1")
HERE = Path("bars.csv")


def test_tushare_daily_is_stamped_at_the_close_in_china_time() -> None:
    fmt = detect(HERE, TUSHARE)
    assert isinstance(fmt, Tushare)
    row = "409,600519.SH,20190102,594.162,596.1297,579.5802,583.4473,574.7099,8.7374,1.52,62286.49"
    series, record = fmt.bar(cells(row + ",3754387.984"))
    assert series == Series("600519.SH", "kline", "1d")
    assert record.ts_ms == 1_546_412_400_000  # 2019-01-02T15:00+08:00 = 07:00Z
    payload = json.loads(record.payload)
    assert "" not in payload, "the unnamed row index is left out"
    assert payload["ts_code"] == "600519.SH"
    assert payload["trade_date"] == "20190102"
    assert payload["open"] == 594.162
    assert payload["vol"] == 62286.49


def test_czsc_minute_bars_keep_their_end_time_and_use_the_exchange_suffix() -> None:
    fmt = detect(HERE, CZSC_MINUTES)
    assert isinstance(fmt, Czsc)
    row = "000001.XSHG,238833,2019-02-01 09:31:00,Freq.F1,2597.78,2600.46,2602.29,2597.78,423639700"
    series, record = fmt.bar(row.split(","))
    assert series == Series("000001.SH", "kline", "1m")
    assert record.ts_ms == 1_548_984_660_000  # 09:31+08:00
    assert json.loads(record.payload) == {
        "symbol": "000001.XSHG",
        "id": 238833,
        "dt": "2019-02-01 09:31:00",
        "freq": "Freq.F1",
        "open": 2597.78,
        "close": 2600.46,
        "high": 2602.29,
        "low": 2597.78,
        "vol": 423639700,
    }
    five = row.replace("Freq.F1", "Freq.F5").replace("XSHG", "XSHE")
    assert fmt.bar(five.split(","))[0] == Series("000001.SZ", "kline", "5m")


def test_czsc_without_freq_is_daily() -> None:
    fmt = detect(HERE, CZSC_DAILY)
    series, record = fmt.bar(
        cells("000001.SH,2019-01-02 15:00:00,2497.88,2465.29,2500.28,2456.42,109932013.0")
    )
    assert series == Series("000001.SH", "kline", "1d")
    assert json.loads(record.payload)["vol"] == 109932013.0


def test_yahoo_takes_its_symbol_from_the_file_name_or_the_flag() -> None:
    fmt = detect(Path("data/yahoofinance-AAPL-20040819-20180120.csv"), YAHOO)
    assert isinstance(fmt, Yahoo)
    series, record = fmt.bar(cells("2017-01-03,115.8,116.33,114.76,116.15,114.31,28781900"))
    assert series == Series("AAPL", "kline", "1d")
    assert record.ts_ms == 1_483_401_600_000  # 2017-01-03T00:00Z
    named = detect(Path("SP500_NOV2019_Hist.csv"), [*YAHOO[:5], "Volume"], symbol="SPX")
    series, record = named.bar(cells("11/1/2019,3050.72,3066.95,3050.72,3066.91,510301237"))
    assert (series.symbol, record.ts_ms) == ("SPX", 1_572_566_400_000)
    with pytest.raises(UnknownFormat, match=r"names no symbol.*pass --symbol"):
        detect(Path("history.csv"), YAHOO)
    named = detect(Path("SP500_NOV2019_Hist.csv"), YAHOO)  # SYMBOL_....csv
    assert named.bar(cells("11/1/2019,3050.72,3066.95,3050.72,3066.91,3066.91,1"))[0] == Series(
        "SP500", "kline", "1d"
    )


def test_us_minutes_are_told_by_their_first_row_and_stamped_in_new_york_time() -> None:
    path = Path("SP500_NOV2019_IDay.csv")
    daily = detect(path, US_MINUTES, first_row=cells("11/5/2019,3080.8,3080.49,3081.47,3080.3,0"))
    assert type(daily) is Yahoo
    fmt = detect(
        path, US_MINUTES, first_row=cells("11/5/2019 9:30,3080.8,3080.49,3081.47,3080.3,0")
    )
    assert isinstance(fmt, UsMinutes)
    series, record = fmt.bar(cells("11/5/2019 9:30,3080.8,3080.49,3081.47,3080.3,0"))
    assert series == Series("SP500", "kline", "1m")
    assert record.ts_ms == 1_572_964_200_000  # 09:30 EST = 14:30Z
    assert json.loads(record.payload) == {
        "Date": "11/5/2019 9:30",
        "Open": 3080.8,
        "Close": 3080.49,
        "High": 3081.47,
        "Low": 3080.3,
        "Volume": 0,
    }
    iso = fmt.bar(cells("2019-11-05 09:30:00,3080.8,3080.49,3081.47,3080.3,2209795"))[1]
    assert iso.ts_ms == record.ts_ms
    summer = fmt.bar(cells("7/1/2019 9:30,1,1,1,1,0"))[1]
    assert summer.ts_ms == 1_561_987_800_000  # 09:30 EDT = 13:30Z
    with pytest.raises(BadRow, match=r"Date: '11/5/2019 25:30' is not YYYY-MM-DD HH:MM"):
        fmt.bar(cells("11/5/2019 25:30,1,1,1,1,0"))
    with pytest.raises(BadRow, match="not a bar"):
        fmt.bar(cells("11/5/2019 9:31,3080.8,3080.49,3079.0,3080.3,0"))


def test_futures_ticks_are_records_of_their_own_series() -> None:
    fmt = detect(Path("RM705-2017-03-20.csv"), TICKS)
    assert isinstance(fmt, VnpyTick)
    series, record = fmt.bar(cells("RM705,20170320,09:00:00.5,2374.0,0.0,2372.0,2374.0,264.0,65.0"))
    assert series == Series("RM705", "tick", "tick")
    assert record.ts_ms == 1_489_971_600_500  # 09:00:00.5 China time
    payload = json.loads(record.payload)
    assert (payload["time"], payload["lastPrice"], payload["askVolume1"]) == (
        "09:00:00.5",
        2374,
        65,
    )
    assert detect(HERE, TICKS, data_type="futures").bar(
        cells("RM705,20170320,09:00:01,2376.0,0.0,2375.0,2376.0,117.0,55.0")
    )[0] == Series("RM705", "futures", "tick")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("RM705,20170320,09:00:01.0,2376.0,0.0,2377.0,2376.0,1,1", "not a quote (bid <= ask)"),
        ("RM705,20170320,09:00:01.0,2376.0,-1,2375.0,2376.0,1,1", "lastVolume: -1 is negative"),
        ("RM705,2017-03-20,09:00:01.0,2376.0,0,2375.0,2376.0,1,1", "date: '2017-03-20' is not"),
        ("RM705,20170320,9h00,2376.0,0,2375.0,2376.0,1,1", "'9h00' is not YYYYMMDD HH:MM:SS"),
        ("RM705,20170230,09:00:01.0,2376.0,0,2375.0,2376.0,1,1", "is not YYYYMMDD HH:MM:SS"),
        ("RM705,20170320,09:00:01.0,x,0,2375.0,2376.0,1,1", "lastPrice: not a number: 'x'"),
    ],
)
def test_bad_ticks_say_why(fields: str, message: str) -> None:
    with pytest.raises(BadRow, match=re.escape(message)):
        detect(HERE, TICKS).bar(cells(fields))


def test_an_unknown_header_names_the_known_formats() -> None:
    header = cells("symbol,date,time,lastPrice,lastVolume")
    with pytest.raises(UnknownFormat, match=r"ticks\.csv: header .* is no known format: tushare"):
        detect(Path("ticks.csv"), header)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("2017-01-03,abc,116.33,114.76,116.15,114.31,1", "Open: not a number: 'abc'"),
        ("2017-01-03,,116.33,114.76,116.15,114.31,1", "Open: not a number: ''"),
        ("2017-01-03,nan,116.33,114.76,116.15,114.31,1", "Open: 'nan' is not a finite number"),
        ("2017-01-03,115.8,116.33,114.76,116.15,1", "6 fields where the header has 7"),
        ("2017-02-30,115.8,116.33,114.76,116.15,114.31,1", "Date: '2017-02-30' is not"),
        ("1969-12-31,115.8,116.33,114.76,116.15,114.31,1", "outside 1970-01-01 .. 2099-12-31"),
        ("2017-01-03,115.8,116.33,116.0,116.15,114.31,1", "not a bar (low <= open, close <= high)"),
        ("2017-01-03,115.8,115.9,114.76,116.15,114.31,1", "not a bar"),
    ],
)
def test_bad_rows_say_why(fields: str, message: str) -> None:
    fmt = detect(Path("yahoofinance-AAPL-2017.csv"), YAHOO)
    with pytest.raises(BadRow, match=message.replace("(", r"\(").replace(")", r"\)")):
        fmt.bar(cells(fields))


def test_tushare_dates_must_be_yyyymmdd_and_codes_present() -> None:
    fmt = detect(HERE, TUSHARE)
    good = cells("1,600519.SH,20190102,1,2,0.5,1.5,1,0.5,1,1,1")
    for index, value, message in [
        (2, "2019-01-02", "trade_date: '2019-01-02' is not YYYYMMDD"),
        (2, "20190230", "trade_date: '20190230': day is out of range"),
        (1, "", "ts_code: '' must be 1 to 64 bytes"),
    ]:
        fields = list(good)
        fields[index] = value
        with pytest.raises(BadRow, match=message):
            fmt.bar(fields)
