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
        sizes = [(len(p) if p.isascii() else len(p.encode())) + RECORD_OVERHEAD for _, p in records]
        if sum(sizes) > budget:
            kept = 0
            for size in sizes:
                if size > budget:
                    break
                budget -= size
                kept += 1
            records = records[:kept]
            item.truncated = True
            budget = 0
        else:
            budget -= sum(sizes)
        item.records.extend(pb.Record(ts_ms=ts, payload=p) for ts, p in records)
    return response
