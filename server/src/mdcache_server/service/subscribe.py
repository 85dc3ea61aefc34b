"""One Subscribe stream: validate, replay (from the store, or the hub's ring), then live."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from mdcache.v1 import cache_pb2 as pb
from mdcache_server.cache.policy import CachePolicy
from mdcache_server.errors import InvalidArgument, ResumeLost
from mdcache_server.live.delivery import Delivery
from mdcache_server.live.hub import Published
from mdcache_server.model import Limits, Record, SeriesKey, Window
from mdcache_server.service import validation


def _key(series: SeriesKey) -> pb.SeriesKey:
    return pb.SeriesKey(
        symbol=series.symbol, data_type=series.data_type, timeframe=series.timeframe
    )


def _message(stream: str, series: SeriesKey, record: Record, seq: int) -> pb.SubscribeResponse:
    return pb.SubscribeResponse(
        series=_key(series),
        record=pb.Record(ts_ms=record.ts_ms, payload=record.payload),
        seq=seq,
        stream=stream,
        replayed=seq == 0,
    )


def parse(request: pb.SubscribeRequest, limits: Limits) -> tuple[list[SeriesKey], str]:
    if request.symbol and request.series:
        raise InvalidArgument("symbol", "give series or a symbol, not both")
    if request.symbol:
        validation.identifier(request.symbol, "symbol", limits)
        if request.HasField("since_ms"):
            raise InvalidArgument("since_ms", "replay needs series, not a symbol")
        return [], request.symbol
    series = validation.series_list(request.series, "series", limits)
    if request.HasField("since_ms"):
        validation.timestamp(request.since_ms, "since_ms", limits)
    return series, ""


async def serve(
    live: Delivery,
    cache: CachePolicy,
    request: pb.SubscribeRequest,
    limits: Limits,
    opened: Callable[[], Awaitable[None]],
) -> AsyncIterator[pb.SubscribeResponse]:
    """The stream's messages: replayed ones first (``seq`` 0), then each change live.

    ``opened`` is awaited once the stream follows its series (the servicer sends the
    response headers then): a client that waits for them misses no later write.
    """
    series, symbol = parse(request, limits)
    hub = live.hub
    stream = hub.open(series, symbol)
    epoch = hub.epoch
    try:
        missed = hub.since(stream, request.resume_after) if request.resume_stream else None
        await live.ready()  # every replica's writes from here on reach the stream
        await opened()
        seen: dict[tuple[SeriesKey, int], str] = {}
        horizon: asyncio.Future[int] | None = None
        if request.resume_stream:
            if request.resume_stream != epoch:
                raise ResumeLost("resume_stream: another server process (restarted?)")
            if missed is None:
                raise ResumeLost(f"resume_after: change {request.resume_after} is no longer held")
            for change in missed:  # taken with open(): the buffer starts right after
                yield _message(epoch, change.series, change.record, change.seq)
        elif request.HasField("since_ms"):
            results = await cache.read(series, Window(start_ms=request.since_ms), strict=True)
            horizon = live.horizon()  # changes up to it may be in what was read
            held = sorted(
                ((r.ts_ms, i, r) for i, result in enumerate(results) for r in result.records),
                key=lambda t: (t[0], t[1]),
            )
            for _, i, record in held:
                seen[(series[i], record.ts_ms)] = record.payload
                yield _message(epoch, series[i], record, 0)
        while True:
            change = await stream.next()
            if horizon is not None and _early(horizon, change) and _already(seen, change):
                continue
            yield _message(epoch, change.series, change.record, change.seq)
    finally:
        hub.close(stream)


def _early(horizon: asyncio.Future[int], change: Published) -> bool:
    """Whether the change may have been acknowledged before the replay's read."""
    return not horizon.done() or change.seq <= horizon.result()


def _already(seen: dict[tuple[SeriesKey, int], str], change: Published) -> bool:
    return seen.get((change.series, change.record.ts_ms)) == change.record.payload
