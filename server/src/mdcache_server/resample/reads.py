"""A Read with ``resample``: the named series' bars made into bars of a coarser timeframe.

The window selects the new bars whose buckets hold a bar of the series in it, each made
of all its bars up to ``end_ms`` (so the first bar is whole, and the last may be
partial); ``limit`` and ``order`` apply to the new bars. The series is read through the
cache policy like any Read (the hot tier, counted), widened at the start by a bucket so
that the first bucket is read whole. At most the Read's share of
``MDCACHE_MAX_READ_RECORDS`` source records are read per series; past that the answer
ends at the last whole bar and is marked ``truncated``, and the caller pages on.
"""

from __future__ import annotations

from collections.abc import Sequence

from mdcache.v1 import cache_pb2 as pb
from mdcache_server.cache.hot import HeldRecords
from mdcache_server.cache.policy import CachePolicy
from mdcache_server.codec import EncodedRecords, FieldRecords, varint
from mdcache_server.errors import InvalidArgument
from mdcache_server.model import DAY_MS, Limits, Record, SeriesRead, Window
from mdcache_server.resample import timeframe
from mdcache_server.resample.bars import Bars, resample
from mdcache_server.resample.rules import Resampling
from mdcache_server.resample.timeframe import Timeframe, Unit
from mdcache_server.service.validation import ReadQuery
from mdcache_server.service.wire import RESULTS

RECORD_OVERHEAD = 16  # bytes a record adds besides its payload: tags, lengths, ts_ms
# How far before the window's start a bucket that reaches into it may begin (and a day
# more, for daily bars stamped at 00:00 UTC).
MARGIN_MS = {Unit.MINUTES: 2 * DAY_MS, Unit.DAY: 2 * DAY_MS, Unit.WEEK: 9 * DAY_MS}
MONTH_MARGIN_MS = 33 * DAY_MS


def _columns(records: Sequence[Record]) -> tuple[list[int], list[str]]:
    """Timestamps and payloads of records, as the reads keep them."""
    if isinstance(records, HeldRecords):
        return records.columns()
    if isinstance(records, EncodedRecords):  # one run of SeriesResult.records: parsed by upb
        found = pb.SeriesResult.FromString(records.data).records
        return [r.ts_ms for r in found], [r.payload for r in found]
    if isinstance(records, FieldRecords):
        return records.ts, records.payloads
    return [r.ts_ms for r in records], [r.payload for r in records]


def _timeframes(message: pb.ReadRequest, query: ReadQuery) -> tuple[Timeframe, list[Timeframe]]:
    target = timeframe.parse(message.resample)
    if target is None:
        raise InvalidArgument(
            "resample", f"{message.resample!r} is not a timeframe: Nm, Nh, 1d, 1w or 1M"
        )
    sources = []
    for i, key in enumerate(query.series):
        source = timeframe.parse(key.timeframe)
        if source is None:
            raise InvalidArgument(
                f"series[{i}].timeframe",
                f"{key.timeframe!r} cannot be resampled: not Nm, Nh, 1d or 1w",
            )
        why = timeframe.why_not_coarser(source, target)
        if why is not None:
            raise InvalidArgument("resample", f"series[{i}]: {why}")
        sources.append(source)
    return target, sources


def source_window(target: Timeframe, window: Window, limits: Limits, limit: int) -> Window:
    start = window.start_ms
    if start is not None:
        start = max(start - MARGIN_MS.get(target.unit, MONTH_MARGIN_MS), limits.min_ts_ms)
    return Window(start, window.end_ms, limit=limit, newest_first=window.newest_first)


def _cut(bars: Bars, found: SeriesRead, newest_first: bool) -> Bars:
    """Drops the bar a truncated read may have cut short (at the end it was cut)."""
    records, partial = bars.records, bars.partial
    if found.truncated and len(records) > 1:
        if newest_first:
            records = records[1:]
        else:
            records, partial = records[:-1], False
    return Bars(records, partial)


def result(
    key: pb.SeriesKey,
    resample_to: str,
    bars: Bars,
    window: Window,
    truncated: bool,
    budget: int,
) -> tuple[bytes, int, int]:
    """One ``ReadResponse.results`` field of resampled bars; its rows and the budget left."""
    records = bars.records[::-1] if window.newest_first else bars.records
    partial = bars.partial
    if 0 < window.limit < len(records):
        records, truncated = records[: window.limit], True
        partial = partial and window.newest_first
    kept, size = 0, 0
    for _, payload in records:
        size += len(payload.encode()) + RECORD_OVERHEAD
        if size > budget:
            break
        kept += 1
    if kept < len(records):
        records, truncated = records[:kept], True
        partial = partial and window.newest_first
    message = pb.SeriesResult(
        series=pb.SeriesKey(symbol=key.symbol, data_type=key.data_type, timeframe=resample_to),
        hit=bool(bars.records),
        truncated=truncated,
        source=key,
        partial=partial and bool(records),
    )
    add = message.records.add
    for ts, payload in records:
        add(ts_ms=ts, payload=payload)
    body = message.SerializeToString()
    return RESULTS + varint(len(body)) + body, len(records), max(budget - len(body), 0)


async def read(
    cache: CachePolicy,
    message: pb.ReadRequest,
    query: ReadQuery,
    resampling: Resampling,
    limits: Limits,
) -> tuple[bytes, int, list[SeriesRead]]:
    """The answer to a resampled Read, its bars, and the source reads it was made of."""
    target, sources = _timeframes(message, query)
    window = query.window
    share = limits.max_read_records // len(query.series)
    found = await cache.read(query.series, source_window(target, window, limits, share))
    budget = limits.max_response_bytes - sum(64 + 2 * k.ByteSize() for k in message.series)
    parts, rows = [], 0
    for i, (key, source, read_) in enumerate(zip(message.series, sources, found, strict=True)):
        ts, payloads = _columns(read_.records)
        if window.newest_first:
            ts, payloads = ts[::-1], payloads[::-1]
        bars = resample(
            ts,
            payloads,
            source,
            target,
            resampling.calendar_for(key.symbol),
            resampling.summed,
            field=f"series[{i}]",
            since_ms=window.start_ms,
        )
        bars = _cut(bars, read_, window.newest_first)
        part, n, budget = result(key, message.resample, bars, window, read_.truncated, budget)
        parts.append(part)
        rows += n
    return b"".join(parts), rows, found
