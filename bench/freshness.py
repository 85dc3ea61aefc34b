"""``python -m bench.freshness``: what callers see across two replicas of one store (issue 23).

Per store, two ``mdcache serve`` processes share it (SQLite: one file, each with
``--subscribe-relay on``, the journal beside it as their change feed; TDengine: one
database, its TMQ topic), with the defaults otherwise: bounded Reads within 1 s
(``--read-freshness``). The records are the daily bars of ``HOT_SERIES`` (real payloads),
one a day from 1990 on, so every Write is newer.

- **visibility**: a writer writes one bar every 10 ms through replica A; a reader reads the
  latest bar through replica B, one Read after another (bounded, the default; the series is
  held on B). For each Write: the time from its acknowledgement to the end of the first
  Read through B that gave it (or a newer bar). Every Read is also checked against the
  bound: it must give at least the newest bar acknowledged 1 s before it began.
- **read-your-writes**: one client over both replicas (``ipv4:A,B``, round robin: its
  calls go to them in turn) writes a bar and reads the latest bar, pairs one after the
  other; every other pair is preceded by a Read of another series, so pairs alternate
  which replica takes the Write and which the Read. The client carries the session token
  itself. A miss is a Read older than its own pair's Write.
- **strict**: Reads through B with ``consistency="strict"`` while the writer writes through
  A, against bounded Reads in the same run: the cost of the promise.

The third promise, a stopped feed never serving past the bound, needs a feed stopped inside
a server: ``tests/test_freshness.py`` (a stalled feed) shows it on both stores.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import data, procs, taosd
from bench.case import Case, Results, Settings, Target
from bench.data import HOT_SERIES
from bench.live import say
from bench.load import percentile
from mdcache_client import AsyncClient, Record, Series

BOUND_S = 1.0  # --read-freshness, the default
VISIBLE_P99_MS = 20.0  # issue 23's target
WRITE_EVERY_S = 0.010
DAY_MS = 86_400_000
START_MS = 631_152_000_000  # 1990-01-01: about 7 years a lap, 10,000 bars end before now
SERVER_ARGS = ("--subscribe-relay", "on", "--log-level", "warning", "--retention", "*=0")
OTHER = Series("000001.SZ", "kline", "1d")  # read to flip round robin's turn


def _bars() -> list[str]:
    return [r.payload for r in data.a_shares()[HOT_SERIES]]


class Bars:
    """Newer bars forever: the hot series' payloads, a lap further on each time round."""

    def __init__(self, payloads: list[str]) -> None:
        self.payloads, self.n = payloads, 0

    def next(self) -> tuple[int, Record]:
        """Its timestamp, and a bar one day after the last one, with the next payload."""
        n, self.n = self.n, self.n + 1
        ts = START_MS + n * DAY_MS
        return ts, Record(ts, self.payloads[n % len(self.payloads)])


async def _newest(client: AsyncClient, series: Series, **how: Any) -> int:
    got = await client.read(series, newest_first=True, limit=1, **how)
    return (got.records[0].ts_ms or 0) if got.records else 0


async def visibility(a: str, b: str, series: Series, bars: Bars, seconds: float) -> dict[str, Any]:
    acked: list[tuple[float, int]] = []  # (monotonic time acknowledged, ts), in order
    done = asyncio.Event()

    async with AsyncClient(a, timeout=10) as writer, AsyncClient(b, timeout=10) as reader:
        await writer.write(series, [bars.next()[1]])
        await reader.read(series)  # held on B from here on

        async def write() -> None:
            began = time.monotonic()
            n = 0
            while time.monotonic() - began < seconds:
                ts, record = bars.next()
                await writer.write(series, [record])
                acked.append((time.monotonic(), ts))
                n += 1
                await asyncio.sleep(max(began + n * WRITE_EVERY_S - time.monotonic(), 0))
            done.set()

        reads: list[tuple[float, float, int]] = []  # (began, ended, newest ts given)
        writing = asyncio.create_task(write())
        while not done.is_set():
            began = time.monotonic()
            ts = await _newest(reader, series)
            reads.append((began, time.monotonic(), ts))
        await writing
    # Per Write, the end of the first Read that gave it (reads end in order; ts grow).
    lags: list[float] = []
    never = 0
    ends = [r[1] for r in reads]
    given = [r[2] for r in reads]
    best = list(given)
    for i in range(1, len(best)):
        best[i] = max(best[i], best[i - 1])
    for at, ts in acked:
        j = bisect.bisect_left(best, ts)
        if j == len(best):
            never += 1  # written after the last Read
            continue
        lags.append(max(0.0, ends[j] - at))
    stamps = [ts for _, ts in acked]
    times = [at for at, _ in acked]
    stale = 0
    for began, _, ts in reads:
        k = bisect.bisect_right(times, began - BOUND_S)
        owed = stamps[k - 1] if k else 0
        stale += ts < owed
    ms = sorted(lag * 1000 for lag in lags)
    return {
        "writes": len(acked),
        "reads": len(reads),
        "visible_p50_ms": round(percentile(ms, 50), 2),
        "visible_p90_ms": round(percentile(ms, 90), 2),
        "visible_p99_ms": round(percentile(ms, 99), 2),
        "visible_max_ms": round(max(ms), 2) if ms else None,
        "writes_not_read_before_the_end": never,
        "reads_older_than_the_bound": stale,
    }


