"""The CSV bar files that ``mdcache load`` reads, told apart by their header.

=========  ==================================================  =====================================
format     header                                              series; timestamp
=========  ==================================================  =====================================
tushare    ``[,]ts_code,trade_date,open,high,low,close,...``   ``ts_code``/kline/1d;
                                                               ``trade_date`` (YYYYMMDD) at the
                                                               15:00 close, China time
czsc       ``symbol,[id,]dt,[freq,]open,close,high,low,vol``   ``symbol`` (``.XSHG`` -> ``.SH``,
                                                               ``.XSHE`` -> ``.SZ``)/kline/``freq``
                                                               (none: 1d); ``dt`` as is (bar end),
                                                               China time
yahoo      ``Date,Open,High,Low,Close[,Adj Close],Volume``     ``yahoofinance-SYMBOL-*.csv`` (or
                                                               ``SYMBOL_*.csv``)/kline/1d; ``Date``
                                                               at 00:00 UTC
us-1m      the same, a ``Date`` with a time                    SYMBOL as yahoo/kline/1m; ``Date``
                                                               as written (the bar's start), New
                                                               York time
vnpy-tick  ``symbol,date,time,lastPrice,...,bidPrice1,``       ``symbol``/tick/tick; ``date``
           ``askPrice1,...``                                   ``time`` as written, China time
adj-factor ``[,]ts_code,trade_date,adj_factor`` (tushare's)    ``ts_code``/adj_factor/1d;
           or ``date,adj_factor``                              ``trade_date`` as tushare's bars;
                                                               ``date`` (YYYY-MM-DD) at 00:00 UTC
                                                               as Yahoo's, the symbol as Yahoo's
=========  ==================================================  =====================================

China time is UTC+8 (no daylight saving time). A record's payload is the row as a JSON
object under the file's own column names, numbers as numbers; an unnamed column (a
pandas row index) is left out. A row that cannot become a valid record raises
:class:`BadRow` saying why. Formats that share a header (yahoo, us-1m) are told apart by
the file's first row.
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

from mdcache_client import Record, Series
from mdcache_server.model import Limits

CHINA = timezone(timedelta(hours=8), "UTC+8")  # Asia/Shanghai has had no DST since 1991
NEW_YORK = ZoneInfo("America/New_York")  # US exchanges' time, with its daylight saving time
LIMITS = Limits()
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_YAHOO_NAME = re.compile(r"yahoofinance-([^-]+)-", re.IGNORECASE)
_LEADING_SYMBOL = re.compile(r"([A-Za-z0-9.^]+)_")  # SP500_NOV2019_IDay.csv: SP500
_JOINQUANT_SUFFIXES = {".XSHG": ".SH", ".XSHE": ".SZ"}
_FREQ_MINUTES = re.compile(r"Freq\.F(\d+)")
_FREQ_OTHER = {"Freq.D": "1d", "Freq.W": "1w"}
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # as Record.of encodes


class BadRow(ValueError):
    """A row that cannot be loaded; the message says why."""


class UnknownFormat(ValueError):
    """A file whose header is none of the known formats, or whose series cannot be told."""


def _number(column: str, text: str) -> int | float:
    if text.isdigit() or (text[:1] in ("-", "+") and text[1:].isdigit()):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        raise BadRow(f"{column}: not a number: {text!r}") from None
    if not math.isfinite(value):
        raise BadRow(f"{column}: {text!r} is not a finite number")
    return value


def identifier(field: str, text: str) -> str:
    """A symbol, data_type or timeframe within the cache's limits."""
    size = len(text.encode())
    if not 0 < size <= LIMITS.max_identifier_bytes:
        raise BadRow(f"{field}: {text!r} must be 1 to {LIMITS.max_identifier_bytes} bytes")
    if _CONTROL.search(text):
        raise BadRow(f"{field}: {text!r} holds a control character")
    return text


