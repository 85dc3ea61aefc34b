"""A Read with ``adjust``: bars with adjusted prices, computed when asked.

The factors are a series of their own (by default the same symbol's ``adj_factor``/``1d``),
read whole through the cache policy like any Read: a new factor record is seen as any
write is (on every replica), no stored bar changes, and an answer remembered from held
copies (``service/answers.py``) names the factor series' copies too, so it is not answered
again once they change. The math is ``resample/adjust.py``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mdcache.v1 import cache_pb2 as pb
from mdcache_server.cache.policy import Reader
from mdcache_server.errors import InvalidArgument, Unadjustable
from mdcache_server.model import Limits, ReadQuery, Record, SeriesKey, SeriesRead, Window
from mdcache_server.resample.adjust import Adjust, Adjustment, Factors
from mdcache_server.resample.bars import Fields
from mdcache_server.service.validation import identifier

DATA_TYPE = "adj_factor"  # the factor series of a symbol, by convention
TIMEFRAME = "1d"
MODES = {pb.ADJUST_FORWARD: Adjust.FORWARD, pb.ADJUST_BACKWARD: Adjust.BACKWARD}
NONE = (pb.ADJUST_UNSPECIFIED, pb.ADJUST_NONE)


@dataclass(frozen=True, slots=True)
class Asked:
    """What an adjusted Read asks for: the mode, the as-of time, each series' factors."""

    mode: Adjust
    as_of_ms: int | None
    factors: list[SeriesKey]  # of each series, in order
    volume: bool


def asked(message: pb.ReadRequest, query: ReadQuery, limits: Limits) -> Asked | None:
    """The adjustment a Read asks for (None: none); InvalidArgument naming the field."""
    if message.adjust in NONE:
        for name in ("adjust_as_of_ms", "adjust_factors"):
            if message.HasField(name):
                raise InvalidArgument(name, "given without adjust (forward or backward)")
        if message.adjust_volume:
            raise InvalidArgument("adjust_volume", "given without adjust (forward or backward)")
        return None
    mode = MODES.get(message.adjust)
    if mode is None:
        raise InvalidArgument("adjust", f"unknown value {message.adjust}")
    as_of = message.adjust_as_of_ms if message.HasField("adjust_as_of_ms") else None
    if as_of is not None:
        if mode is not Adjust.FORWARD:
            raise InvalidArgument("adjust_as_of_ms", "only forward adjustment has an as-of time")
        if not limits.min_ts_ms <= as_of <= limits.max_ts_ms:
            raise InvalidArgument("adjust_as_of_ms", f"{as_of} is outside the timestamps stored")
    elif mode is Adjust.FORWARD:
        as_of = query.window.end_ms  # None: the latest factor
    given = message.adjust_factors
    for name in ("symbol", "data_type", "timeframe"):
        if getattr(given, name):
            identifier(getattr(given, name), f"adjust_factors.{name}", limits)
    data_type, timeframe = given.data_type or DATA_TYPE, given.timeframe or TIMEFRAME
    factors = []
    for i, key in enumerate(query.series):
        factor_key = SeriesKey(given.symbol or key.symbol, data_type, timeframe)
        if factor_key == key:
            raise InvalidArgument("adjust_factors", f"series[{i}] cannot be its own factor series")
        factors.append(factor_key)
    return Asked(mode, as_of, factors, message.adjust_volume)


async def adjustments(
    cache: Reader, asked: Asked, limits: Limits
) -> tuple[list[Adjustment | None], list[SeriesKey], list[SeriesRead]]:
    """Each series' adjustment (None: its factor series holds no record), and the factor
    series read (each once, whole) with what was found, for the answer to depend on."""
    keys = list(dict.fromkeys(asked.factors))
    found = await cache.read(keys, Window(limit=limits.max_read_records))
    by_key: dict[SeriesKey, Adjustment | None] = {}
    for key, read in zip(keys, found, strict=True):
        if read.truncated:
            raise InvalidArgument(
                "adjust_factors",
                f"{'/'.join(key)} holds more than {limits.max_read_records} factor records "
                "(MDCACHE_MAX_READ_RECORDS)",
            )
        ts, payloads = [r.ts_ms for r in read.records], [r.payload for r in read.records]
        if not ts:
            by_key[key] = None
            continue
        factors = Factors.parse(ts, payloads, "adjust_factors", "/".join(key))
        by_key[key] = Adjustment.of(asked.mode, factors, asked.as_of_ms, asked.volume)
    return [by_key[key] for key in asked.factors], keys, found


def needed(adjustment: Adjustment | None, key: SeriesKey, asked: Asked, i: int) -> Adjustment:
    """The adjustment of series ``i`` that has bars; Unadjustable when it has no factors."""
    if adjustment is None:
        factor_key = asked.factors[i]
        raise Unadjustable(
            "adjust_factors",
            f"series[{i}] {'/'.join(key)} has bars but its factor series "
            f"{'/'.join(factor_key)} holds no record: write its factors (mdcache load), or "
            "name another series in adjust_factors",
        )
    return adjustment


def fields_adjuster(
    adjustments: Sequence[Adjustment | None], asked: Asked, series: Sequence[SeriesKey]
) -> Callable[[int, Fields], Fields]:
    """For a resampled Read: series ``i``'s parsed bars, adjusted (before resampling)."""

    def adjust(i: int, fields: Fields) -> Fields:
        return needed(adjustments[i], series[i], asked, i).fields(fields)

    return adjust


def adjusted(
    results: Sequence[SeriesRead],
    adjustments: Sequence[Adjustment | None],
    asked: Asked,
    series: Sequence[SeriesKey],
) -> list[SeriesRead]:
    """Plain reads with their bars' prices adjusted (records in the same order)."""
    out = []
    for i, (read, adjustment, key) in enumerate(zip(results, adjustments, series, strict=True)):
        if not read.records:
            out.append(read)
            continue
        adjust = needed(adjustment, key, asked, i)
        ts = [r.ts_ms for r in read.records]
        payloads = adjust.payloads(ts, [r.payload for r in read.records], f"series[{i}]")
        records = [Record(t, p) for t, p in zip(ts, payloads, strict=True)]
        out.append(SeriesRead(records, read.truncated, held=read.held))
    return out
