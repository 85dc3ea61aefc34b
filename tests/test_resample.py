"""Read with ``resample``: bars of a coarser timeframe made on read, on every store, against
pandas over the real bars of tests/data (and a few by hand)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import grpc
import pandas as pd
import pytest

from mdcache.v1 import cache_pb2 as pb
from mdcache_client import AsyncClient, InvalidArgumentError, ReadResult, Record, Series
from mdcache_server.app import Server

from .market_data import (
    SHANGHAI,
    aapl_daily_2017,
    sp500_minutes_20191107_08,
    sse_daily_2019,
    sse_minutes_20180813_17,
    sse_minutes_20190201,
)
from .support import caught_up

CN_SESSIONS = (("09:30", "11:30"), ("13:00", "15:00"))
US_SESSIONS = (("09:30", "16:00"),)
OHLCV = {"open": "first", "high": "max", "low": "min", "close": "last"}


def ohlcv(df: pd.DataFrame) -> dict[str, str]:
    """How pandas makes each field of a bar, by the frame's own names."""
    names = {c.lower(): c for c in df.columns}
    summed = [c for c in df.columns if c.lower() in ("vol", "volume", "amount")]
    return {**{names[k]: how for k, how in OHLCV.items()}, **dict.fromkeys(summed, "sum")}


def frame(records: list[Record], tz: str) -> pd.DataFrame:
    """The bars as a frame indexed by their local end time, ``ts`` kept."""
    rows = [{"ts": r.ts_ms, **json.loads(r.payload)} for r in records]
    df = pd.DataFrame(rows)
    df.index = pd.to_datetime(df["ts"], unit="ms", utc=True).dt.tz_convert(tz)
    return df


def reference_intraday(
    records: list[Record], minutes: int, tz: str, sessions: tuple[tuple[str, str], ...]
) -> list[tuple[int, dict[str, Any]]]:
    """pandas' bars of each session (right-closed, right-labelled, from the session's open);
    a bar ending at or before the first open is counted in the first bucket."""
    df = frame(records, tz)
    out: list[tuple[int, dict[str, Any]]] = []
    for day, bars in df.groupby(df.index.date):
        first_open = pd.Timestamp(f"{day} {sessions[0][0]}", tz=tz)
        bars = bars.copy()
        bars.index = bars.index.where(bars.index > first_open, first_open + pd.Timedelta("1s"))
        for open_, close in sessions:
            start, end = (pd.Timestamp(f"{day} {t}", tz=tz) for t in (open_, close))
            part = bars[(bars.index > start) & (bars.index <= end)]
            if part.empty:
                continue
            got = part.resample(f"{minutes}min", origin=start, closed="right", label="right").agg(
                ohlcv(df)
            )
            got = got.dropna()
            for label, row in got.iterrows():
                stamp = min(label, end)
                out.append((int(stamp.timestamp() * 1000), row.to_dict()))
    return out


def reference_periods(records: list[Record], tz: str, rule: str) -> list[tuple[int, dict]]:
    """pandas' weekly (ISO weeks) or monthly bars, stamped as their last bar."""
    df = frame(records, tz)
    dates = df.index.tz_localize(None).normalize()
    if rule == "week":
        iso = dates.isocalendar()
        keys = [iso.year.values, iso.week.values]
    else:
        keys = [dates.year, dates.month]
    got = df.groupby(keys, sort=True).agg({**ohlcv(df), "ts": "last"})
    return [(int(row["ts"]), row.drop("ts").to_dict()) for _, row in got.iterrows()]


def assert_bars(result: ReadResult, expected: list[tuple[int, dict[str, Any]]]) -> None:
    assert [r.ts_ms for r in result.records] == [ts for ts, _ in expected]
    for record, (ts, want) in zip(result.records, expected, strict=True):
        got = record.json()
        assert sorted(got) == sorted(want), ts
        for name, value in want.items():
            assert got[name] == pytest.approx(value, rel=1e-12), (ts, name)


def local(text: str, tz: timezone = SHANGHAI) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=tz).timestamp() * 1000)


HOT_AND_COLD = pytest.mark.parametrize(
    "server_settings", [{}, {"hot_tier_bytes": "0"}], ids=["hot", "cold"]
)