def epoch_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime, within the timestamps the cache stores."""
    ms = round(moment.timestamp() * 1000)  # exact: a float's error is far below 0.5 ms here
    if not LIMITS.min_ts_ms <= ms <= LIMITS.max_ts_ms:
        raise BadRow(f"{moment.isoformat()} is outside 1970-01-01 .. 2099-12-31, as the cache is")
    return ms


class CsvFormat(ABC):
    """One known layout of bar rows; built for one file's header by :func:`detect`."""

    name: ClassVar[str]
    required: ClassVar[frozenset[str]]
    text: ClassVar[frozenset[str]]  # columns kept as text; every other one is a number
    ohlc: ClassVar[tuple[str, str, str, str]]  # open, high, low, close
    default_data_type: ClassVar[str] = "kline"  # the series' data_type unless one is given
    # The timeframe every file of the format has (ticks: "tick"); None: told by its spacing.
    timeframe: ClassVar[str | None] = None

    def __init__(self, header: Sequence[str], *, symbol: str | None, data_type: str | None) -> None:
        self.header = list(header)
        self.symbol = symbol
        self.data_type = data_type or self.default_data_type
        # (index, name, kept as text) of each named column; an unnamed one is a row index
        self._columns = [(i, name, name in self.text) for i, name in enumerate(header) if name]
        self._seen: dict[tuple[str, str | None], Series] = {}  # each file has few series

    @classmethod
    def matches(cls, header: Sequence[str]) -> bool:
        return cls.required <= set(header)

    @classmethod
    def fits(cls, first: Mapping[str, str]) -> bool:
        """Whether a file whose first row is ``first`` (by column; empty when the file has
        none) is of this format, of those whose header it matches."""
        return True

    @classmethod
    def named_by_file(cls, header: Sequence[str]) -> bool:
        """Whether the file's name (or ``--symbol``) names the symbol of its rows."""
        return False

    def check(self, numbers: Mapping[str, int | float]) -> None:
        """Raises BadRow when a row's numbers cannot be a record: here, not a bar."""
        o, h, low, c = (numbers[name] for name in self.ohlc)
        if not low <= min(o, c) <= max(o, c) <= h:
            names = "/".join(self.ohlc)
            raise BadRow(f"{names} {o}/{h}/{low}/{c}: not a bar (low <= open, close <= high)")

    @abstractmethod
    def series(self, row: Mapping[str, str]) -> Series:
        """The series a row belongs to."""

    @abstractmethod
    def moment(self, row: Mapping[str, str]) -> datetime:
        """The row's time, timezone-aware."""

    def bar(self, fields: Sequence[str]) -> tuple[Series, Record]:
        """The series and record of one row's fields; raises BadRow."""
        if len(fields) != len(self.header):
            raise BadRow(f"{len(fields)} fields where the header has {len(self.header)}")
        values: dict[str, int | float | str] = {}
        numbers: dict[str, int | float] = {}
        texts: dict[str, str] = {}
        for i, name, is_text in self._columns:
            if is_text:
                values[name] = texts[name] = fields[i]
            else:
                values[name] = numbers[name] = _number(name, fields[i])
        self.check(numbers)
        return self.series(texts), Record(epoch_ms(self.moment(texts)), _JSON.encode(values))


class Tushare(CsvFormat):
    """Tushare pro ``daily``: one row per stock and trading day."""

    name = "tushare"
    required = frozenset({"ts_code", "trade_date", "open", "high", "low", "close"})
    text = frozenset({"ts_code", "trade_date"})
    ohlc = ("open", "high", "low", "close")

    def series(self, row: Mapping[str, str]) -> Series:
        seen = row["ts_code"], None
        series = self._seen.get(seen)
        if series is None:
            symbol = self.symbol or identifier("ts_code", seen[0])
            series = self._seen[seen] = Series(symbol, self.data_type, "1d")
        return series

    def moment(self, row: Mapping[str, str]) -> datetime:
        return _trade_date(row["trade_date"])


def _trade_date(text: str) -> datetime:
    """Tushare's ``trade_date`` (YYYYMMDD), at the 15:00 close in China time."""
    if len(text) != 8 or not text.isdigit():
        raise BadRow(f"trade_date: {text!r} is not YYYYMMDD")
    try:
        day = date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError as exc:
        raise BadRow(f"trade_date: {text!r}: {exc}") from None
    return datetime.combine(day, time(15), CHINA)


