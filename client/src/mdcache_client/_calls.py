"""What each call sends and how its answer is read, shared by both client flavours."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from mdcache.v1 import cache_pb2 as pb
from mdcache_client._types import HotTierStats, MethodCalls, ReadResult, Record, Series, Stats

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Call(Generic[R]):
    """A method name, its request, and the function that turns its response into ``R``."""

    method: str
    request: Any
    result: Callable[[Any], R]


def _key(series: Series) -> pb.SeriesKey:
    return pb.SeriesKey(
        symbol=series.symbol, data_type=series.data_type, timeframe=series.timeframe
    )


def _records(msgs: Iterable[pb.Record]) -> list[Record]:
    return [Record(m.ts_ms, m.payload) for m in msgs]


def write(batches: Mapping[Series, Iterable[Record]]) -> Call[int]:
    request = pb.WriteRequest()
    for series, records in batches.items():
        entry = request.series.add(series=_key(series))
        for r in records:
            entry.records.add(payload=r.payload) if r.ts_ms is None else entry.records.add(
                ts_ms=r.ts_ms, payload=r.payload
            )
    return Call("Write", request, lambda resp: int(resp.written))


# Read(adjust=): prices as stored, forward-adjusted (qfq) or backward-adjusted (hfq)
_ADJUST = {
    "": pb.ADJUST_UNSPECIFIED,
    "none": pb.ADJUST_NONE,
    "forward": pb.ADJUST_FORWARD,
    "qfq": pb.ADJUST_FORWARD,
    "backward": pb.ADJUST_BACKWARD,
    "hfq": pb.ADJUST_BACKWARD,
}


# Read(consistency=): the server's default, bounded freshness, or every acknowledged Write
_CONSISTENCY = {
    "": pb.CONSISTENCY_UNSPECIFIED,
    "bounded": pb.CONSISTENCY_BOUNDED,
    "strict": pb.CONSISTENCY_STRICT,
}


def read(
    series: Iterable[Series],
    *,
    start_ms: int | None,
    end_ms: int | None,
    last_days: int,
    limit: int,
    newest_first: bool,
    resample: str = "",
    adjust: str = "",
    adjust_factors: Series | None = None,
    as_of_ms: int | None = None,
    adjust_volume: bool = False,
    consistency: str = "",
) -> Call[list[ReadResult]]:
    if adjust not in _ADJUST:
        raise ValueError(f"adjust: {adjust!r} is none of {', '.join(map(repr, _ADJUST))}")
    if consistency not in _CONSISTENCY:
        raise ValueError(f"consistency: {consistency!r} is none of {', '.join(_CONSISTENCY)}")
    request = pb.ReadRequest(
        series=[_key(s) for s in series],
        start_ms=start_ms,
        end_ms=end_ms,
        last_days=last_days,
        limit=limit,
        order=pb.ORDER_NEWEST_FIRST if newest_first else pb.ORDER_OLDEST_FIRST,
        resample=resample,
        adjust=_ADJUST[adjust],
        adjust_as_of_ms=as_of_ms,
        adjust_factors=None if adjust_factors is None else _key(adjust_factors),
        adjust_volume=adjust_volume,
        consistency=_CONSISTENCY[consistency],
    )

    def result(resp: pb.ReadResponse) -> list[ReadResult]:
        return [
            ReadResult(
                Series(r.series.symbol, r.series.data_type, r.series.timeframe),
                r.hit,
                _records(r.records),
                r.truncated,
                Series(r.source.symbol, r.source.data_type, r.source.timeframe)
                if r.HasField("source")
                else None,
                r.partial,
            )
            for r in resp.results
        ]

    return Call("Read", request, result)


def purge(*, before_ms: int | None, older_than_days: int, symbol: str, data_type: str) -> Call[int]:
    request = pb.PurgeRequest(
        before_ms=before_ms, older_than_days=older_than_days, symbol=symbol, data_type=data_type
    )
    return Call("Purge", request, lambda resp: int(resp.deleted))


def stats(top_n: int, reset: bool) -> Call[Stats]:
    def result(resp: pb.StatsResponse) -> Stats:
        return Stats(
            records=resp.records,
            symbols=resp.symbols,
            series=resp.series,
            hits=resp.hits,
            misses=resp.misses,
            hit_rate=resp.hit_rate,
            hot_symbols={h.symbol: h.reads for h in resp.hot_symbols},
            uptime_seconds=resp.uptime_seconds,
            store=resp.store,
            store_version=resp.store_version,
            counting_since_ms=resp.counting_since_ms,
            hot_tier=HotTierStats(
                enabled=resp.hot_tier.enabled,
                bytes=resp.hot_tier.bytes,
                capacity_bytes=resp.hot_tier.capacity_bytes,
                series=resp.hot_tier.series,
                hits=resp.hot_tier.hits,
                misses=resp.hot_tier.misses,
                evictions=resp.hot_tier.evictions,
            ),
            evicted_series=resp.evicted_series,
            evicted_records=resp.evicted_records,
            replicas=resp.replicas,
            retention={r.data_type: r.days for r in resp.retention},
            calls={c.method: MethodCalls(c.calls, c.errors) for c in resp.calls},
            resampled_reads=resp.resampled_reads,
        )

    return Call("Stats", pb.StatsRequest(top_n=top_n, reset=reset), result)
