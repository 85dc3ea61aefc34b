"""The store alone: the server's own ``SqliteStore`` called in this process, no gRPC at all.

What SQLite itself takes for the same work bounds what the service can do over it, and
so tells which part of a gap between mdcache and a target is the store's (fsync, the
B-tree) and which is the service's (gRPC, validation, Python objects).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.data import YEAR, Bars
from mdcache_server.model import Record, SeriesKey, Window
from mdcache_server.store.sqlite import SqliteStore


def _timed(fn: Any, seconds: float) -> tuple[int, float]:
    """Calls ``fn`` until ``seconds`` have passed; the calls and the time they took."""
    calls = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        fn()
        calls += 1
    return calls, elapsed


def run(
    workdir: Path, bars: Bars, series: SeriesKey, window: tuple[int, int], seconds: float
) -> dict[str, Any]:
    store = SqliteStore(workdir / "storefloor.sqlite3", synchronous="FULL")
    conn = store.connect()
    try:
        conn.ensure_schema()
        rows = [
            (SeriesKey(*s), [Record(r.ts_ms or 0, r.payload) for r in recs])
            for s, recs in bars.items()
        ]
        flat = [(key, rec) for key, recs in rows for rec in recs]
        started = time.perf_counter()
        for i in range(0, len(flat), 1000):
            chunk: dict[SeriesKey, list[Record]] = {}
            for key, rec in flat[i : i + 1000]:
                chunk.setdefault(key, []).append(rec)
            conn.write(list(chunk.items()))
        ingest_s = time.perf_counter() - started

        payload = rows[0][1][-1].payload
        counter = iter(range(1, 1 << 62))
        single = SeriesKey("STOREFLOOR", "kline", "1m")
        writes, write_s = _timed(
            lambda: conn.write([(single, [Record(1_700_000_000_000 + next(counter), payload)])]),
            seconds,
        )
        year = Window(start_ms=window[0], end_ms=window[1], limit=YEAR)
        latest = Window(limit=1, newest_first=True)
        reads, read_s = _timed(lambda: conn.read_answer([series], year), seconds)
        latests, latest_s = _timed(lambda: conn.read_answer([series], latest), seconds)
    finally:
        conn.close()
    return {
        "ingest_rows_per_s": round(len(flat) / ingest_s, 1),
        "single_writes_per_s": round(writes / write_s, 1),
        "read_250_ms": round(read_s / reads * 1000, 4),
        "read_1_ms": round(latest_s / latests * 1000, 4),
        "synchronous": "FULL",
    }