@HOT_AND_COLD
@pytest.mark.parametrize("minutes", [5, 15, 30, 60])
async def test_minute_bars_of_whole_days_and_of_a_day_with_a_missing_minute(
    client: AsyncClient, minutes: int
) -> None:
    series, week = sse_minutes_20180813_17()  # 240 bars a day
    _, day = sse_minutes_20190201()  # 239: 14:59 is missing
    await client.write(series, week + day)

    for records in (week, day):
        result = await client.read(
            series,
            start_ms=records[0].ts_ms,
            end_ms=records[-1].ts_ms,
            resample=f"{minutes}m",
        )
        expected = reference_intraday(records, minutes, "Asia/Shanghai", CN_SESSIONS)
        assert len(expected) == 240 // minutes * (len(records) // 239)
        assert_bars(result, expected)
        assert result.hit
        assert not result.truncated
        assert not result.partial
        assert list(result.records[0].json()) == ["open", "close", "high", "low", "vol"]
        assert result.series == Series("000001.SH", "kline", f"{minutes}m")
        assert result.source == series


async def test_the_bars_at_1130_and_1500_by_hand(client: AsyncClient) -> None:
    series, day = sse_minutes_20190201()
    await client.write(series, day)
    bars = (await client.read(series, resample="60m")).records
    assert [datetime.fromtimestamp(b.ts_ms / 1000, SHANGHAI).strftime("%H:%M") for b in bars] == [
        "10:30",
        "11:30",
        "14:00",
        "15:00",
    ]
    rows = [json.loads(r.payload) for r in day]
    morning = [r for r in rows if "10:30:00" < r["dt"][11:] <= "11:30:00"]  # 10:31 .. 11:30
    closing = [r for r in rows if r["dt"][11:] > "14:00:00"]  # 14:01 .. 15:00, no 14:59
    assert (len(morning), len(closing)) == (60, 59)
    for bar, part in ((bars[1], morning), (bars[3], closing)):
        assert bar.json() == {
            "open": part[0]["open"],
            "close": part[-1]["close"],
            "high": max(r["high"] for r in part),
            "low": min(r["low"] for r in part),
            "vol": sum(r["vol"] for r in part),
        }
    # the 5-minute bar at 15:00 is 14:56, 14:57, 14:58 and 15:00
    last = (await client.read(series, resample="5m", limit=1, newest_first=True)).records[0]
    assert last.ts_ms == local("2019-02-01 15:00:00")
    assert last.json()["vol"] == sum(r["vol"] for r in rows[-4:])
    assert last.json()["open"] == rows[-4]["open"]


async def test_daily_bars_of_minute_bars_are_stamped_at_the_close(client: AsyncClient) -> None:
    series, week = sse_minutes_20180813_17()
    await client.write(series, week)
    result = await client.read(series, resample="1d")
    expected = reference_intraday(week, 240, "Asia/Shanghai", CN_SESSIONS)
    # pandas' 240-minute buckets from the open are the two sessions: add them up
    days = [
        (b[0], {**b[1], "close": a[1]["close"]})
        for b, a in zip(expected[::2], expected[1::2], strict=True)
    ]
    for (_, whole), (_, morning), (_, afternoon) in zip(
        days, expected[::2], expected[1::2], strict=True
    ):
        whole.update(
            high=max(morning["high"], afternoon["high"]),
            low=min(morning["low"], afternoon["low"]),
            vol=morning["vol"] + afternoon["vol"],
        )
    stamps = [local(f"2018-08-{d} 15:00:00") for d in range(13, 18)]
    assert_bars(result, [(ts, bar) for ts, (_, bar) in zip(stamps, days, strict=True)])
    weekly = await client.read(series, resample="1w")
    assert [r.ts_ms for r in weekly.records] == [stamps[-1]]
    assert weekly.records[0].json()["vol"] == sum(json.loads(r.payload)["vol"] for r in week)
    assert not weekly.partial


