"""The load generator's side of the wire: requests serialized once, answers left as bytes.

The generator sends pre-serialized requests and does not parse the answers (a channel
method without serializers passes bytes), so that on a 2-core machine as little as
possible of its CPU is spent besides what gRPC itself needs, and the same for mdcache
and the floor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc

from mdcache.v1 import cache_pb2 as pb
from mdcache_client import Record, Series

MAX_MESSAGE = 64 * 1024 * 1024
READ = "/mdcache.v1.MarketDataCache/Read"
WRITE = "/mdcache.v1.MarketDataCache/Write"
RawCall = Callable[[bytes], Awaitable[bytes]]


def channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        target, options=[("grpc.max_receive_message_length", MAX_MESSAGE)]
    )


def raw(chan: grpc.aio.Channel, method: str, timeout: float = 30.0) -> RawCall:
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = chan.unary_unary(method)
    # no serializers: bytes in, bytes out

    async def send(request: bytes) -> bytes:
        return await call(request, timeout=timeout)

    return send


def key(series: Series) -> pb.SeriesKey:
    return pb.SeriesKey(
        symbol=series.symbol, data_type=series.data_type, timeframe=series.timeframe
    )


def latest(series: Series) -> bytes:
    """A Read of the newest record of a series."""
    return pb.ReadRequest(
        series=[key(series)], order=pb.ORDER_NEWEST_FIRST, limit=1
    ).SerializeToString()


def window(series: Series, start_ms: int, end_ms: int, limit: int) -> bytes:
    """A Read of a window (inclusive), oldest first, at most ``limit`` records."""
    return pb.ReadRequest(
        series=[key(series)], start_ms=start_ms, end_ms=end_ms, limit=limit
    ).SerializeToString()


def write(batches: dict[Series, list[Record]]) -> bytes:
    request = pb.WriteRequest()
    for series, records in batches.items():
        entry = request.series.add(series=key(series))
        for r in records:
            entry.records.add(ts_ms=r.ts_ms, payload=r.payload)
    return request.SerializeToString()


def records_in(read_answer: bytes) -> int:
    return sum(len(r.records) for r in pb.ReadResponse.FromString(read_answer).results)