class Czsc(CsvFormat):
    """czsc bars of Chinese indices and stocks, stamped at the bar's end, China time."""

    name = "czsc"
    required = frozenset({"symbol", "dt", "open", "close", "high", "low"})
    text = frozenset({"symbol", "dt", "freq"})
    ohlc = ("open", "high", "low", "close")

    def series(self, row: Mapping[str, str]) -> Series:
        seen = row["symbol"], row.get("freq")
        series = self._seen.get(seen)
        if series is None:
            symbol = self.symbol
            if symbol is None:
                symbol = identifier("symbol", seen[0])
                for suffix, exchange in _JOINQUANT_SUFFIXES.items():
                    if symbol.endswith(suffix):
                        symbol = symbol.removesuffix(suffix) + exchange
            series = self._seen[seen] = Series(symbol, self.data_type, self._timeframe(seen[1]))
        return series

    @staticmethod
    def _timeframe(freq: str | None) -> str:
        if freq is None:
            return "1d"
        minutes = _FREQ_MINUTES.fullmatch(freq)
        if minutes:
            return f"{int(minutes[1])}m"
        if freq in _FREQ_OTHER:
            return _FREQ_OTHER[freq]
        raise BadRow(f"freq: {freq!r} is not Freq.F<minutes>, Freq.D or Freq.W")

    def moment(self, row: Mapping[str, str]) -> datetime:
        text = row["dt"]
        try:
            return datetime.fromisoformat(text).replace(tzinfo=CHINA)
        except ValueError:
            raise BadRow(f"dt: {text!r} is not YYYY-MM-DD HH:MM:SS") from None


class Yahoo(CsvFormat):
    """Yahoo Finance daily history; the symbol comes from the file name."""

    name = "yahoo"
    required = frozenset({"Date", "Open", "High", "Low", "Close"})
    text = frozenset({"Date"})
    ohlc = ("Open", "High", "Low", "Close")

    @classmethod
    def fits(cls, first: Mapping[str, str]) -> bool:
        return " " not in first.get("Date", "").strip()  # a day, not a time of day

    @classmethod
    def named_by_file(cls, header: Sequence[str]) -> bool:
        return True

    def series(self, row: Mapping[str, str]) -> Series:
        assert self.symbol is not None  # detect() requires one
        return Series(self.symbol, self.data_type, "1d")

    def moment(self, row: Mapping[str, str]) -> datetime:
        text = row["Date"]
        try:
            day = (
                date.fromisoformat(text)
                if "-" in text
                else datetime.strptime(text, "%m/%d/%Y").date()
            )
        except ValueError:
            raise BadRow(f"Date: {text!r} is not YYYY-MM-DD or M/D/YYYY") from None
        return datetime.combine(day, time(0), UTC)


class UsMinutes(Yahoo):
    """US intraday one-minute bars in the Yahoo layout, a time with each ``Date``, stamped as
    written (the bar's start), New York time (e.g. mplfinance's S&P 500 of November 2019)."""

    name = "us-1m"

    @classmethod
    def fits(cls, first: Mapping[str, str]) -> bool:
        return not super().fits(first)

    def series(self, row: Mapping[str, str]) -> Series:
        assert self.symbol is not None  # detect() requires one
        return Series(self.symbol, self.data_type, "1m")

    def moment(self, row: Mapping[str, str]) -> datetime:
        text = row["Date"].strip()
        try:
            naive = (
                datetime.fromisoformat(text)
                if "-" in text
                else datetime.strptime(text, "%m/%d/%Y %H:%M")
            )
        except ValueError:
            raise BadRow(f"Date: {text!r} is not YYYY-MM-DD HH:MM[:SS] or M/D/YYYY H:MM") from None
        return naive.replace(tzinfo=NEW_YORK)


