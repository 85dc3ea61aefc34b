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
yahoo      ``Date,Open,High,Low,Close[,Adj Close],Volume``     ``yahoofinance-SYMBOL-*.csv``/kline/
                                                               1d; ``Date`` at 00:00 UTC
=========  ==================================================  =====================================

China time is UTC+8 (no daylight saving time). A record's payload is the row as a JSON
object under the file's own column names, numbers as numbers; an unnamed column (a
pandas row index) is left out. A row that cannot become a valid record raises
:class:`BadRow` saying why.
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

from mdcache_client import Record, Series
from mdcache_server.model import Limits

CHINA = timezone(timedelta(hours=8), "UTC+8")  # Asia/Shanghai has had no DST since 1991
LIMITS = Limits()
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_YAHOO_NAME = re.compile(r"yahoofinance-([^-]+)-", re.IGNORECASE)
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

    def __init__(self, header: Sequence[str], *, symbol: str | None, data_type: str) -> None:
        self.header = list(header)
        self.symbol = symbol
        self.data_type = data_type
        # (index, name, kept as text) of each named column; an unnamed one is a row index
        self._columns = [(i, name, name in self.text) for i, name in enumerate(header) if name]
        self._seen: dict[tuple[str, str | None], Series] = {}  # each file has few series

    @classmethod
    def matches(cls, header: Sequence[str]) -> bool:
        return cls.required <= set(header)

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
        o, h, low, c = (numbers[name] for name in self.ohlc)
        if not low <= min(o, c) <= max(o, c) <= h:
            names = "/".join(self.ohlc)
            raise BadRow(f"{names} {o}/{h}/{low}/{c}: not a bar (low <= open, close <= high)")
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
        text = row["trade_date"]
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


FORMATS: tuple[type[CsvFormat], ...] = (Tushare, Czsc, Yahoo)


def detect(
    path: Path, header: Sequence[str], *, symbol: str | None = None, data_type: str = "kline"
) -> CsvFormat:
    """The format of a file with this header; raises UnknownFormat.

    ``symbol`` (when given) is the symbol of every row, else each format finds its own.
    """
    header = [name.strip() for name in header]
    for fmt in FORMATS:
        if not fmt.matches(header):
            continue
        if fmt is Yahoo and symbol is None:
            found = _YAHOO_NAME.match(path.name)
            if found is None:
                raise UnknownFormat(
                    f"{path}: a Yahoo-style file names no symbol; call it "
                    "yahoofinance-SYMBOL-....csv or pass --symbol"
                )
            symbol = found[1]
        try:
            if symbol is not None:
                identifier("symbol", symbol)
            identifier("data_type", data_type)
        except BadRow as exc:
            raise UnknownFormat(f"{path}: {exc}") from None
        return fmt(header, symbol=symbol, data_type=data_type)
    known = "; ".join(f"{f.name} ({', '.join(sorted(f.required))})" for f in FORMATS)
    raise UnknownFormat(f"{path}: header {','.join(header)!r} is no known format: {known}")
