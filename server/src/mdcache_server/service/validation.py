"""Turns requests into domain values, or raises InvalidArgument naming the field.

Everything a store could reject is rejected here first, against one
:class:`~mdcache_server.model.Limits`, so every store answers a call alike.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Callable, Sequence
from typing import NoReturn

import simdjson

from mdcache.v1 import cache_pb2 as pb
from mdcache_server.errors import InvalidArgument
from mdcache_server.model import DAY_MS, Limits, PurgeFilter, ReadQuery, SeriesKey, Window
from mdcache_server.wire import codec, encoding
from mdcache_server.wire.codec import FieldRecords

CONTROL = re.compile(r"[\x00-\x1f\x7f]")
DEFAULT_PURGE_DAYS = 7
DEFAULT_TOP_N = 10
MAX_TOP_N = 1000
MAX_DAYS = 365_000
ORDERS = frozenset(pb.Order.values())


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


class _Parsers(threading.local):
    """A simdjson parser per thread: a parser is reused from call to call, never shared."""

    def __init__(self) -> None:
        self.parser = simdjson.Parser()


_PARSERS = _Parsers()


def identifier(value: str, field: str, limits: Limits) -> str:
    """A symbol, data_type or timeframe: 1 to 64 UTF-8 bytes, no control characters, trimmed."""
    if not value:
        raise InvalidArgument(field, "must not be empty")
    if len(value.encode()) > limits.max_identifier_bytes:
        raise InvalidArgument(field, f"longer than {limits.max_identifier_bytes} bytes (UTF-8)")
    if CONTROL.search(value):
        raise InvalidArgument(field, "must not contain control characters")
    if value != value.strip():
        raise InvalidArgument(field, "must not start or end with white space")
    return value


@functools.lru_cache(maxsize=65_536)
def _valid_key(symbol: str, data_type: str, timeframe: str, max_bytes: int) -> bool:
    """Whether all three identifiers pass (memoized: a few hot series are most calls)."""
    return all(
        v and len(v.encode()) <= max_bytes and not CONTROL.search(v) and v == v.strip()
        for v in (symbol, data_type, timeframe)
    )


def series_key(msg: pb.SeriesKey, field: str, limits: Limits) -> SeriesKey:
    key = SeriesKey(msg.symbol, msg.data_type, msg.timeframe)
    if _valid_key(*key, limits.max_identifier_bytes):
        return key
    return SeriesKey(  # which one, and why
        identifier(key.symbol, f"{field}.symbol", limits),
        identifier(key.data_type, f"{field}.data_type", limits),
        identifier(key.timeframe, f"{field}.timeframe", limits),
    )


def timestamp(value: int, field: str, limits: Limits) -> int:
    if not limits.min_ts_ms <= value <= limits.max_ts_ms:
        raise InvalidArgument(
            field, f"{value} is outside [{limits.min_ts_ms}, {limits.max_ts_ms}] (epoch ms)"
        )
    return value


def json_error(value: str) -> str | None:
    """Why ``value`` is not one JSON value (RFC 8259), or None when it is.

    simdjson checks most payloads without building them, about ten times faster than
    the standard library; what it refuses and the standard library accepts (an integer
    past 64 bits, an exponent past a double's range, an escaped lone surrogate) is still
    JSON. NaN and Infinity are not.
    """
    try:
        _PARSERS.parser.parse(value)
    except (ValueError, RuntimeError):
        try:
            json.loads(value, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            return str(exc)
    return None


def payload(value: str, field: str, limits: Limits) -> str:
    """One JSON value, at most the payload limit in UTF-8 bytes; kept as given."""
    if len(value) * 4 > limits.max_payload_bytes and len(value.encode()) > limits.max_payload_bytes:
        raise InvalidArgument(field, f"longer than {limits.max_payload_bytes} bytes (UTF-8)")
    error = json_error(value)
    if error is not None:
        raise InvalidArgument(field, f"not valid JSON ({error})")
    return value


def series_list(messages: Sequence[pb.SeriesKey], field: str, limits: Limits) -> list[SeriesKey]:
    """One to ``max_series_per_call`` series keys, each valid (the series of a Read or a
    Subscribe)."""
    if not messages:
        raise InvalidArgument(field, "name at least one series")
    if len(messages) > limits.max_series_per_call:
        raise InvalidArgument(field, f"more than {limits.max_series_per_call} series in one call")
    return [series_key(m, f"{field}[{i}]", limits) for i, m in enumerate(messages)]


def write_request(
    req: pb.WriteRequest, limits: Limits, now_ms: Callable[[], int]
) -> list[tuple[SeriesKey, FieldRecords]]:
    """Series with their records, each one's answer field made from the bytes it came in
    (``codec.py``); a timestamp given twice in a series keeps the last payload."""
    if not req.series:
        raise InvalidArgument("series", "name at least one series")
    if len(req.series) > limits.max_series_per_call:
        raise InvalidArgument(
            "series", f"more than {limits.max_series_per_call} series in one call"
        )
    total = sum(len(s.records) for s in req.series)
    if total > limits.max_records_per_write:
        raise InvalidArgument(
            "series", f"{total} records in one call; at most {limits.max_records_per_write}"
        )
    req.DiscardUnknownFields()  # what is stored is sent again: only the contract's fields
    now = now_ms()
    seen: dict[SeriesKey, int] = {}
    batches = []
    parse, length = _PARSERS.parser.parse, encoding.length
    tag, small, small_limit = encoding.RECORDS, encoding.SMALL, encoding.SMALL_LIMIT
    for i, entry in enumerate(req.series):
        key = series_key(entry.series, f"series[{i}].series", limits)
        if key in seen:
            raise InvalidArgument(f"series[{i}].series", f"repeats series[{seen[key]}]")
        seen[key] = i
        if not entry.records:
            raise InvalidArgument(f"series[{i}].records", "must not be empty")
        stamps: list[int] = []
        texts: list[str] = []
        fields: list[bytes] = []
        low, high, most = limits.min_ts_ms, limits.max_ts_ms, limits.max_payload_bytes
        ascending, previous = True, low - 1
        for j, rec in enumerate(entry.records):
            given = rec.HasField("ts_ms")
            ts = rec.ts_ms if given else now
            text = rec.payload
            try:  # json_error's first step, inline: this loop runs for every record
                parse(text)
                valid = True
            except (ValueError, RuntimeError):
                valid = json_error(text) is None
            # The common case in a few operations; field names are built only for an error.
            if not (valid and low <= ts <= high) or len(text) * 4 > most:
                name = f"series[{i}].records[{j}]"
                timestamp(ts, f"{name}.ts_ms", limits)
                payload(text, f"{name}.payload", limits)
            stamps.append(ts)
            texts.append(text)
            if given:  # the record's field, from the bytes it came in (codec.field, inline)
                body = rec.SerializeToString()
                n = len(body)
                fields.append(tag + (small[n] if n < small_limit else length(n)) + body)
            else:
                fields.append(codec.encode(ts, text))
            ascending = ascending and ts > previous
            previous = ts
        if not ascending:  # a timestamp given twice keeps its last payload
            last = {ts: n for n, ts in enumerate(stamps)}
            order = [last[ts] for ts in sorted(last)]
            stamps = [stamps[n] for n in order]
            texts = [texts[n] for n in order]
            fields = [fields[n] for n in order]
        batches.append((key, FieldRecords(stamps, texts, fields)))
    return batches


def read_request(req: pb.ReadRequest, limits: Limits, now_ms: Callable[[], int]) -> ReadQuery:
    """The series and window of a Read; ``limit`` 0 shares the server's maximum among the series."""
    series = series_list(req.series, "series", limits)
    start = req.start_ms if req.HasField("start_ms") else None
    end = req.end_ms if req.HasField("end_ms") else None
    if req.last_days:
        if start is not None:
            raise InvalidArgument("last_days", "give either last_days or start_ms, not both")
        if req.last_days > MAX_DAYS:
            raise InvalidArgument("last_days", f"at most {MAX_DAYS}")
        start = now_ms() - req.last_days * DAY_MS
    if start is not None and end is not None and start > end:
        raise InvalidArgument("end_ms", f"{end} is before start_ms {start}")
    per_series_max = limits.max_read_records // len(series)
    if req.limit > per_series_max:
        raise InvalidArgument(
            "limit",
            f"{req.limit} x {len(series)} series is over {limits.max_read_records} records a call",
        )
    if req.order not in ORDERS:
        raise InvalidArgument("order", f"unknown value {req.order}")
    window = Window(
        start_ms=start,
        end_ms=end,
        limit=req.limit or per_series_max,
        newest_first=req.order == pb.ORDER_NEWEST_FIRST,
    )
    return ReadQuery(series, window)


def purge_request(req: pb.PurgeRequest, limits: Limits, now_ms: Callable[[], int]) -> PurgeFilter:
    if req.HasField("before_ms"):
        if req.older_than_days:
            raise InvalidArgument("older_than_days", "give either before_ms or older_than_days")
        before = req.before_ms
    else:
        if req.older_than_days > MAX_DAYS:
            raise InvalidArgument("older_than_days", f"at most {MAX_DAYS}")
        before = now_ms() - (req.older_than_days or DEFAULT_PURGE_DAYS) * DAY_MS
    return PurgeFilter(
        before_ms=before,
        symbol=identifier(req.symbol, "symbol", limits) if req.symbol else None,
        data_type=identifier(req.data_type, "data_type", limits) if req.data_type else None,
    )


def stats_request(req: pb.StatsRequest) -> int:
    """How many hot symbols to list."""
    if req.top_n > MAX_TOP_N:
        raise InvalidArgument("top_n", f"at most {MAX_TOP_N}")
    return req.top_n or DEFAULT_TOP_N
