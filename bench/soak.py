"""``python -m bench.soak``: a server's memory under a long stream of Writes with subscribers.

One ``mdcache serve`` process per store (a SQLite file; a TDengine database of the
bundle's ``taosd`` or ``--tdengine-url``), its relay on (``--subscribe-relay on``: every
Write goes through the store's change feed, the SQLite journal or TDengine's TMQ topic,
as it does across replicas). Four quote series of the RM705 future's real ticks
(``shared/data/cn_futures_tick_vnpy``), written at ``--rate`` records a second in
``write_many`` calls every 50 ms, while ``--subscribers`` streams follow all four series
(a stream cut for falling behind, RESOURCE_EXHAUSTED, is opened again a second later, so
the relay never stops following). The server's resident memory (VmRSS) is sampled every
second. Printed per store: records written and received, RSS after the warm-up (the first
third of the run), at the end and at its peak, and the growth per record written after the
warm-up (a least-squares slope of RSS over records written): flat is a few bytes a record
at most; the TDengine relay of 311bcbe kept about 280 bytes of every record (TMQ messages
never freed) until the server ran out of memory.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procs, taosd
from bench.case import Case, Results, Settings, Target
from bench.live import rss_mb, say
from mdcache_client import AsyncClient, Record, ResourceExhaustedError, Series

DATA = Path(__file__).resolve().parents[2] / "shared/data"
TICKS = DATA / "cn_futures_tick_vnpy/RM705-2017-03-20.csv"
SERIES = [Series(f"RM705.{n}", "quote", "tick") for n in range(4)]
SERVER_ARGS = ("--subscribe-relay", "on", "--log-level", "warning", "--retention", "*=0")
T0 = 1_700_000_000_000
# The first third of a run (10 s at least) is warm-up: imports, the stream's and the feed's
# buffers fill, and RSS climbs to a plateau (20-30 s here); the growth counts after it.
WARM_UP_SHARE, WARM_UP_MIN = 1 / 3, 10.0


def ticks() -> list[str]:
    """The future's ticks as JSON payloads (about 190 bytes each), in file order."""
    with TICKS.open(newline="") as f:
        return [json.dumps(row, separators=(",", ":")) for row in csv.DictReader(f)]


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else float("nan")


class Counts:
    def __init__(self) -> None:
        self.written = 0
        self.received = 0
        self.cut = 0


async def _follow(target: str, counts: Counts, stop: asyncio.Event) -> None:
    async with AsyncClient(target, timeout=30) as client:
        while not stop.is_set():
            try:
                async with await client.subscribe(SERIES) as live:
                    async for _ in live:
                        counts.received += 1
                        if stop.is_set():
                            return
            except ResourceExhaustedError:  # fell behind: cut, as documented
                pass
            counts.cut += 1
            await asyncio.sleep(1.0)


async def _write(
    target: str, payloads: list[str], rate: int, seconds: float, counts: Counts
) -> None:
    step = 0.05
    per_call = max(len(SERIES), int(rate * step))
    async with AsyncClient(target, timeout=30) as client:
        began = time.perf_counter()
        n = 0
        while time.perf_counter() - began < seconds:
            batches: dict[Series, list[Record]] = {s: [] for s in SERIES}
            for i in range(per_call):
                k = counts.written + i
                batches[SERIES[k % len(SERIES)]].append(Record(T0 + k, payloads[k % len(payloads)]))
            counts.written += await client.write_many(batches)
            n += 1
            await asyncio.sleep(max(began + n * step - time.perf_counter(), 0))


