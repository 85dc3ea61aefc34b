"""Resampled Reads: 60-minute bars of a month of 1-minute bars, hot and cold, beside plain Reads.

The series is the SSE Composite index's 1-minute bars of January 2019 from
``../shared/data`` (about 5,000 bars, as ``mdcache load`` files them). Each server gets
the month, and the 60-minute bars made of it stored as a series of their own, so that
every case reads real payloads:

- ``resampled``: Read of the month with ``resample="60m"`` (about 5,000 bars into 88);
- ``plain result``: a plain Read of the stored 60-minute series, as many bars;
- ``plain source``: a plain Read of the month of 1-minute bars;
- ``resampled, last_days`` (hot only): the same bars asked with ``last_days``, an answer
  never remembered (it depends on the clock): made from the held series at every call.

Hot is the server's defaults (the hot tier and remembered answers); cold is
``--hot-tier-bytes 0``, every Read going to SQLite. The targets: a hot resampled Read
>= 0.5 x the calls/s of a plain hot Read of its result's size; a cold one within 2 x of
a cold plain Read of the source window (>= 0.5 x its calls/s).

``python -m bench.resample`` runs this part alone and prints its table (``--seconds``,
``--rounds``, ``--json FILE``; ``--tdengine [URL]``: on TDengine, a taosd of the bundle
started for it unless a URL is given); ``python -m bench --parts resample`` runs it in the
benchmark, on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procs, taosd, wire
from bench.case import Case, Results, Settings, Target
from bench.data import data_dir
from bench.load import Samples, closed_loop, summarize
from mdcache.v1 import cache_pb2 as pb
from mdcache_client import AsyncClient, Record, Series
from mdcache_server.model import DAY_MS
from mdcache_server.ops.csvformats import detect

MINUTES_FILE = "cn_index_czsc/000001.XSHG_1min.csv"
MONTH = "2019-01"
TARGET = "60m"
CASES = ("resampled", "plain result", "plain source", "resampled, last_days")
CONCURRENCIES = (1, 8)


def month_of_minutes(root: Path | None = None) -> tuple[Series, list[Record]]:
    """The month's 1-minute bars, parsed as ``mdcache load`` parses them."""
    path = (root or data_dir()) / MINUTES_FILE
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        fmt = detect(path, header)
        dt = header.index("dt")
        found = [fmt.bar(row) for row in reader if row and row[dt].startswith(MONTH)]
    series = found[0][0]
    return series, [record for _, record in found]


def _sending(read: wire.RawCall, request: bytes) -> Callable[[int], Awaitable[bytes]]:
    async def one(_: int) -> bytes:
        return await read(request)

    return one


def _request(
    series: Series, start_ms: int | None, end_ms: int, resample: str = "", last_days: int = 0
) -> bytes:
    return pb.ReadRequest(
        series=[wire.key(series)],
        start_ms=start_ms,
        end_ms=end_ms,
        resample=resample,
        last_days=last_days,
    ).SerializeToString()


async def _prepare(target: str, series: Series, minutes: list[Record]) -> dict[str, Any]:
    """Writes the month and its 60-minute bars; the requests of each case and their sizes."""
    start, end = minutes[0].ts_ms, minutes[-1].ts_ms
    assert start is not None
    assert end is not None
    async with AsyncClient(target, timeout=60) as client:
        for i in range(0, len(minutes), 5000):
            await client.write(series, minutes[i : i + 5000])
        bars = await client.read(series, start_ms=start, end_ms=end, resample=TARGET)
        hourly = Series(series.symbol, series.data_type, TARGET)
        await client.write(hourly, bars.records)
        assert not bars.truncated
    last = bars.records[-1].ts_ms
    assert last is not None
    return {
        "requests": {
            "resampled": _request(series, start, end, TARGET),
            "plain result": _request(hourly, start, last),
            "plain source": _request(series, start, end),
            # from the month's first day to now: the same bars, never remembered
            "resampled, last_days": _request(
                series, None, end, TARGET, (int(time.time() * 1000) - start) // DAY_MS + 1
            ),
        },
        "source_records": len(minutes),
        "result_records": len(bars.records),
    }


