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

from collections.abc import Callable, Sequence

from mdcache.v1 import cache_pb2 as pb
from mdcache_server.cache.hot import HeldRecords
from mdcache_server.cache.policy import Reader
from mdcache_server.errors import InvalidArgument
from mdcache_server.model import Limits, ReadQuery, Record, SeriesKey, SeriesRead, Window
from mdcache_server.resample import timeframe
from mdcache_server.resample.bars import Bars, Fields, bucket_start, numbers_suffice, resample
from mdcache_server.resample.calendar import Calendar
from mdcache_server.resample.parsed import ParsedFields
from mdcache_server.resample.rules import Resampling
from mdcache_server.resample.timeframe import Timeframe
from mdcache_server.wire.codec import EncodedRecords, FieldRecords
from mdcache_server.wire.encoding import RECORD_OVERHEAD, RESULTS, varint


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


def _held_fields(
    parsed: ParsedFields | None, key: pb.SeriesKey, found: SeriesRead, field: str
) -> Fields | None:
    """The fields of a window of a held series, cut from those parsed for its held copy
    (ascending); None when not held, or not parsed."""
    records = found.records
    if parsed is None or found.held is None or not isinstance(records, HeldRecords):
        return None
    ts, payloads, picked = records.whole()
    if not picked:
        return None
    series = SeriesKey(key.symbol, key.data_type, key.timeframe)
    fields = parsed.of(series, found.held, ts, payloads, field)
    if fields is None:
        return None
    lo, hi = min(picked[0], picked[-1]), max(picked[0], picked[-1]) + 1
    return fields.cut(lo, hi)


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


def source_window(
    target: Timeframe,
    sources: list[Timeframe],
    calendars: list[Calendar],
    window: Window,
    limit: int,
    bars: bool = False,
) -> Window:
    """The window of the source series: from the start of the bucket holding ``start_ms``
    (the earliest among the series), so that the first bar is whole; ``bars``: the
    bars' numbers kept at write time do (``Window.bars``)."""
    start = window.start_ms
    if start is not None:
        start = min(
            bucket_start(start, source, target, calendar)
            for source, calendar in zip(sources, calendars, strict=True)
        )
    return Window(start, window.end_ms, limit=limit, newest_first=window.newest_first, bars=bars)


def _kept_fields(
    found: SeriesRead, newest_first: bool, summed: frozenset[str], field: str
) -> Fields | None:
    """The fields of a window the store answered with its bars' numbers (ascending)."""
    bars = found.bars
    if bars is None:
        return None
    return Fields.from_numbers(bars.reversed() if newest_first else bars, summed, field)


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
    cache: Reader,
    message: pb.ReadRequest,
    query: ReadQuery,
    resampling: Resampling,
    limits: Limits,
    parsed: ParsedFields | None = None,
    adjust: Callable[[int, Fields], Fields] | None = None,
) -> tuple[bytes, int, list[SeriesRead]]:
    """The answer to a resampled Read, its bars, and the source reads it was made of;
    ``adjust(i, fields)``: series ``i``'s bars adjusted before they are resampled."""
    target, sources = _timeframes(message, query)
    window = query.window
    share = limits.max_read_records // len(query.series)
    calendars = [resampling.calendar_for(key.symbol) for key in query.series]
    kept = numbers_suffice(resampling.summed)
    found = await cache.read(
        query.series, source_window(target, sources, calendars, window, share, kept)
    )
    budget = limits.max_response_bytes - sum(64 + 2 * k.ByteSize() for k in message.series)
    parts, rows = [], 0
    for i, (key, source, calendar, read_) in enumerate(
        zip(message.series, sources, calendars, found, strict=True)
    ):
        fields = _held_fields(parsed, key, read_, f"series[{i}]")
        if fields is None:
            fields = _kept_fields(read_, window.newest_first, resampling.summed, f"series[{i}]")
        payloads: list[str] = []
        if fields is not None:
            ts = fields.ts
        else:
            ts, payloads = _columns(read_.records)
            if window.newest_first:
                ts, payloads = ts[::-1], payloads[::-1]
        if adjust is not None and ts:
            if fields is None:
                fields = Fields(ts, payloads, resampling.summed, f"series[{i}]")
            fields = adjust(i, fields)
        cut = ("start" if window.newest_first else "end") if read_.truncated else ""
        bars = resample(
            ts,
            payloads,
            source,
            target,
            calendar,
            resampling.summed,
            field=f"series[{i}]",
            since_ms=window.start_ms,
            cut=cut,
            parsed=fields,
        )
        if cut and not bars.records:
            raise InvalidArgument(
                "resample",
                f"series[{i}]: a {target} bar holds more than the {share} source bars a call "
                "may read (MDCACHE_MAX_READ_RECORDS, shared among its series): resample a "
                "coarser series, or fewer series at once",
            )
        part, n, budget = result(key, message.resample, bars, window, read_.truncated, budget)
        parts.append(part)
        rows += n
    return b"".join(parts), rows, found