async def soak(
    workdir: Path, name: str, store: str, rate: int, seconds: float, subscribers: int
) -> dict[str, Any]:
    server = procs.mdcache(f"soak-{name}", workdir, *SERVER_ARGS, store=store)
    counts = Counts()
    samples: list[tuple[float, float, int]] = []  # (seconds, rss MB, records written)
    stop = asyncio.Event()
    try:
        followers = [
            asyncio.create_task(_follow(server.target, counts, stop)) for _ in range(subscribers)
        ]
        await asyncio.sleep(3.0)  # the relay follows the feed (a TDengine consumer: 1-2 s)
        writer = asyncio.create_task(_write(server.target, ticks(), rate, seconds, counts))
        began = time.perf_counter()
        while not writer.done():
            samples.append((time.perf_counter() - began, rss_mb(server.pid), counts.written))
            await asyncio.wait({writer}, timeout=1.0)
        writer.result()
        await asyncio.sleep(2.0)  # the last pushes
        stop.set()
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
        end_rss = rss_mb(server.pid)
    finally:
        server.stop()
    warm_up = max(WARM_UP_MIN, seconds * WARM_UP_SHARE)
    steady = [(w, mb) for t, mb, w in samples if t >= warm_up]
    warm = steady[0][1] if steady else float("nan")
    per_record = slope(steady) * 1024 * 1024
    return {
        "store": name,
        "rate_asked": rate,
        "seconds": seconds,
        "warm_up_s": round(warm_up, 1),
        "written": counts.written,
        "written_per_s": round(counts.written / seconds, 1),
        "received": counts.received,
        "subscribers": subscribers,
        "streams_cut": counts.cut,
        "rss_start_mb": round(samples[0][1], 1) if samples else None,
        "rss_after_warm_up_mb": round(warm, 1),
        "rss_end_mb": round(end_rss, 1),
        "rss_peak_mb": round(max(mb for _, mb, _ in samples), 1) if samples else None,
        "growth_after_warm_up_mb": round(end_rss - warm, 1),
        "bytes_per_record_after_warm_up": round(per_record, 1),
        "rss_every_10_s_mb": [round(mb, 1) for t, mb, _ in samples if int(t) % 10 == 0],
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"soak": []}
    with tempfile.TemporaryDirectory(prefix="mdcache-soak-") as tmp:
        workdir = Path(tmp)
        if "sqlite" in args.stores:
            store = f"sqlite:///{workdir / 'soak.sqlite3'}"
            cell = await soak(workdir, "sqlite", store, args.rate, args.seconds, args.subscribers)
            say(f"soak, sqlite: {json.dumps(cell)}")
            results["soak"].append(cell)
        if "tdengine" in args.stores:
            why_not = taosd.available(args.tdengine_url)
            if why_not:
                say(f"soak on TDengine left out: {why_not}")
                results["tdengine_left_out"] = why_not
            else:
                with taosd.server(workdir, args.tdengine_url) as base:
                    cell = await soak(
                        workdir,
                        "tdengine",
                        f"{base}/mdcache_soak",
                        args.rate,
                        args.seconds,
                        args.subscribers,
                    )
                    say(f"soak, tdengine: {json.dumps(cell)}")
                    results["soak"].append(cell)
    return results


FLAT_BYTES_PER_RECORD = 32.0  # the soak's target: a server's RSS flat under the stream
QUICK_SECONDS = 20  # --quick: too short for the plateau (20-30 s here), so only reported


@dataclass
class SoakResult:
    """``soak``: one cell per store (see :func:`soak`)."""

    soak: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"soak": self.soak}


class SoakCase(Case[SoakResult]):
    name = "soak"

    async def run(self, settings: Settings) -> SoakResult:
        args = parser().parse_args(
            ["--seconds", str(QUICK_SECONDS if settings.quick else 90)]
            + (["--tdengine-url", u] if (u := settings.options.tdengine_url) else [])
        )
        figures = await main(args)
        return SoakResult(figures)

    def load(self, results: Results) -> SoakResult | None:
        soak = results.get("soak")
        return SoakResult(soak) if soak else None

    def targets(self, result: SoakResult, results: Results) -> list[Target]:
        return [
            Target(
                f"soak, {cell['store']}: RSS growth after warm-up <= "
                f"{FLAT_BYTES_PER_RECORD:.0f} bytes a record written (issue 23)",
                cell["bytes_per_record_after_warm_up"],
                cell["bytes_per_record_after_warm_up"] <= FLAT_BYTES_PER_RECORD
                if cell["seconds"] > QUICK_SECONDS
                else None,
            )
            for cell in result.soak["soak"]
        ]

    def tables(self, result: SoakResult, results: Results) -> list[str]:
        lines = [
            "## Soak: memory under a stream of Writes with a subscriber",
            "",
            "| store | written/s | received | streams cut | RSS after warm-up MB | RSS end MB "
            "| bytes a record after warm-up |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {c['store']} | {c['written_per_s']:,.0f} | {c['received']:,} | {c['streams_cut']} "
            f"| {c['rss_after_warm_up_mb']} | {c['rss_end_mb']} "
            f"| {c['bytes_per_record_after_warm_up']} |"
            for c in result.soak["soak"]
        ]
        if "tdengine_left_out" in result.soak:
            lines.append(f"\nTDengine left out: {result.soak['tdengine_left_out']}")
        return [*lines, ""]


CASE = SoakCase()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    p.add_argument("--seconds", type=float, default=100.0, help="seconds of Writes per store")
    p.add_argument("--rate", type=int, default=12_000, help="records written a second")
    p.add_argument("--subscribers", type=int, default=1, help="streams following the series")
    p.add_argument("--stores", nargs="+", default=["sqlite", "tdengine"])
    p.add_argument("--tdengine-url", help="a TDengine 3.x server (default: the bundle's)")
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    return p


if __name__ == "__main__":
    arguments = parser().parse_args()
    figures = asyncio.run(main(arguments))
    if arguments.out:
        arguments.out.write_text(json.dumps(figures, indent=2) + "\n")
