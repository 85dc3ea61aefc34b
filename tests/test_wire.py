"""The hand-written wire encoding of Read answers equals what the generated code makes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mdcache.v1 import cache_pb2 as pb
from mdcache_server.cache.hot import HeldSeries
from mdcache_server.model import Record, SeriesRead, Window
from mdcache_server.service import wire
from mdcache_server.service.responses import read_response

KEY = pb.SeriesKey(symbol="600519", data_type="kline", timeframe="1d")
records = st.dictionaries(st.integers(0, 4_102_444_799_999), st.text(max_size=40), max_size=40).map(
    lambda d: [Record(ts, p) for ts, p in sorted(d.items())]
)
windows = st.builds(
    Window,
    start_ms=st.none() | st.integers(0, 4_102_444_799_999),
    end_ms=st.none() | st.integers(0, 4_102_444_799_999),
    limit=st.integers(0, 50),
    newest_first=st.booleans(),
)


def expected(key: pb.SeriesKey, read: SeriesRead) -> pb.ReadResponse:
    response = pb.ReadResponse()
    item = response.results.add(hit=bool(read.records), truncated=read.truncated)
    item.series.CopyFrom(key)
    item.records.extend(pb.Record(ts_ms=ts, payload=p) for ts, p in read.records)
    return response


@settings(max_examples=300, deadline=None)
@given(records=records, window=windows)
def test_held_fragments_encode_like_the_generated_code(
    records: list[Record], window: Window
) -> None:
    held = HeldSeries.of(records, 0.0, wire.record_fragments(records)).window(window)
    plain = HeldSeries.of(records, 0.0).window(window)
    assert held.encoded is not None
    assert plain.encoded is None
    for read in (held, plain):
        answer, rows = read_response([KEY], [read], 64 * 1024 * 1024)
        assert rows == len(plain.records)
        assert pb.ReadResponse.FromString(answer) == expected(KEY, plain)
        assert answer == expected(KEY, plain).SerializeToString()


def test_several_series_and_the_byte_cap() -> None:
    a = [Record(i, '"' + "x" * 100 + '"') for i in range(10)]
    reads = [HeldSeries.of(a, 0.0, wire.record_fragments(a)).window(Window()), SeriesRead(a, False)]
    other = pb.SeriesKey(symbol="AAPL", data_type="kline", timeframe="1d")
    answer, rows = read_response([KEY, other], reads, 1000)
    parsed = pb.ReadResponse.FromString(answer)
    assert rows == sum(len(r.records) for r in parsed.results) < 20
    assert [r.truncated for r in parsed.results] == [True, True]
    assert [r.hit for r in parsed.results] == [True, True]
    assert [r.series for r in parsed.results] == [KEY, other]