@HOT_AND_COLD
async def test_weeks_and_months_of_daily_bars_across_holidays(client: AsyncClient) -> None:
    series, days = sse_daily_2019()
    await client.write(series, days)

    weeks = await client.read(series, resample="1w")
    assert_bars(weeks, reference_periods(days, "Asia/Shanghai", "week"))
    stamps = {datetime.fromtimestamp(r.ts_ms / 1000, SHANGHAI).date() for r in weeks.records}
    # Qingming: Friday 2019-04-05 closed, the week ends on Thursday; Spring Festival:
    # 2019-02-04 .. 08 closed, no bar at all for that week
    assert datetime(2019, 4, 4).date() in stamps
    assert not any(datetime(2019, 2, 4).date() <= d <= datetime(2019, 2, 10).date() for d in stamps)
    assert datetime(2019, 2, 1).date() in stamps

    months = await client.read(series, resample="1M")
    assert_bars(months, reference_periods(days, "Asia/Shanghai", "month"))
    assert len(months.records) == 12
    # March, June and August 2019 end on a weekend: their bars are their last Fridays'
    month_ends = [datetime.fromtimestamp(r.ts_ms / 1000, SHANGHAI) for r in months.records]
    assert month_ends[2] == datetime(2019, 3, 29, 15, tzinfo=SHANGHAI)
    assert month_ends[5] == datetime(2019, 6, 28, 15, tzinfo=SHANGHAI)
    assert month_ends[7] == datetime(2019, 8, 30, 15, tzinfo=SHANGHAI)
    assert not months.partial  # 2019-12-31, a Tuesday, is December's last weekday

    # a window: the weeks with a day in 2019-04-03 .. 04-10, each week whole
    result = await client.read(
        series,
        start_ms=local("2019-04-03 00:00:00"),
        end_ms=local("2019-04-10 23:00:00"),
        resample="1w",
    )
    first, second = result.records
    april = [json.loads(r.payload) for r in days if "2019-04-01" <= r.json()["dt"] < "2019-04-05"]
    assert first.json()["open"] == april[0]["open"]  # Monday's, though the window starts Wednesday
    assert second.ts_ms == local("2019-04-10 15:00:00")
    assert result.partial  # Wednesday: the window ends before the week does


async def test_a_partial_last_bar_is_flagged(client: AsyncClient) -> None:
    series, day = sse_minutes_20190201()
    until_1047 = [r for r in day if r.ts_ms <= local("2019-02-01 10:47:00")]
    await client.write(series, until_1047)

    result = await client.read(series, resample="60m")
    assert [r.ts_ms for r in result.records] == [
        local("2019-02-01 10:30:00"),
        local("2019-02-01 11:30:00"),
    ]
    assert result.partial
    assert result.records[-1].json()["close"] == until_1047[-1].json()["close"]
    newest = await client.read(series, resample="60m", limit=1, newest_first=True)
    assert newest.partial
    assert newest.truncated
    oldest = await client.read(series, resample="60m", limit=1)
    assert not oldest.partial
    assert oldest.truncated
    daily = await client.read(series, resample="1d")
    assert daily.partial

    await client.write(series, day)  # the rest of the day arrives
    whole = await client.read(series, resample="60m")
    assert_bars(whole, reference_intraday(day, 60, "Asia/Shanghai", CN_SESSIONS))
    assert not whole.partial

    # a bar replaced in the middle: its hour is made anew
    noon = next(r for r in day if r.ts_ms == local("2019-02-01 11:00:00"))
    await client.write(series, [Record.of(noon.ts_ms, {**noon.json(), "high": 2700.0})])
    changed = await client.read(series, resample="60m")
    assert changed.records[1].json()["high"] == 2700.0
    assert changed.records[0] == whole.records[0]


async def test_a_week_not_yet_over_is_partial(client: AsyncClient) -> None:
    series, days = sse_daily_2019()
    until_wednesday = [r for r in days if r.ts_ms <= local("2019-12-18 15:00:00")]
    await client.write(series, until_wednesday)
    assert (await client.read(series, resample="1w")).partial
    assert (await client.read(series, resample="1M")).partial


async def test_bad_payloads_and_timeframes_are_invalid_arguments(client: AsyncClient) -> None:
    series = Series("600519.SH", "kline", "1m")
    await client.write(
        series,
        [
            Record.of(local("2019-02-01 09:31:00"), {"Open": 1, "High": 2, "Low": 1, "Close": 2}),
            Record.of(local("2019-02-01 09:32:00"), {"Open": 2, "High": 3, "Low": 1}),
        ],
    )
    with pytest.raises(InvalidArgumentError, match=r"series\[0\]\.payload\.close: missing") as e:
        await client.read(series, resample="5m")
    assert "1548984720000" in str(e.value)  # the record at 09:32 is named by its timestamp

    await client.write(
        series,
        [Record.of(local("2019-02-01 09:32:00"), {"Open": 2, "High": 3, "Low": 1, "Close": "x"})],
    )
    with pytest.raises(InvalidArgumentError, match=r"series\[0\]\.payload\.Close: 'x' is not a"):
        await client.read(series, resample="5m")

    for resample, message in (
        ("7x", r"resample: '7x' is not a timeframe"),
        ("1m", r"resample: series\[0\]: 1m is not coarser than the series' 1m"),
        ("45m", r"resample: series\[0\]: 45m is not a whole number of the series' 30m bars"),
    ):
        source = Series("600519.SH", "kline", "30m" if resample == "45m" else "1m")
        with pytest.raises(InvalidArgumentError, match=message):
            await client.read(source, resample=resample)
    with pytest.raises(InvalidArgumentError, match=r"series\[0\]\.timeframe: 'tick' cannot be"):
        await client.read(Series("600519.SH", "quote", "tick"), resample="1d")