class VnpyTick(CsvFormat):
    """vn.py tick snapshots of a Chinese future (a row per tick, e.g. every 0.5 s): the
    series ``symbol``/tick/tick, stamped at ``date`` ``time``, China time."""

    name = "vnpy-tick"
    required = frozenset({"symbol", "date", "time", "lastPrice", "bidPrice1", "askPrice1"})
    text = frozenset({"symbol", "date", "time"})
    default_data_type = "tick"
    timeframe = "tick"

    def check(self, numbers: Mapping[str, int | float]) -> None:
        bid, ask = numbers["bidPrice1"], numbers["askPrice1"]
        if bid > 0 and ask > 0 and bid > ask:  # 0: no order on that side
            raise BadRow(f"bidPrice1/askPrice1 {bid}/{ask}: not a quote (bid <= ask)")
        negative = [name for name, value in numbers.items() if value < 0]
        if negative:
            raise BadRow(f"{negative[0]}: {numbers[negative[0]]} is negative")

    def series(self, row: Mapping[str, str]) -> Series:
        seen = row["symbol"], None
        series = self._seen.get(seen)
        if series is None:
            symbol = self.symbol or identifier("symbol", seen[0])
            series = self._seen[seen] = Series(symbol, self.data_type, "tick")
        return series

    def moment(self, row: Mapping[str, str]) -> datetime:
        day, moment = row["date"], row["time"]
        if len(day) != 8 or not day.isdigit():
            raise BadRow(f"date: {day!r} is not YYYYMMDD")
        try:
            return datetime.fromisoformat(f"{day[:4]}-{day[4:6]}-{day[6:]}T{moment}").replace(
                tzinfo=CHINA
            )
        except ValueError:
            raise BadRow(f"date/time: {day!r} {moment!r} is not YYYYMMDD HH:MM:SS[.f]") from None


class AdjFactor(CsvFormat):
    """Cumulative adjustment factors by day (tushare's ``adj_factor``, or ``date,adj_factor``),
    into the series that adjusted Reads find by convention: SYMBOL/adj_factor/1d. Each is
    stamped as the same vendor's daily bars, so that a bar's own day's factor is in force
    at it."""

    name = "adj-factor"
    required = frozenset({"adj_factor"})
    text = frozenset({"ts_code", "trade_date", "date"})
    default_data_type = "adj_factor"
    timeframe = "1d"

    @classmethod
    def matches(cls, header: Sequence[str]) -> bool:
        names = set(header)
        return "adj_factor" in names and ({"ts_code", "trade_date"} <= names or "date" in names)

    @classmethod
    def named_by_file(cls, header: Sequence[str]) -> bool:
        return "ts_code" not in header

    def check(self, numbers: Mapping[str, int | float]) -> None:
        if not numbers["adj_factor"] > 0:
            raise BadRow(f"adj_factor: {numbers['adj_factor']} is not a positive factor")

    def series(self, row: Mapping[str, str]) -> Series:
        seen = row.get("ts_code", ""), None
        series = self._seen.get(seen)
        if series is None:
            symbol = self.symbol or identifier("ts_code", seen[0])
            series = self._seen[seen] = Series(symbol, self.data_type, "1d")
        return series

    def moment(self, row: Mapping[str, str]) -> datetime:
        if "trade_date" in row:
            return _trade_date(row["trade_date"])
        text = row["date"]
        try:
            return datetime.combine(date.fromisoformat(text), time(0), UTC)
        except ValueError:
            raise BadRow(f"date: {text!r} is not YYYY-MM-DD") from None


FORMATS: tuple[type[CsvFormat], ...] = (Tushare, Czsc, Yahoo, UsMinutes, VnpyTick, AdjFactor)


def detect(
    path: Path,
    header: Sequence[str],
    *,
    symbol: str | None = None,
    data_type: str | None = None,
    first_row: Sequence[str] = (),
) -> CsvFormat:
    """The format of a file with this header (and this first row); raises UnknownFormat.

    ``symbol`` (when given) is the symbol of every row, else each format finds its own;
    ``data_type`` (when given) that of every series, else the format's (kline, tick).
    """
    header = [name.strip() for name in header]
    first = dict(zip(header, first_row, strict=False))
    for fmt in FORMATS:
        if not fmt.matches(header) or not fmt.fits(first):
            continue
        if fmt.named_by_file(header) and symbol is None:
            found = _YAHOO_NAME.match(path.name) or _LEADING_SYMBOL.match(path.name)
            if found is None:
                raise UnknownFormat(
                    f"{path}: a {fmt.name} file names no symbol; call it "
                    "yahoofinance-SYMBOL-....csv (or SYMBOL_....csv) or pass --symbol"
                )
            symbol = found[1]
        try:
            if symbol is not None:
                identifier("symbol", symbol)
            identifier("data_type", data_type or fmt.default_data_type)
        except BadRow as exc:
            raise UnknownFormat(f"{path}: {exc}") from None
        return fmt(header, symbol=symbol, data_type=data_type)
    known = "; ".join(f"{f.name} ({', '.join(sorted(f.required))})" for f in FORMATS)
    raise UnknownFormat(f"{path}: header {','.join(header)!r} is no known format: {known}")