async def read_your_writes(
    a: str, b: str, series: Series, bars: Bars, pairs: int
) -> dict[str, Any]:
    misses = 0
    took: list[float] = []
    async with AsyncClient(f"ipv4:{a},{b}", timeout=10) as client:
        for _ in range(20):  # both connections up: round robin then goes strictly in turn
            await client.read(OTHER)
        for i in range(pairs):
            if i % 2:
                await client.read(OTHER)  # the other replica takes this pair's Write
            ts, record = bars.next()
            began = time.perf_counter()
            await client.write(series, [record])
            newest = await _newest(client, series)
            took.append(time.perf_counter() - began)
            misses += newest < ts
    return {
        "pairs": pairs,
        "misses": misses,
        "pair_p50_ms": round(statistics.median(took) * 1000, 3),
    }


async def strict_cost(a: str, b: str, series: Series, bars: Bars, reads: int) -> dict[str, Any]:
    async with AsyncClient(a, timeout=10) as writer, AsyncClient(b, timeout=10) as reader:
        stop = asyncio.Event()

        async def write() -> None:
            while not stop.is_set():
                await writer.write(series, [bars.next()[1]])
                await asyncio.sleep(WRITE_EVERY_S)

        writing = asyncio.create_task(write())
        out: dict[str, Any] = {}
        try:
            for consistency in ("bounded", "strict", "bounded", "strict"):
                took = []
                for _ in range(reads // 2):
                    began = time.perf_counter()
                    await _newest(reader, series, consistency=consistency)
                    took.append(time.perf_counter() - began)
                out.setdefault(consistency, []).extend(took)
        finally:
            stop.set()
            await writing
    return {
        f"{name}_{q}_ms": round(percentile(sorted(took), p) * 1000, 3)
        for name, took in out.items()
        for q, p in (("p50", 50), ("p99", 99))
    }


async def replicas(workdir: Path, name: str, store: str, quick: bool) -> dict[str, Any]:
    one = procs.mdcache(f"fresh-{name}-a", workdir, *SERVER_ARGS, store=store)
    two = procs.mdcache(f"fresh-{name}-b", workdir, *SERVER_ARGS, store=store)
    payloads = _bars()
    try:
        a, b = one.target, two.target
        await asyncio.sleep(3.0)  # each follows the feed (a TDengine consumer: 1-2 s)
        cell: dict[str, Any] = {"store": name}
        cell["visibility"] = await visibility(
            a, b, Series("FRESH.V", "kline", "1d"), Bars(payloads), 5 if quick else 20
        )
        say(f"freshness, {name}, visibility: {json.dumps(cell['visibility'])}")
        cell["read_your_writes"] = await read_your_writes(
            a, b, Series("FRESH.R", "kline", "1d"), Bars(payloads), 1_000 if quick else 10_000
        )
        say(f"freshness, {name}, read-your-writes: {json.dumps(cell['read_your_writes'])}")
        cell["strict"] = await strict_cost(
            a, b, Series("FRESH.S", "kline", "1d"), Bars(payloads), 200 if quick else 1_000
        )
        say(f"freshness, {name}, strict: {json.dumps(cell['strict'])}")
        return cell
    finally:
        one.stop()
        two.stop()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"cells": []}
    with tempfile.TemporaryDirectory(prefix="mdcache-freshness-") as tmp:
        workdir = Path(tmp)
        if "sqlite" in args.stores:
            store = f"sqlite:///{workdir / 'fresh.sqlite3'}"
            results["cells"].append(await replicas(workdir, "sqlite", store, args.quick))
        if "tdengine" in args.stores:
            if why_not := taosd.available(args.tdengine_url):
                say(f"freshness on TDengine left out: {why_not}")
                results["tdengine_left_out"] = why_not
            else:
                with taosd.server(workdir, args.tdengine_url) as base:
                    store = f"{base}/mdcache_freshness"
                    results["cells"].append(await replicas(workdir, "tdengine", store, args.quick))
    return results