async def test_the_case_of_field_names_is_kept_and_other_fields_left_out(
    client: AsyncClient,
) -> None:
    series, days = aapl_daily_2017()  # Date,Open,High,Low,Close,Adj Close,Volume; 00:00 UTC
    await client.write(series, days)
    weeks = await client.read(series, resample="1w")
    assert list(weeks.records[0].json()) == ["Open", "High", "Low", "Close", "Volume"]
    expected = reference_periods(days, "UTC", "week")  # a date-only stamp is its UTC date
    assert_bars(weeks, expected)
    # 2017-01-02 was a holiday: the first week is Tuesday to Friday, stamped as Friday
    assert weeks.records[0].ts_ms == int(datetime(2017, 1, 6, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize("server_settings", [{"markets": ".SH=cn,.SZ=cn,SPX=us,*=cn"}])
async def test_us_session_in_new_york_time_after_the_daylight_saving_switch(
    client: AsyncClient,
) -> None:
    series, minutes = sp500_minutes_20191107_08()  # 09:30 .. 16:00 EST = 14:30 .. 21:00 UTC
    await client.write(series, minutes)
    result = await client.read(series, resample="60m")
    expected = reference_intraday(minutes, 60, "America/New_York", US_SESSIONS)
    assert_bars(result, expected)
    hours = [datetime.fromtimestamp(r.ts_ms / 1000, UTC).strftime("%H:%M") for r in result.records]
    assert hours[:7] == ["15:30", "16:30", "17:30", "18:30", "19:30", "20:30", "21:00"]
    assert len(hours) == 14
    first = result.records[0].json()
    assert first["Open"] == minutes[0].json()["Open"]  # the 09:30 bar opens the first hour


@pytest.mark.parametrize("server_settings", [{"markets": "*=us"}])
async def test_us_weeks_around_the_spring_switch(client: AsyncClient) -> None:
    """Friday 2019-03-08 is EST (UTC-5), Monday 2019-03-11 EDT (UTC-4): the session moves
    an hour earlier in UTC, and the buckets with it."""
    series = Series("AAPL", "kline", "1m")
    records = []
    for day, open_utc in (("2019-03-08", "14:30"), ("2019-03-11", "13:30")):
        start = datetime.fromisoformat(f"{day}T{open_utc}:00+00:00")
        for i in range(1, 391):  # bar ends 09:31 .. 16:00 local
            ts = int((start + timedelta(minutes=i)).timestamp() * 1000)
            records.append(
                Record.of(ts, {"open": i, "high": i + 1, "low": i - 1, "close": i, "volume": 1})
            )
    await client.write(series, records)

    hourly = await client.read(series, resample="60m")
    ends = [
        datetime.fromtimestamp(r.ts_ms / 1000, UTC).strftime("%d %H:%M") for r in hourly.records
    ]
    assert ends == [
        *("08 15:30", "08 16:30", "08 17:30", "08 18:30", "08 19:30", "08 20:30", "08 21:00"),
        *("11 14:30", "11 15:30", "11 16:30", "11 17:30", "11 18:30", "11 19:30", "11 20:00"),
    ]
    assert [r.json()["volume"] for r in hourly.records] == [60] * 6 + [30] + [60] * 6 + [30]
    weekly = await client.read(series, resample="1w")
    assert [datetime.fromtimestamp(r.ts_ms / 1000, UTC).isoformat() for r in weekly.records] == [
        "2019-03-08T21:00:00+00:00",
        "2019-03-11T20:00:00+00:00",
    ]
    assert weekly.partial  # Monday only


async def test_hot_answers_are_remembered_counted_and_ended_by_writes(
    server: Server, client: AsyncClient
) -> None:
    series, day = sse_minutes_20190201()
    await client.write(series, day[:-1])
    await caught_up(server)  # the Write is merged: the first Read's fill is not doubtful
    first = await client.read(series, resample="60m")
    again = await client.read(series, resample="60m")
    assert again == first
    assert first.partial
    assert len(server.servicer.answers) == 1  # the second answer was the first one's bytes
    stats = await client.stats()
    assert stats.resampled_reads == 2
    assert stats.hot_tier.series == 1

    await client.write(series, day[-1:])
    after = await client.read(series, resample="60m")
    assert not after.partial
    assert after.records[-1].json()["close"] == day[-1].json()["close"]
    assert (await client.stats()).resampled_reads == 3
    assert server.metrics.resampled_reads == 3


async def test_a_watchlist_of_series_in_one_call(client: AsyncClient) -> None:
    minutes, day = sse_minutes_20190201()
    daily, days = sse_daily_2019()
    await client.write_many({minutes: day, daily: days})
    results = await client.read_many([minutes, Series("600000.SH", "kline", "1m")], resample="1d")
    assert [r.hit for r in results] == [True, False]
    assert results[1].source == Series("600000.SH", "kline", "1m")
    with pytest.raises(InvalidArgumentError, match=r"series\[1\]: 1d is not coarser"):
        await client.read_many([minutes, daily], resample="1d")


async def test_the_answer_names_its_source_on_the_wire(server: Server) -> None:
    series, day = sse_minutes_20190201()
    async with AsyncClient(f"127.0.0.1:{server.port}") as client:
        await client.write(series, day)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        read = channel.unary_unary(
            "/mdcache.v1.MarketDataCache/Read",
            request_serializer=pb.ReadRequest.SerializeToString,
            response_deserializer=pb.ReadResponse.FromString,
        )
        key = pb.SeriesKey(symbol="000001.SH", data_type="kline", timeframe="1m")
        answer = await read(pb.ReadRequest(series=[key], resample="30m"))
    (result,) = answer.results
    assert result.source == key
    assert result.series.timeframe == "30m"
    assert len(result.records) == 8
    assert not result.partial


@pytest.mark.parametrize("server_settings", [{"max_read_records": "500"}])
async def test_a_long_source_is_paged_at_whole_bars(client: AsyncClient) -> None:
    """At most 500 source bars a call: the answer ends at its last whole bar, truncated, and
    paging on with start_ms after it gives the rest, the same bars as in one piece."""
    series, week = sse_minutes_20180813_17()
    await client.write(series, week)
    expected = reference_intraday(week, 30, "Asia/Shanghai", CN_SESSIONS)
    pages: list[Record] = []
    start: int | None = None
    for _ in range(10):
        page = await client.read(series, start_ms=start, resample="30m")
        pages += page.records
        if not page.truncated:
            break
        assert not page.partial
        start = page.records[-1].ts_ms + 1  # type: ignore[operator]
    assert len(pages) == 40
    assert [r.ts_ms for r in pages] == [ts for ts, _ in expected]
    assert [r.json() for r in pages] == [(await _whole(client, series, r.ts_ms)) for r in pages]

    newest = await client.read(series, resample="30m", newest_first=True)
    assert newest.truncated
    assert [r.ts_ms for r in newest.records] == [ts for ts, _ in expected][::-1][
        : len(newest.records)
    ]
    # the newest 500 minutes: two whole days, and 20 minutes of the 15th's last half hour,
    # a bar cut short by the read, left out
    assert len(newest.records) == 16


async def _whole(client: AsyncClient, series: Series, ts: int | None) -> dict[str, Any]:
    """The 30-minute bar ending at ts, asked alone."""
    assert ts is not None
    found = await client.read(series, start_ms=ts - 29 * 60_000, end_ms=ts, resample="30m")
    (bar,) = found.records
    return bar.json()  # type: ignore[no-any-return]


async def test_days_of_five_minute_bars_and_relative_windows(client: AsyncClient) -> None:
    series, week = sse_minutes_20180813_17()
    await client.write(series, week)
    five = Series("000001.SH", "kline", "5m")
    await client.write(five, (await client.read(series, resample="5m")).records)
    days_of_five = await client.read(five, resample="1d")
    days_of_one = await client.read(series, resample="1d")
    assert days_of_five.records == days_of_one.records
    assert days_of_five.source == five
    assert len(days_of_five.records) == 5
    # last_days: relative to the clock; reaches back past 2018-08-13
    recent = await client.read(series, last_days=365 * 30, resample="1w")
    assert [r.ts_ms for r in recent.records] == [local("2018-08-17 15:00:00")]
    latest_two_days = await client.read(series, resample="1d", limit=2, newest_first=True)
    assert [r.ts_ms for r in latest_two_days.records] == [
        local("2018-08-17 15:00:00"),
        local("2018-08-16 15:00:00"),
    ]
    assert latest_two_days.truncated
    assert not latest_two_days.partial


@pytest.mark.parametrize("server_settings", [{"max_read_records": "100"}])
async def test_a_bar_of_more_source_bars_than_a_call_may_read_is_refused(
    client: AsyncClient,
) -> None:
    series, day = sse_minutes_20190201()
    await client.write(series, day)
    assert len((await client.read(series, resample="60m")).records) == 1  # 9:31 .. 10:30
    with pytest.raises(InvalidArgumentError, match=r"resample: series\[0\]: a 1d bar holds more"):
        await client.read(series, resample="1d")
