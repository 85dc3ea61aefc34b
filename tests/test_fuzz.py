"""Property-based fuzzing: random and hostile requests to every RPC, on every store.

The server never answers UNKNOWN, INTERNAL or UNAVAILABLE, stays healthy, and the data
stored before the fuzzing is unchanged afterwards; a body that is not the request message
at all (bytes changed, cut short, put in) is INVALID_ARGUMENT on every RPC. Bounded to a
few hundred calls a store.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mdcache.v1 import cache_pb2 as pb
from mdcache.v1 import cache_pb2_grpc as pb_grpc

from .conftest import STORES, tdengine_test_url
from .process import ServerProcess
from .test_reliability import health

CANARY = pb.SeriesKey(symbol="CANARY", data_type="kline", timeframe="1d")
CANARY_RECORDS = [
    pb.Record(ts_ms=1_600_000_000_000 + i, payload=json.dumps({"i": i})) for i in range(50)
]
FIELD = re.compile(
    r"(series(\[\d+\](\.(series|records(\[\d+\]\.(ts_ms|payload))?))?"
    r"(\.(symbol|data_type|timeframe))?)?|start_ms|end_ms|last_days|limit|order|symbol|data_type"
    r"|before_ms|older_than_days|top_n): "
)
ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
HOSTILE = [
    "",
    " ",
    "'",
    '"',
    ";",
    "\\",
    "`",
    "%s",
    "\x00",
    "a\x00b",
    "\n",
    "🐂📈",
    "贵州茅台",
    "'; DROP TABLE records; --",
    '" OR 1=1 --',
    "`records`; DELETE FROM series",
    "x" * 64,
    "x" * 65,
    "é" * 40,
    "a" * 10_000,
    "null",
    "NULL",
]
PAYLOADS = [
    "",
    "{",
    "[1,",
    "NaN",
    "-Infinity",
    "{'a': 1}",
    "[" * 5000 + "]" * 5000,
    "1" * 500,
    "-" + "9" * 400,
    '{"a":' * 2000 + "1" + "}" * 2000,
    '"\\ud800"',
    '"' + "x" * 70_000 + '"',
    "\x00",
    "true",
    "null",
    '{"sql": "\'; DROP TABLE x; --"}',
]
texts = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=80))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
payloads = st.one_of(st.sampled_from(PAYLOADS), json_values.map(json.dumps), st.text(max_size=50))
int64 = st.integers(-(2**63), 2**63 - 1)
edgy_ts = st.one_of(
    int64,
    st.sampled_from([0, -1, 4_102_444_799_999, 4_102_444_800_000]),
    st.integers(0, 4_102_444_799_999),
)
uint32 = st.integers(0, 2**32 - 1)
keys = st.builds(pb.SeriesKey, symbol=texts, data_type=texts, timeframe=texts).filter(
    lambda k: k.symbol != CANARY.symbol
)
records = st.builds(
    lambda ts, p, stamped: pb.Record(ts_ms=ts, payload=p) if stamped else pb.Record(payload=p),
    edgy_ts,
    payloads,
    st.booleans(),
)
writes = st.builds(
    lambda entries: pb.WriteRequest(series=entries),
    st.lists(
        st.builds(pb.SeriesRecords, series=keys, records=st.lists(records, max_size=4)), max_size=3
    ),
)


@st.composite
def reads(draw: st.DrawFn) -> pb.ReadRequest:
    request = pb.ReadRequest(
        series=draw(st.lists(keys | st.just(CANARY), max_size=3)),
        last_days=draw(st.sampled_from([0, 0, 1, 7, 400_000]) | uint32),
        limit=draw(st.sampled_from([0, 1, 100_000, 100_001]) | uint32),
        order=draw(st.integers(0, 5)),
    )
    if draw(st.booleans()):
        request.start_ms = draw(edgy_ts)
    if draw(st.booleans()):
        request.end_ms = draw(edgy_ts)
    return request


@st.composite
def purges(draw: st.DrawFn) -> pb.PurgeRequest:
    request = pb.PurgeRequest(
        symbol=draw(texts.filter(lambda s: s not in ("", CANARY.symbol)) | st.just("absent")),
        data_type=draw(texts),
        older_than_days=draw(st.sampled_from([0, 1, 365_001]) | uint32),
    )
    if draw(st.booleans()):
        request.before_ms = draw(edgy_ts)
    return request


stats = st.builds(
    pb.StatsRequest, top_n=st.sampled_from([0, 1, 1000, 1001]) | uint32, reset=st.just(False)
)
calls = st.one_of(
    writes.map(lambda r: ("Write", r)),
    reads().map(lambda r: ("Read", r)),
    purges().map(lambda r: ("Purge", r)),
    stats.map(lambda r: ("Stats", r)),
)


@pytest.fixture(scope="module", params=STORES)
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        urls: Iterator[str] = iter(
            [f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'cache.sqlite3'}"]
        )
    else:
        urls = tdengine_test_url()
    url = next(urls)
    server = ServerProcess("--store", url, "--max-message-bytes", str(8 * 1024 * 1024))
    try:
        server.wait_serving()
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.MarketDataCacheStub(channel)
            stub.Write(
                pb.WriteRequest(series=[pb.SeriesRecords(series=CANARY, records=CANARY_RECORDS)]),
                timeout=10,
            )
        yield server.target
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.MarketDataCacheStub(channel)
            after = stub.Read(pb.ReadRequest(series=[CANARY]), timeout=10).results[0].records
            assert list(after) == CANARY_RECORDS, "fuzzing changed data stored before it"
        assert health(server.target) == "SERVING"
    finally:
        server.kill()
        for _ in urls:  # drops the TDengine test database
            pass


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(call=calls)
def test_hostile_requests_get_clean_answers(target: str, call: tuple[str, object]) -> None:
    method, request = call
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.MarketDataCacheStub(channel)
        code, details = grpc.StatusCode.OK, ""
        try:
            getattr(stub, method)(request, timeout=10)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details() or ""  # type: ignore[attr-defined]
    assert code in ALLOWED, (method, request, code, details)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert FIELD.match(details), details


REQUESTS = {
    "Write": pb.WriteRequest,
    "Read": pb.ReadRequest,
    "Purge": pb.PurgeRequest,
    "Stats": pb.StatsRequest,
}


@st.composite
def malformed(draw: st.DrawFn) -> tuple[str, bytes]:
    """A request's bytes with a byte changed, cut short, bytes put in, or bytes at random."""
    method, request = draw(calls)
    body = bytearray(request.SerializeToString())
    how = draw(st.sampled_from(["change", "cut", "insert", "random"]))
    if how == "random" or not body:
        return method, draw(st.binary(min_size=1, max_size=64))
    at = draw(st.integers(0, len(body) - 1))
    if how == "change":
        body[at] ^= draw(st.integers(1, 255))
    elif how == "cut":
        del body[at:]
    else:
        body[at:at] = draw(st.binary(min_size=1, max_size=8))
    return method, bytes(body)


