"""The latest bar on TDengine: the store's query against what TDengine keeps for it.

Issue 23 asks that the latest-bar read use what TDengine keeps for it (``CACHEMODEL``,
``LAST_ROW``) where that is faster. For each cache model this makes a database of it, writes
the daily bars of one real series (``HOT_SERIES``, about 2,600 bars, then flushed to
disk), and times, in this process through taospy, one after the other:

- ``ORDER BY ts DESC LIMIT 2``: the store's latest-record read (``sql.read`` with
  ``newest_first``; the second row tells whether the answer was truncated);
- ``LAST_ROW``: what the cache model keeps, one row (it cannot tell truncation);
- ``LAST_ROW`` with ``COUNT(*)``: the same and the count that tells it.

``python -m bench.lastrow [--calls N] [--tdengine URL]`` prints the table (a taosd of the
bundle started for it unless a URL is given).
"""

# ruff: noqa: S608  (names are the benchmark's own; payloads escaped below)

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench import taosd
from bench.data import HOT_SERIES, a_shares

MODELS = ("none", "last_row", "both")


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _p50_ms(fn: Callable[[], Any], calls: int) -> float:
    for _ in range(50):
        fn()
    took = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        took.append(time.perf_counter() - started)
    return statistics.median(took) * 1000


def _fetch(conn: Any, query: str) -> list[Any]:
    return list(conn.query(query).fetch_all())


def run(base: str, calls: int) -> list[tuple[str, dict[str, float]]]:
    conn: Any = taosd.connect(base)
    records = a_shares()[HOT_SERIES]
    rows = []
    try:
        for model in MODELS:
            db = f"bench_lastrow_{model}"
            conn.execute(f"DROP DATABASE IF EXISTS {db}")
            conn.execute(
                f"CREATE DATABASE {db} PRECISION 'ms' KEEP 36500 DURATION 365 CACHEMODEL '{model}'"
            )
            conn.execute(
                f"CREATE STABLE {db}.records (ts TIMESTAMP, payload VARCHAR(65517)) "
                "TAGS (symbol VARCHAR(64))"
            )
            table = f"{db}.bars"
            for i in range(0, len(records), 500):
                chunk = records[i : i + 500]
                values = " ".join(f"({r.ts_ms}, {_quoted(r.payload)})" for r in chunk)
                conn.execute(f"INSERT INTO {table} USING {db}.records TAGS ('x') VALUES {values}")
            conn.execute(f"FLUSH DATABASE {db}")
            queries = {
                "order by ts desc limit 2": (
                    f"SELECT CAST(ts AS BIGINT), payload FROM {table} ORDER BY ts DESC LIMIT 2"
                ),
                "last_row": f"SELECT CAST(LAST_ROW(ts) AS BIGINT), LAST_ROW(payload) FROM {table}",
                "last_row + count": (
                    f"SELECT CAST(LAST_ROW(ts) AS BIGINT), LAST_ROW(payload), COUNT(*) FROM {table}"
                ),
            }
            newest = records[-1]
            for name, query in queries.items():
                got = conn.query(query).fetch_all()
                if (int(got[0][0]), got[0][1]) != (newest.ts_ms, newest.payload):
                    raise RuntimeError(f"{model} {name}: answered {got[0][:2]!r}")
            timed = {name: _p50_ms(partial(_fetch, conn, q), calls) for name, q in queries.items()}
            rows.append((model, timed))
            conn.execute(f"DROP DATABASE {db}")
    finally:
        conn.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lastrow", description=__doc__)
    parser.add_argument("--calls", type=int, default=2000, help="timed calls a query")
    parser.add_argument("--tdengine", metavar="URL", help="taos://user:password@host:6030")
    args = parser.parse_args()
    if why := taosd.available(args.tdengine):
        raise SystemExit(f"bench.lastrow: {why}")
    with (
        tempfile.TemporaryDirectory(prefix="mdcache-bench-lastrow-") as tmp,
        taosd.server(Path(tmp), args.tdengine) as base,
    ):
        rows = run(base, args.calls)
        version = taosd.version(base)
    names = list(rows[0][1])
    out = [
        f"TDengine {version}, {HOT_SERIES.symbol} daily bars, p50 ms of {args.calls} calls",
        "",
        "| CACHEMODEL | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
        *(
            f"| {model} | " + " | ".join(f"{cells[n]:.3f}" for n in names) + " |"
            for model, cells in rows
        ),
    ]
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    taosd.with_taos_library("bench.lastrow")
    main()
