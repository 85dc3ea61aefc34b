"""Answers built from domain values, within the gRPC message limit."""

from __future__ import annotations

from collections.abc import Sequence

from mdcache.v1 import cache_pb2 as pb
from mdcache_server.model import SeriesRead
from mdcache_server.wire import answers, codec
from mdcache_server.wire.encoding import RECORD_OVERHEAD


def _fit(sizes: Sequence[int], budget: int) -> int:
    """How many of the leading items fit the budget."""
    kept = 0
    for size in sizes:
        if size > budget:
            break
        budget -= size
        kept += 1
    return kept


def read_response(
    keys: Sequence[pb.SeriesKey], results: Sequence[SeriesRead], max_bytes: int
) -> tuple[bytes, int]:
    """The serialized answer to a Read, and how many records it carries.

    Past ``max_bytes`` the remaining records are left out and their series marked
    ``truncated``, so that a caller pages on by ``start_ms``.
    """
    budget = max_bytes - sum(64 + k.ByteSize() for k in keys)
    parts = []
    rows = 0
    for key, result in zip(keys, results, strict=True):
        hit, truncated = bool(result.records), result.truncated
        if result.encoded is not None:  # records encoded once: by the hot tier, or the store
            fragments = result.encoded
            size = sum(map(len, fragments))
            if size > budget:
                if len(fragments) != len(result.records):  # one run of many: cut it up
                    fragments = codec.decode(b"".join(fragments))[2]
                kept = _fit([len(f) for f in fragments], budget)
                fragments, truncated, budget = fragments[:kept], True, 0
                rows += kept
            else:
                budget -= size
                rows += len(result.records)
            parts.append(
                answers.series_result(key, hit=hit, records=fragments, truncated=truncated)
            )
            continue
        records = result.records
        sizes = [(len(p) if p.isascii() else len(p.encode())) + RECORD_OVERHEAD for _, p in records]
        if sum(sizes) > budget:
            records, truncated, budget = records[: _fit(sizes, budget)], True, 0
        else:
            budget -= sum(sizes)
        parts.append(answers.series_result_of(key, hit=hit, records=records, truncated=truncated))
        rows += len(records)
    return b"".join(parts), rows