@dataclass
class FreshnessResult:
    """``freshness``: one cell per store (see :func:`replicas`)."""

    freshness: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"freshness": self.freshness}


class FreshnessCase(Case[FreshnessResult]):
    name = "freshness"

    async def run(self, settings: Settings) -> FreshnessResult:
        args = parser().parse_args(
            (["--quick"] if settings.quick else [])
            + (["--tdengine-url", u] if (u := settings.options.tdengine_url) else [])
        )
        return FreshnessResult(await main(args))

    def load(self, results: Results) -> FreshnessResult | None:
        fresh = results.get("freshness")
        return FreshnessResult(fresh) if fresh else None

    def targets(self, result: FreshnessResult, results: Results) -> list[Target]:
        out = []
        for cell in result.freshness["cells"]:
            store, vis, ryw = cell["store"], cell["visibility"], cell["read_your_writes"]
            out += [
                Target(
                    f"freshness, {store}: Write acknowledged -> visible through the other "
                    f"replica, p99 <= {VISIBLE_P99_MS:.0f} ms",
                    vis["visible_p99_ms"],
                    vis["visible_p99_ms"] <= VISIBLE_P99_MS,
                ),
                Target(
                    f"freshness, {store}: no Read older than the {BOUND_S:g} s bound "
                    "(Reads older than it)",
                    vis["reads_older_than_the_bound"],
                    vis["reads_older_than_the_bound"] == 0
                    and (vis["visible_max_ms"] or 0) <= BOUND_S * 1000,
                ),
                Target(
                    f"freshness, {store}: read-your-writes, 0 misses in "
                    f"{ryw['pairs']:,} pairs alternating replicas (misses)",
                    ryw["misses"],
                    ryw["misses"] == 0,
                ),
            ]
        return out

    def tables(self, result: FreshnessResult, results: Results) -> list[str]:
        cells = result.freshness["cells"]
        lines = [
            "## Freshness across two replicas of one store",
            "",
            "Write through replica A acknowledged -> first Read through replica B that gives "
            "it (ms), a Write every 10 ms; Reads checked against the 1 s bound; read-your-"
            "writes pairs through one client over both replicas; strict Reads against bounded "
            "ones in the same run (`python -m bench.freshness`).",
            "",
            "| store | writes | reads | visible p50 / p90 / p99 / max ms | older than bound "
            "| RYW pairs | misses | pair p50 ms | bounded p50 / p99 ms | strict p50 / p99 ms |",
            "|---|---:|---:|---|---:|---:|---:|---:|---|---|",
        ]
        for c in cells:
            v, r, s = c["visibility"], c["read_your_writes"], c["strict"]
            lines.append(
                f"| {c['store']} | {v['writes']:,} | {v['reads']:,} | {v['visible_p50_ms']} / "
                f"{v['visible_p90_ms']} / {v['visible_p99_ms']} / {v['visible_max_ms']} | "
                f"{v['reads_older_than_the_bound']} | {r['pairs']:,} | {r['misses']} | "
                f"{r['pair_p50_ms']} | {s['bounded_p50_ms']} / {s['bounded_p99_ms']} | "
                f"{s['strict_p50_ms']} / {s['strict_p99_ms']} |"
            )
        if "tdengine_left_out" in result.freshness:
            lines.append(f"\nTDengine left out: {result.freshness['tdengine_left_out']}")
        lines.append(
            "\nA stopped feed never serving past the bound: `tests/test_freshness.py` "
            "(`test_a_stalled_feed_answers_from_the_store_then_catches_up`, both stores).\n"
        )
        return lines


CASE = FreshnessCase()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.freshness", description=__doc__)
    p.add_argument("--quick", action="store_true", help="5 s of visibility, 1,000 pairs")
    p.add_argument("--stores", nargs="+", default=["sqlite", "tdengine"])
    p.add_argument("--tdengine-url", help="a TDengine 3.x server (default: the bundle's)")
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    return p


if __name__ == "__main__":
    taosd.with_taos_library("bench.freshness")
    arguments = parser().parse_args()
    figures = asyncio.run(main(arguments))
    if arguments.out:
        arguments.out.write_text(json.dumps(figures, indent=2) + "\n")
    for line in CASE.tables(FreshnessResult(figures), {}):
        print(line)  # noqa: T201