async def run(
    workdir: Path,
    *,
    seconds: float = 3.0,
    warmup: float = 0.5,
    rounds: int = 2,
    progress: Callable[[str], None] = print,
    store: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """``result["cells"][mode][case][concurrency]``: the measurements, rounds pooled;
    ``store(mode)``: the store URL of each server (default: SQLite in its data folder)."""
    series, minutes = month_of_minutes()
    servers = {
        "hot": procs.mdcache("resample-hot", workdir, store=store("hot") if store else None),
        "cold": procs.mdcache(
            "resample-cold",
            workdir,
            "--hot-tier-bytes",
            "0",
            store=store("cold") if store else None,
        ),
    }
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    try:
        prepared = {m: await _prepare(p.target, series, minutes) for m, p in servers.items()}
        for mode, proc in servers.items():
            requests = prepared[mode]["requests"]
            # "resampled, last_days" cold would be "resampled": every cold Read is made anew
            cases = [c for c in CASES if mode == "hot" or c != "resampled, last_days"]
            async with wire.channel(proc.target) as chan:
                read = wire.raw(chan, wire.READ)
                for case in cases:
                    await read(requests[case])  # into the hot tier, the answer remembered
                for conc in CONCURRENCIES:
                    # the cases of a cell back to back in each round, the order rotating, so
                    # that their ratios share the machine's state of the moment
                    runs: dict[str, list[Samples]] = {case: [] for case in cases}
                    for round_no in range(rounds):
                        shift = round_no % len(cases)
                        for case in cases[shift:] + cases[:shift]:
                            runs[case].append(
                                await closed_loop(
                                    _sending(read, requests[case]),
                                    conc,
                                    seconds,
                                    warmup,
                                    proc.pid,
                                )
                            )
                    for case in cases:
                        m = summarize(runs[case]).as_dict()
                        cells.setdefault(mode, {}).setdefault(case, {})[str(conc)] = m
                        progress(
                            f"resample {mode:<4} {case:<20} c={conc:<2} "
                            f"{m['calls_per_s']:8.0f} calls/s  p50 {m['p50_ms']:6.2f} ms  "
                            f"server {m['server_cpu_ms_per_call']:.3f} ms/call"
                        )
    finally:
        for proc in servers.values():
            proc.stop()
    return {
        "store": "tdengine" if store else "sqlite",
        "series": "/".join(series),
        "month": MONTH,
        "resample": TARGET,
        "source_records": prepared["hot"]["source_records"],
        "result_records": prepared["hot"]["result_records"],
        "cells": cells,
    }


def targets(result: dict[str, Any]) -> list[Target]:
    """The two targets at each concurrency: the ratio of calls/s and its verdict."""
    out = []
    cells = result["cells"]
    pairs = (
        ("hot", "plain result", "hot resampled Read >= 0.5 x a plain hot Read of its result"),
        ("cold", "plain source", "cold resampled Read >= 0.5 x a cold plain Read of the source"),
    )
    for mode, against, text in pairs:
        for conc in map(str, CONCURRENCIES):
            ours = cells[mode]["resampled"][conc]["calls_per_s"]
            theirs = cells[mode][against][conc]["calls_per_s"]
            ratio = ours / theirs if theirs else 0.0
            out.append(Target(f"{text} (c={conc})", round(ratio, 3), ratio >= 0.5))
    return out


def markdown(result: dict[str, Any]) -> list[str]:
    """The section of the report: the cells, then the targets."""
    lines = [
        "## Resampled Reads",
        "",
        f"{result['series']}, {result['month']}: {result['source_records']:,} one-minute bars "
        f"into {result['result_records']} bars of {result['resample']}. Hot: the defaults; "
        "cold: `--hot-tier-bytes 0`. Plain result: a stored series of the result's size; "
        "plain source: the month of 1-minute bars.",
        "",
        "| mode | case | callers | calls/s | p50 ms | p99 ms | server CPU ms/call |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for mode, cases in result["cells"].items():
        for case, by_conc in cases.items():
            for conc, m in by_conc.items():
                lines.append(
                    f"| {mode} | {case} | {conc} | {m['calls_per_s']:,.0f} | {m['p50_ms']:.2f} "
                    f"| {m['p99_ms']:.2f} | {m['server_cpu_ms_per_call']:.3f} |"
                )
    lines += ["", "| target | ratio | verdict |", "|---|---:|---|"]
    for t in targets(result):
        lines.append(f"| {t.target} | {t.measured:.2f} | {'met' if t.ok else 'missed'} |")
    cold = result["cells"].get("cold", {})
    if cold:
        ours = cold["resampled"]["1"]["server_cpu_ms_per_call"]
        plain = cold["plain source"]["1"]["server_cpu_ms_per_call"]
        lines += [
            "",
            f"A cold resampled Read takes {ours:.1f} ms of server CPU against {plain:.1f} ms for a "
            f"plain cold Read of its source window (1 caller): the plain Read sends the "
            f"{result['source_records']:,} stored records as the store keeps them, the "
            "resampled one makes its bars from the numbers the store kept beside each payload "
            "when it was written (no JSON parsed); a held series' fields are parsed once (the "
            "hot rows).",
        ]
    lines.append("")
    return lines


@dataclass(frozen=True)
class ResampleResult:
    """Resampled Reads (``resample``): ``cells[mode][case][concurrency]``."""

    result: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"resample": self.result}


class ResampleCase(Case[ResampleResult]):
    name = "resample"

    async def run(self, settings: Settings) -> ResampleResult:
        return ResampleResult(
            await run(
                settings.workdir,
                seconds=settings.seconds,
                warmup=settings.warmup,
                rounds=min(settings.rounds, 2),
                progress=settings.say,
            )
        )

    def load(self, results: Results) -> ResampleResult | None:
        result = results.get("resample")
        return ResampleResult(result) if result else None

    def targets(self, result: ResampleResult, results: Results) -> list[Target]:
        return targets(result.result)

    def tables(self, result: ResampleResult, results: Results) -> list[str]:
        return markdown(result.result)


CASE = ResampleCase()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.resample", description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds a cell")
    parser.add_argument("--rounds", type=int, default=2, help="rounds a cell (pooled)")
    parser.add_argument("--json", type=Path, help="write the result here as JSON too")
    parser.add_argument(
        "--tdengine",
        nargs="?",
        const="",
        metavar="URL",
        help="measure TDengine (taos://user:password@host:6030), by default a taosd started here",
    )
    args = parser.parse_args()

    def say(text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    with tempfile.TemporaryDirectory(prefix="mdcache-bench-resample-") as tmp:
        workdir = Path(tmp)
        if args.tdengine is None:
            result = asyncio.run(
                run(workdir, seconds=args.seconds, rounds=args.rounds, progress=say)
            )
        else:
            if why := taosd.available(args.tdengine or None):
                raise SystemExit(f"bench.resample: {why}")
            with taosd.server(workdir, args.tdengine or None) as base:
                result = asyncio.run(
                    run(
                        workdir,
                        seconds=args.seconds,
                        rounds=args.rounds,
                        progress=say,
                        store=lambda mode: f"{base}/bench_resample_{mode}",
                    )
                )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write("\n".join(markdown(result)) + "\n")


if __name__ == "__main__":
    taosd.with_taos_library("bench.resample")
    main()
