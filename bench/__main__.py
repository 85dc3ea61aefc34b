"""``python -m bench``: the whole benchmark in one run; ``--quick`` for a one-minute smoke run.

Writes ``bench/results/<date>.json``, ``<date>.md`` and ``<date>-growth.png`` (``--quick``:
``<date>-quick.*``) and prints each figure as it is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import (
    data,
    day,
    growth,
    micro,
    procs,
    report,
    resample,
    service,
    storefloor,
    taosd,
    tdfloor,
)
from bench.data import HOT_SERIES
from mdcache_server.model import SeriesKey

RESULTS = Path(__file__).resolve().parent / "results"
PARTS = ("service", "micro", "growth", "day", "resample", "tdengine")


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a one-minute smoke run")
    p.add_argument("--parts", default=",".join(PARTS), help=f"some of {','.join(PARTS)}")
    p.add_argument("--out", type=Path, default=RESULTS, help="directory for the results")
    p.add_argument("--seconds", type=float, help="measured seconds per read cell")
    p.add_argument("--rounds", type=int, help="rounds over the read cells (pooled)")
    p.add_argument(
        "--growth-rows", help="comma-separated row counts (default 10000,1000000,10000000)"
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (server logs)")
    p.add_argument("--tag", help="results named <date>-<tag>.* (e.g. the code measured)")
    p.add_argument(
        "--day-before",
        type=Path,
        help="results .json of part day measured before (another client): the history "
        "replays' upstream records are judged against it",
    )
    p.add_argument(
        "--tdengine-url",
        help="a TDengine 3.x server to measure (taos://user:password@host:6030); by default "
        "a taosd of MDCACHE_TDENGINE_HOME (../shared/tdengine) is started for the run",
    )
    return p


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python "
        f"{platform.python_version()}, grpcio {version('grpcio')}, protobuf {version('protobuf')}"
    )


def _share(cell: dict[str, Any], target: str) -> str:
    """A target's calls/s as a share of the floor's in one read cell."""
    return f"{cell[target]['calls_per_s'] / cell['floor']['calls_per_s']:.2f}"


def _notes(results: dict[str, Any]) -> list[str]:
    """Why a missed target is missed, from this run's own figures."""
    notes = []
    svc, store = results.get("service"), results.get("store_floor")
    if svc and store:
        ingest = max(v["rows_per_s"] for k, v in svc["ingest"].items() if k.startswith("mdcache"))
        floor = svc["ingest"].get("grpc floor, 1 in flight", {}).get("rows_per_s")
        service_us = 1e6 / ingest - 1e6 / store["ingest_rows_per_s"]
        notes.append(
            f"Ingest: SQLite alone takes {1e6 / store['ingest_rows_per_s']:.1f} µs a row "
            f"({store['ingest_rows_per_s']:,.0f} rows/s); mdcache {1e6 / ingest:.1f} µs, so the "
            f"service adds {service_us:.1f} µs a row"
            + (
                f"; gRPC alone (the floor's Write) moves {floor:,.0f} rows/s "
                f"({1e6 / floor:.1f} µs a row, the load generator's request building included)"
                if floor
                else ""
            )
            + ". See bench/PROFILE.md."
        )
        floors = svc.get("single_writes_floor", {})
        if floors:
            notes.append(
                "Single-record Writes: the floor itself, whose Write does nothing, answers "
                + " and ".join(
                    f"{v['calls_per_s']:,.0f} calls/s at c={c}" for c, v in floors.items()
                )
                + f"; SQLite alone commits {store['single_writes_per_s']:,.0f} one-record "
                "transactions a second with synchronous=FULL. At c=1 a Write is one round trip "
                "after another, so no Python gRPC server here passes the seed's 2,000/s there; "
                "callers in parallel share commits (group commit), and the gap to the floor is "
                "the Write path's own work (validation, a worker-thread hop, the commit)."
            )
    pieces = results.get("micro_us") or {}
    hot1 = pieces.get("Read handler, hot, 1 record (serialized)")
    hot250 = pieces.get("Read handler, hot, 250 records (serialized)")
    cold250 = pieces.get("Read handler, cold, 250 records (serialized)")
    first1 = pieces.get("Read handler, hot, not remembered, 1 record (serialized)")
    first250 = pieces.get("Read handler, hot, not remembered, 250 records (serialized)")
    if hot1 and hot250 and cold250:
        notes.append(
            f"In-process, the server's Read handler takes {hot1:.0f} µs for a hot 1-record "
            f"read and {hot250:.0f} µs for a hot 250-record read asked before (a remembered "
            "answer)"
            + (
                f", {first1:.0f} and {first250:.0f} µs asked for the first time"
                if first1 and first250
                else ""
            )
            + f", and {cold250:.0f} µs for a cold 250-record read (answer serialized, metrics "
            "included). Over the network a µs of handler work costs 1.1 to 3.8 µs of server CPU "
            "(bench/PROFILE.md), so 0.8 x the floor's calls/s leaves at most about 50 µs of "
            "handler work per call."
        )
    under = []
    for case, by_conc in (svc or {}).get("reads", {}).items():
        for conc, cell in by_conc.items():
            floor_cpu = cell["floor"]["server_cpu_ms_per_call"]
            if cell["hot"]["calls_per_s"] >= report.HOT_VS_FLOOR * cell["floor"]["calls_per_s"]:
                continue
            rounds = " / ".join(f"{r:.2f}" for r in report.by_round(cell, "hot"))
            under.append(
                f"{case} c={conc}: {cell['hot']['calls_per_s'] / cell['floor']['calls_per_s']:.3f}"
                f" pooled, rounds {rounds}; server CPU "
                f"{cell['hot']['server_cpu_ms_per_call']:.3f} against the floor's "
                f"{floor_cpu:.3f} ms a call"
            )
    if under:
        notes.append(
            f"Hot Reads under {report.HOT_VS_FLOOR} x the floor in this run: "
            + "; ".join(under)
            + ". A remembered answer costs the handler "
            + (f"{hot1:.0f}-{hot250:.0f} µs in-process" if hot1 and hot250 else "a few µs")
            + ". The rounds of one cell, each measured back to back with its floor, differ "
            "more than the distance to the line: on this machine the ratio of the same code "
            "moves by 0.1 to 0.3 from one minute to the next (bench/PROFILE.md has the runs)."
        )
    cold = (svc or {}).get("reads", {}).get("250 records", {})
    if store and cold:
        cpu = []
        for conc, cell in cold.items():
            floor_cpu = cell.get("floor", {}).get("server_cpu_ms_per_call")
            cold_cpu = cell.get("cold", {}).get("server_cpu_ms_per_call")
            if floor_cpu and cold_cpu:
                cpu.append(f"c={conc}: {cold_cpu:.3f} against {floor_cpu:.3f}")
        hops = [
            f"c={conc}: {_share(cell, 'floor-hop')} with the hop alone, "
            f"{_share(cell, 'floor-hop-work')} with the work too (cold {_share(cell, 'cold')})"
            for conc, cell in cold.items()
            if "floor-hop-work" in cell
        ]
        if cpu:
            notes.append(
                "Cold 250-record Reads: the store answers a window in one statement, records "
                f"as they are sent ({store['read_250_ms']:.3f} ms in-process for the year of "
                "bars, the GIL released for most of it"
                + (f"; the whole handler {cold250:.0f} µs" if cold250 else "")
                + "). Server CPU ms per call, cold against the floor: "
                + "; ".join(cpu)
                + ". Every store call runs on a worker thread (the service's rule: a store "
                "call may block). The floor itself, answering from a worker thread after "
                f"about {svc.get('hop_work_us', 'N')} µs of work there with the GIL released "
                "(what the store read takes), keeps this share of its calls/s: "
                + ("; ".join(hops) if hops else "not measured in this run")
                + ". Work on a second thread competes with the event loop and the load "
                "generator for 2 cores, and each hand-off of the GIL wakes a thread "
                "(bench/PROFILE.md)."
            )
    write = pieces.get("Write handler, 1,000 rows (validation, SQLite commit)")
    if write:
        notes.append(
            f"The Write handler takes {write / 1000:.1f} µs a row for a 1,000-row batch "
            f"(validation on the event loop, the commit on a worker): about "
            f"{1e6 / (write / 1000):,.0f} rows/s for one batch in flight at a time."
        )
    built = pieces.get("250-record answer: built as messages, then serialized")
    joined = pieces.get("250-record answer: joined from records serialized once")
    if built and joined:
        notes.append(
            f"A 250-record answer built as messages costs {built:.0f} µs; joined from records "
            f"serialized once, {joined:.0f} µs."
        )
    return notes


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown parts: {', '.join(sorted(unknown))}")
    quick = args.quick
    seconds = args.seconds or (0.6 if quick else 3.0)
    warmup = 0.2 if quick else 0.5
    rounds = args.rounds or (1 if quick else 3)
    growth_rows = (
        [int(x) for x in args.growth_rows.split(",")]
        if args.growth_rows
        else ([10_000, 100_000] if quick else [10_000, 1_000_000, 10_000_000])
    )
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "code": procs.server_code(),
        "mode": "quick" if quick else "full",
        "command": "python -m bench" + (" " + shlex.join(sys.argv[1:]) if sys.argv[1:] else ""),
        "settings": {"seconds_per_cell": seconds, "warmup": warmup, "rounds": rounds},
        "load_average_at_start": os.getloadavg(),
    }
    began = time.perf_counter()
    say(f"mdcache benchmark ({results['mode']}): {results['machine']}")
    say(f"server code: {results['code']}")
    say(f"load average {os.getloadavg()[0]:.2f} at start (2 cores: above 1 means others are busy)")
    all_shares = data.a_shares()
    shares = all_shares
    if quick:  # fewer series to ingest; the same hot series
        shares = dict(sorted(all_shares.items())[:10]) | {HOT_SERIES: all_shares[HOT_SERIES]}
    keep = tempfile.mkdtemp(prefix="mdcache-bench-") if args.keep else None
    with tempfile.TemporaryDirectory(prefix="mdcache-bench-") as tmp:
        workdir = Path(keep or tmp)
        say(f"work directory {workdir}")
        if "service" in parts:
            concurrencies = [1, 8, 32]
            results["service"] = await service.run(
                workdir,
                shares,
                concurrencies=concurrencies,
                seconds=seconds,
                warmup=warmup,
                rounds=rounds,
                progress=say,
            )
            window = (
                results["service"]["window"]["start_ms"],
                results["service"]["window"]["end_ms"],
            )
            results["store_floor"] = storefloor.run(
                workdir, shares, SeriesKey(*HOT_SERIES), window, seconds=1.0 if quick else 2.0
            )
            say(f"SQLite alone: {results['store_floor']}")
        if "micro" in parts:
            pieces, errors = await micro.run(quick)
            results["micro_us"] = {k: round(v, 2) for k, v in pieces.items()}
            results["micro_errors"] = errors
            for name, us in pieces.items():
                say(f"micro: {us:9.1f} µs  {name}")
            for error in errors:
                say(f"micro: left out: {error}")
        if "growth" in parts:
            results["growth"] = await growth.run(
                workdir,
                all_shares,
                growth_rows,
                concurrencies=[1, 8],
                seconds=seconds,
                warmup=warmup,
                progress=say,
            )
        if "day" in parts:
            every = all_shares | data.others()
            results["day"] = await day.run(
                workdir,
                every,
                steps=40 if quick else 240,
                step_seconds=0.25,
                progress=say,
            )
            if args.day_before:
                results["day"]["before"] = _day_before(args.day_before)
        if "resample" in parts:
            results["resample"] = await resample.run(
                workdir, seconds=seconds, warmup=warmup, rounds=min(rounds, 2), progress=say
            )
        if "tdengine" in parts:
            why_not = taosd.available(args.tdengine_url)
            if why_not:
                say(f"TDengine not measured: {why_not}")
                results["tdengine"] = {"skipped": why_not}
            else:
                results["tdengine"] = await _tdengine(
                    args, workdir, shares, all_shares, seconds, warmup, rounds, growth_rows
                )
    results["targets"] = report.targets(results)
    results["notes"] = _notes(results)
    results["seconds"] = round(time.perf_counter() - began, 1)
    results["load_average_at_end"] = os.getloadavg()
    return results