def touches_the_canary(method: str, message: object) -> bool:
    """A body that still parses may, rightly, change the data stored before the fuzzing."""
    if isinstance(message, pb.PurgeRequest):
        return message.symbol in ("", CANARY.symbol)
    if isinstance(message, pb.WriteRequest):
        return any(entry.series.symbol == CANARY.symbol for entry in message.series)
    return False


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(call=malformed())
def test_malformed_bodies_are_invalid_argument_on_every_rpc(
    target: str, call: tuple[str, bytes]
) -> None:
    method, body = call
    try:
        message: object = REQUESTS[method].FromString(body)
    except DecodeError:
        message = None
    assume(message is None or not touches_the_canary(method, message))
    with grpc.insecure_channel(target) as channel:
        raw = channel.unary_unary(f"/mdcache.v1.MarketDataCache/{method}")  # bytes, unparsed
        code, details = grpc.StatusCode.OK, ""
        try:
            raw(body, timeout=10)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details() or ""  # type: ignore[attr-defined]
    if message is None:  # not the request message: refused, naming the request
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (method, body, code, details)
        assert details.startswith("request: not a serialized mdcache.v1."), details
    else:  # still a request message: answered as any other
        assert code in ALLOWED, (method, message, code, details)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            assert FIELD.match(details), details
