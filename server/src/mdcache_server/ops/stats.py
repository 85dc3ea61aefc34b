"""``mdcache stats``: what the cache holds and how it is used, as text or JSON."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from mdcache_client import MdcacheError, Stats
from mdcache_server.ops.command import Command, add_connection, add_json, connect, target
from mdcache_server.ops.units import count, duration, nbytes, percent, retention


def stats_json(stats: Stats) -> dict[str, Any]:
    """Stats as plain JSON values, field for field."""
    return dataclasses.asdict(stats)


def utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _hot_tier(stats: Stats) -> str:
    tier = stats.hot_tier
    if not tier.enabled:
        return "off"
    used = tier.bytes / tier.capacity_bytes if tier.capacity_bytes else 0.0
    return (
        f"{nbytes(tier.bytes)} of {nbytes(tier.capacity_bytes)} ({percent(used)}) in "
        f"{count(tier.series)} series; {count(tier.hits)} hits, {count(tier.misses)} misses, "
        f"{count(tier.evictions)} evictions"
    )


def stats_lines(stats: Stats) -> list[str]:
    """Stats as lines of text, one topic each."""
    hot = ", ".join(f"{s} {count(n)}" for s, n in stats.hot_symbols.items()) or "none read yet"
    calls = ", ".join(
        f"{m} {count(c.calls)}" + (f" ({count(c.errors)} errors)" if c.errors else "")
        for m, c in sorted(stats.calls.items())
    )
    replicas = "1 replica" if stats.replicas == 1 else f"{stats.replicas} replicas"
    return [
        f"store        {stats.store} {stats.store_version}; up {duration(stats.uptime_seconds)}; "
        f"{replicas}",
        f"records      {count(stats.records)} in {count(stats.series)} series of "
        f"{count(stats.symbols)} symbols",
        f"hit rate     {percent(stats.hit_rate)}: {count(stats.hits)} hits, "
        f"{count(stats.misses)} misses since {utc(stats.counting_since_ms)}",
        f"hot symbols  {hot}",
        f"hot tier     {_hot_tier(stats)}",
        f"evicted      {count(stats.evicted_series)} series, "
        f"{count(stats.evicted_records)} records",
        f"retention    {retention(stats.retention)}",
        f"calls        {calls or 'none'}",
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection(parser)
    parser.add_argument("--top", type=int, default=10, help="hot symbols to list (default 10)")
    parser.add_argument(
        "--reset", action="store_true", help="answer, then start hits, misses and reads anew"
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default 5)")
    add_json(parser)


def run(args: argparse.Namespace, environ: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    server = target(args, environ)
    try:
        with connect(args, environ, timeout=args.timeout) as client:
            stats = client.stats(top_n=args.top, reset=args.reset)
    except MdcacheError as exc:
        err.write(f"mdcache stats: {server}: {exc}\n")
        return 1
    if args.json:
        out.write(json.dumps(stats_json(stats), ensure_ascii=False) + "\n")
    else:
        out.write("".join(f"{line}\n" for line in stats_lines(stats)))
    return 0


COMMAND = Command(
    name="stats",
    help="show what the cache holds and how it is used",
    description="Ask a server for its Stats: records, series, symbols, hits, misses, hit rate,\n"
    "hot symbols, the hot tier, evictions, retention, calls by method, uptime.",
    add_arguments=add_arguments,
    run=run,
)
