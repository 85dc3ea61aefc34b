"""``python -m bench.micro``: what each piece of a Read and a Write costs, in-process.

The pieces the server runs for one call, timed one by one on the real bars with the
server's own functions, beside cheaper ways to do the same (which bench/PROFILE.md
proposes). Microseconds per call, best of several repeats (the least disturbed by
other work on the machine).
"""

from __future__ import annotations

import io
import json
import logging
import sys
import timeit
from collections.abc import Callable
from typing import Any

import structlog

from bench import data
from bench.data import HOT_SERIES, YEAR
from mdcache.v1 import cache_pb2 as pb
from mdcache_server.cache.hot import HeldSeries
from mdcache_server.metrics import Metrics
from mdcache_server.model import Limits
from mdcache_server.model import Record as StoreRecord
from mdcache_server.service import validation
from mdcache_server.service.responses import read_response

orjson: Any
try:
    import orjson
except ImportError:  # measured only when installed
    orjson = None


def best_us(fn: Callable[[], object], number: int, repeat: int = 5) -> float:
    number = max(number, 1)
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def _encoded_record(ts: int, payload: str) -> bytes:
    """One ``records`` entry of a SeriesResult (field 3), serialized once."""
    body = pb.Record(ts_ms=ts, payload=payload).SerializeToString()
    return b"\x1a" + _varint(len(body)) + body


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def run(quick: bool = False) -> dict[str, float]:
    bars = data.a_shares()
    records = [StoreRecord(r.ts_ms or 0, r.payload) for r in bars[HOT_SERIES]]
    first, last = data.year_window(bars[HOT_SERIES])
    limits = Limits()
    key = pb.SeriesKey(symbol=HOT_SERIES.symbol, data_type="kline", timeframe="1d")
    req = pb.ReadRequest(series=[key], start_ms=first, end_ms=last, limit=YEAR)
    query = validation.read_request(req, limits, lambda: 0)
    held = HeldSeries.of(records, loaded_at=0.0)
    got = held.window(query.window)
    assert len(got.records) == YEAR
    response = read_response(req.series, [got], limits.max_response_bytes)
    out: dict[str, float] = {}
    n = 200 if quick else 2000

    out["read: validation.read_request"] = best_us(
        lambda: validation.read_request(req, limits, lambda: 0), n
    )
    out["read 250: HeldSeries.window (250 Record tuples)"] = best_us(
        lambda: held.window(query.window), n
    )
    out["read 250: read_response (250 pb.Record built)"] = best_us(
        lambda: read_response(req.series, [got], limits.max_response_bytes), n // 4
    )
    out["read 250: ReadResponse.SerializeToString (in grpc)"] = best_us(
        response.SerializeToString, n
    )
    out["read 250: ReadRequest parse (in grpc)"] = best_us(
        lambda: pb.ReadRequest.FromString(req.SerializeToString()), n
    )

    # Cheaper: per-record pb.Record messages cached in the hot tier, extended in.
    cached = [pb.Record(ts_ms=r.ts_ms, payload=r.payload) for r in records]
    lo = held.ts.index(first)

    def extend_cached() -> pb.ReadResponse:
        resp = pb.ReadResponse()
        item = resp.results.add(hit=True)
        item.series.CopyFrom(key)
        item.records.extend(cached[lo : lo + YEAR])
        return resp

    out["read 250: alt, extend cached pb.Record messages"] = best_us(extend_cached, n // 4)

    # Cheaper still: each record serialized once when held; an answer is a join of bytes.
    encoded = [_encoded_record(r.ts_ms, r.payload) for r in records]
    head = pb.SeriesResult(series=key, hit=True).SerializeToString()

    def join_bytes() -> bytes:
        body = head + b"".join(encoded[lo : lo + YEAR])
        return b"\x0a" + _varint(len(body)) + body

    joined = join_bytes()
    assert pb.ReadResponse.FromString(joined) == response, "pre-serialized answer differs"
    out["read 250: alt, join pre-serialized records (no message built)"] = best_us(join_bytes, n)

    # One log event per call, as the server configures structlog (JSON lines).
    sink = io.StringIO()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(sink),
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger("mdcache.rpc")
    fields: dict[str, Any] = {"series": "600519.SH/kline/1d", "rows": 250}

    def log_event() -> None:
        log.info("rpc", method="Read", status="OK", duration_ms=0.123, **fields)
        sink.seek(0)
        sink.truncate()

    out["per call: structlog JSON event (stdlib json)"] = best_us(log_event, n)
    if orjson is not None:
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(serializer=orjson.dumps),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            logger_factory=structlog.BytesLoggerFactory(io.BytesIO()),
            cache_logger_on_first_use=False,
        )
        fast = structlog.get_logger("mdcache.rpc")
        out["per call: alt, structlog event with orjson + BytesLogger"] = best_us(
            lambda: fast.info("rpc", method="Read", status="OK", duration_ms=0.1, **fields), n
        )
    metrics = Metrics()

    def observe() -> None:
        metrics.call("Read", "OK", 0.001)
        metrics.reads([True])

    out["per call: prometheus counters + histogram"] = best_us(observe, n)

    # Writes: validation of a 1,000-row WriteRequest (json.loads of every payload).
    write = pb.WriteRequest()
    entry = write.series.add(series=key)
    for r in records[:1000]:
        entry.records.add(ts_ms=r.ts_ms, payload=r.payload)
    out["write 1000: validation.write_request (json.loads each payload)"] = best_us(
        lambda: validation.write_request(write, limits, lambda: 0), n // 100
    )
    payloads = [r.payload for r in records[:1000]]
    out["write 1000: json.loads alone"] = best_us(
        lambda: [json.loads(p) for p in payloads], n // 100
    )
    if orjson is not None:
        loads = orjson.loads
        out["write 1000: alt, orjson.loads alone"] = best_us(
            lambda: [loads(p) for p in payloads], n // 100
        )
    out["write 1000: WriteRequest parse (in grpc)"] = best_us(
        lambda: pb.WriteRequest.FromString(write.SerializeToString()), n // 100
    )
    return out


def main() -> None:
    for name, us in run().items():
        sys.stdout.write(f"{us:10.1f} µs  {name}\n")


if __name__ == "__main__":
    main()
