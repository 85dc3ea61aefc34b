"""Bad input: INVALID_ARGUMENT naming the field, for every RPC, and nothing stored."""

from __future__ import annotations

import grpc
import pytest

from mdcache.v1 import cache_pb2 as pb
from mdcache.v1 import cache_pb2_grpc as pb_grpc
from mdcache_server.app import Server

SERIES = pb.SeriesKey(symbol="600519", data_type="kline", timeframe="1d")
OK_RECORD = pb.Record(ts_ms=1, payload="1")


def write(*entries: pb.SeriesRecords) -> pb.WriteRequest:
    return pb.WriteRequest(series=list(entries))


CASES = [
    ("Write", write(), "series: name at least one series"),
    (
        "Write",
        write(
            pb.SeriesRecords(series=SERIES, records=[OK_RECORD]),
            pb.SeriesRecords(series=SERIES, records=[OK_RECORD]),
        ),
        "series[1].series: repeats series[0]",
    ),
    (
        "Write",
        write(pb.SeriesRecords(series=SERIES, records=[pb.Record(ts_ms=1, payload="Infinity")])),
        "series[0].records[0].payload: not valid JSON",
    ),
    (
        "Write",
        write(pb.SeriesRecords(series=SERIES, records=[pb.Record(ts_ms=1, payload="[" * 50_000)])),
        "series[0].records[0].payload: not valid JSON",
    ),
    (
        "Write",
        write(
            pb.SeriesRecords(
                series=pb.SeriesKey(symbol="60\x0019", data_type="k", timeframe="1d"),
                records=[OK_RECORD],
            )
        ),
        "series[0].series.symbol: must not contain control characters",
    ),
    ("Read", pb.ReadRequest(), "series: name at least one series"),
    (
        "Read",
        pb.ReadRequest(series=[pb.SeriesKey(symbol=" 600519", data_type="k", timeframe="1d")]),
        "series[0].symbol: must not start or end with white space",
    ),
    ("Read", pb.ReadRequest(series=[pb.SeriesKey()]), "series[0].symbol: must not be empty"),
    (
        "Read",
        pb.ReadRequest(series=[SERIES], start_ms=10, end_ms=9),
        "end_ms: 9 is before start_ms 10",
    ),
    (
        "Read",
        pb.ReadRequest(series=[SERIES], start_ms=10, last_days=1),
        "last_days: give either last_days or start_ms, not both",
    ),
    ("Read", pb.ReadRequest(series=[SERIES], last_days=400_000), "last_days: at most 365000"),
    (
        "Read",
        pb.ReadRequest(series=[SERIES, SERIES], limit=50_001),
        "limit: 50001 x 2 series is over 100000 records a call",
    ),
    ("Read", pb.ReadRequest(series=[SERIES], order=7), "order: unknown value 7"),
    (
        "Purge",
        pb.PurgeRequest(before_ms=5, older_than_days=1),
        "older_than_days: give either before_ms or older_than_days",
    ),
    (
        "Purge",
        pb.PurgeRequest(symbol="x" * 65),
        "symbol: longer than 64 bytes (UTF-8)",
    ),
    ("Stats", pb.StatsRequest(top_n=1001), "top_n: at most 1000"),
]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("method", "request_", "details"), CASES)
async def test_bad_request_is_invalid_argument_naming_the_field(
    server: Server, method: str, request_: object, details: str
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.MarketDataCacheStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await getattr(stub, method)(request_, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (caught.value.details() or "").startswith(details)
        stats = await stub.Stats(pb.StatsRequest(), timeout=10)
        assert stats.records == 0


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_too_many_records_in_one_write(server: Server) -> None:
    limit = server.config.limits.max_records_per_write
    records = [pb.Record(ts_ms=i, payload="0") for i in range(limit + 1)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.MarketDataCacheStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Write(write(pb.SeriesRecords(series=SERIES, records=records)), timeout=30)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details() == f"series: {limit + 1} records in one call; at most {limit}"
