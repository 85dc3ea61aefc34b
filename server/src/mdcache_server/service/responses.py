"""Answers built from domain values, within the gRPC message limit."""

from __future__ import annotations

from collections.abc import Sequence

from mdcache.v1 import cache_pb2 as pb
from mdcache_server.model import SeriesRead

RECORD_OVERHEAD = 16  # bytes a record adds besides its payload: tags, lengths, ts_ms


def read_response(
    keys: Sequence[pb.SeriesKey], results: Sequence[SeriesRead], max_bytes: int
) -> pb.ReadResponse:
    """The answer to a Read. Past ``max_bytes`` the remaining records are left out and the
    series is marked ``truncated``, so that a caller pages on by ``start_ms``."""
    budget = max_bytes - sum(64 + k.ByteSize() for k in keys)
    response = pb.ReadResponse()
    for key, result in zip(keys, results, strict=True):
        item = response.results.add(hit=bool(result.records), truncated=result.truncated)
        item.series.CopyFrom(key)
        records = result.records
        size = sum(len(p) for _, p in records) + RECORD_OVERHEAD * len(records)
        if size > budget:  # cheap check first; exact UTF-8 sizes only near the limit
            kept = 0
            for _, p in records:
                budget -= len(p.encode()) + RECORD_OVERHEAD
                if budget < 0:
                    break
                kept += 1
            records = records[:kept]
            item.truncated = item.truncated or kept < len(result.records)
            budget = max(budget, 0)
        else:
            budget -= size
        item.records.extend(pb.Record(ts_ms=ts, payload=p) for ts, p in records)
    return response
