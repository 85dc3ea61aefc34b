"""The bar fields of held series, parsed once per held copy and extended by appends."""

from __future__ import annotations

import json

from mdcache_server.model import SeriesKey
from mdcache_server.resample.bars import DEFAULT_SUMMED, Fields
from mdcache_server.resample.parsed import ParsedFields

from .market_data import sse_minutes_20190201

KEY = SeriesKey("000001.SH", "kline", "1m")
_, DAY = sse_minutes_20190201()
TS = [r.ts_ms for r in DAY]
PAYLOADS = [r.payload for r in DAY]


def test_a_copy_is_parsed_once_and_an_append_parses_only_the_new_bars() -> None:
    parsed = ParsedFields(DEFAULT_SUMMED)
    ts, payloads = TS[:100], PAYLOADS[:100]  # a held copy's lists
    first = parsed.of(KEY, (1, 0), ts, payloads, "series[0]")
    assert first is not None
    assert parsed.of(KEY, (1, 0), ts, payloads, "series[0]") is first

    ts += TS[100:]  # a write of later bars merges into the same lists
    payloads += PAYLOADS[100:]
    grown = parsed.of(KEY, (1, 1), ts, payloads, "series[0]")
    fresh = Fields(TS, PAYLOADS, DEFAULT_SUMMED, "series[0]")
    assert grown is not None
    assert (grown.ts, grown.columns, grown.sums) == (fresh.ts, fresh.columns, fresh.sums)
    assert grown.columns[0][5] is first.columns[0][5]  # kept, not parsed again

    again = parsed.of(KEY, (2, 0), ts[:], [p.encode().decode() for p in payloads], "series[0]")
    assert again is not None
    assert again.columns[0][5] is first.columns[0][5]  # a copy read again: the same bars

    payloads[50] = json.dumps({**json.loads(payloads[50]), "high": 9999.0})  # a bar replaced
    changed = parsed.of(KEY, (2, 1), ts, payloads, "series[0]")
    assert changed is not None
    assert changed.columns[1][50] == 9999.0
    assert changed.columns[0][5] is not first.columns[0][5]  # parsed anew


def test_bad_payloads_and_the_bound() -> None:
    parsed = ParsedFields(DEFAULT_SUMMED, max_records=300)
    bad = [*PAYLOADS[:10], '{"open": 1}']
    assert parsed.of(KEY, (1, 0), TS[:11], bad, "series[0]") is None  # windows parsed alone
    other = SeriesKey("000001.SH", "kline", "5m")
    assert parsed.of(other, (2, 0), TS, PAYLOADS, "series[0]") is not None
    assert parsed.records == 11 + 239
    third = SeriesKey("600519.SH", "kline", "1m")
    assert parsed.of(third, (3, 0), TS, PAYLOADS, "series[0]") is not None
    assert len(parsed) == 1  # the least recently used went
    assert parsed.of(KEY, (4, 0), TS * 2, PAYLOADS * 2, "series[0]") is None  # over the bound
