"""Calendars, markets and timeframes of resampled reads: parsed once from the configuration,
refused with the setting named."""

from __future__ import annotations

import re
from datetime import date

import pytest

from mdcache_server.config import Config
from mdcache_server.errors import ConfigError
from mdcache_server.resample.calendar import (
    Calendar,
    MarketRules,
    last_weekday,
    month_last_weekday,
)
from mdcache_server.resample.timeframe import Timeframe, Unit, parse, why_not_coarser


def test_the_default_calendars_and_markets() -> None:
    config = Config.load({}, {})
    cn, us = config.calendars["cn"], config.calendars["us"]
    day = cn.day(date(2019, 2, 1))
    assert day.sessions == (
        (1_548_984_600_000, 1_548_991_800_000),  # 09:30-11:30 China time
        (1_548_997_200_000, 1_549_004_400_000),  # 13:00-15:00
    )
    assert cn.bucket_ends(date(2019, 2, 1), 60) == (
        1_548_988_200_000,
        1_548_991_800_000,
        1_549_000_800_000,
        1_549_004_400_000,
    )
    # New York: 09:30 is 14:30 UTC in winter, 13:30 UTC in summer
    assert us.day(date(2019, 3, 8)).sessions[0][0] == 1_552_055_400_000
    assert us.day(date(2019, 3, 11)).sessions[0][0] == 1_552_311_000_000
    markets = config.markets
    assert [markets.market_of(s) for s in ("600519.SH", "000001.SZ", "600519", "AAPL")] == [
        "cn"
    ] * 4
    rules = MarketRules.parse(".SH=cn,AAPL=us,.US=us,*=cn")
    assert [rules.market_of(s) for s in ("AAPL", "MSFT.US", "000001.SH", "X")] == [
        "us",
        "us",
        "cn",
        "cn",
    ]
    assert config.summed_fields == frozenset({"volume", "vol", "amount"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MDCACHE_CALENDARS": "cn=Mars/Olympus 09:30-15:00"}, "unknown time zone 'Mars/Olympus'"),
        ({"MDCACHE_CALENDARS": "cn=Asia/Shanghai 9:30-15:00"}, "'9:30-15:00' is not HH:MM-HH:MM"),
        ({"MDCACHE_CALENDARS": "cn=Asia/Shanghai 13:00-15:00 09:30-11:30"}, "must be in order"),
        ({"MDCACHE_CALENDARS": "cn=Asia/Shanghai"}, "name at least one session"),
        ({"MDCACHE_MARKETS": ".SH=cn"}, "name a default market: *=market"),
        ({"MDCACHE_MARKETS": ".SH=hk,*=cn"}, "markets without a calendar: ['hk']"),
    ],
)
def test_bad_calendars_and_markets_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config.load({}, env)


def test_a_custom_calendar() -> None:
    hk = Calendar.parse("hk=Asia/Hong_Kong 09:30-12:00 13:00-16:00")
    assert len(hk.bucket_ends(date(2024, 5, 2), 60)) == 3 + 3  # 10:30 11:30 12:00, 14 15 16


def test_timeframes() -> None:
    assert parse("5m") == Timeframe(Unit.MINUTES, 5)
    assert parse("1h") == parse("60m") == parse("60min")
    assert parse("1M") == Timeframe(Unit.MONTH)
    assert parse("1m") == Timeframe(Unit.MINUTES, 1)
    for bad in ("", "0m", "2d", "1y", "tick", " 5m", "5M"):
        assert parse(bad) is None, bad
    one, five, day, week = (parse(t) for t in ("1m", "5m", "1d", "1w"))
    assert one
    assert five
    assert day
    assert week
    assert why_not_coarser(one, five) is None
    assert why_not_coarser(five, one) == "1m is not coarser than the series' 5m"
    assert why_not_coarser(day, week) is None
    assert why_not_coarser(week, parse("1M")) is not None  # type: ignore[arg-type]


def test_last_weekdays() -> None:
    assert last_weekday(date(2019, 4, 4)) == date(2019, 4, 5)
    assert last_weekday(date(2019, 4, 6)) == date(2019, 4, 6)
    assert month_last_weekday(date(2019, 3, 5)) == date(2019, 3, 29)
    assert month_last_weekday(date(2019, 12, 5)) == date(2019, 12, 31)
    assert month_last_weekday(date(2019, 8, 1)) == date(2019, 8, 30)