def _day_before(path: Path) -> dict[str, Any]:
    """The history replays' figures of an earlier results file, and the code it measured."""
    before = json.loads(path.read_text())
    day = before["day"]
    replays = {k: day[k] for k in ("history", "history_250") if k in day}
    return {"results": path.name, "code": before.get("code", "unknown")} | replays


async def _tdengine(
    args: argparse.Namespace,
    workdir: Path,
    shares: data.Bars,
    all_shares: data.Bars,
    seconds: float,
    warmup: float,
    rounds: int,
    growth_rows: list[int],
) -> dict[str, Any]:
    """The same parts on TDengine: each server on a database of its own."""
    quick = args.quick
    parts = [p.strip() for p in args.parts.split(",")]
    out: dict[str, Any] = {}
    with taosd.server(workdir, args.tdengine_url) as base:
        out["server_version"] = taosd.version(base)
        out["server"] = (
            "given by --tdengine-url" if args.tdengine_url else f"taosd of {taosd.home()}"
        ) + f", TDengine {out['server_version']}, native connector (taospy)"
        say(f"TDengine: {out['server']}")
        if "service" in parts:
            out["service"] = await service.run(
                workdir / "tdengine",
                shares,
                concurrencies=[1, 8, 32],
                seconds=seconds,
                warmup=warmup,
                rounds=rounds,
                progress=lambda text: say(f"TDengine {text}"),
                store=lambda name: f"{base}/bench_{name}",
                comparisons=False,
            )
            window = (out["service"]["window"]["start_ms"], out["service"]["window"]["end_ms"])
            out["store_floor"] = tdfloor.run(
                base, shares, SeriesKey(*HOT_SERIES), window, seconds=1.0 if quick else 2.0
            )
            say(f"TDengine alone: {out['store_floor']}")
        if "growth" in parts:
            out["growth"] = await growth.run(
                workdir / "tdengine",
                all_shares,
                growth_rows,
                concurrencies=[1, 8],
                seconds=seconds,
                warmup=warmup,
                progress=lambda text: say(f"TDengine {text}"),
                tdengine=base,
            )
        if "day" in parts:
            out["day"] = await day.run(
                workdir / "tdengine",
                all_shares | data.others(),
                steps=40 if quick else 240,
                step_seconds=0.25,
                progress=lambda text: say(f"TDengine {text}"),
                store=f"{base}/bench_day",
            )
    return out


def main() -> None:
    args = _parser().parse_args()
    results = asyncio.run(_main(args))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = results["date"] + (f"-{args.tag}" if args.tag else "") + ("-quick" if args.quick else "")
    json_path = args.out / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md_path = args.out / f"{stem}.md"
    md_path.write_text(report.markdown(results) + "\n")
    written = [json_path, md_path]
    if "growth" in results:
        png = args.out / f"{stem}-growth.png"
        report.chart(results["growth"], png)
        written.append(png)
    say("")
    for t in results["targets"]:
        verdict = "REPORT" if t["ok"] is None else ("MET   " if t["ok"] else "MISSED")
        say(f"{verdict} {t['target']}: {t['measured']}")
    say(f"done in {results['seconds']:.0f} s; wrote " + ", ".join(map(str, written)))


if __name__ == "__main__":
    taosd.with_taos_library("bench")
    try:
        data.a_shares()
    except data.MissingData as exc:
        raise SystemExit(f"bench: {exc}") from None
    if procs.redis_binary() is None:
        say("redis-server not found: the Redis comparison will be skipped")
    main()
