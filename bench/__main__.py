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

from bench import data, procs, report, taosd
from bench.case import Settings
from bench.cases import CASES, PARTS

RESULTS = Path(__file__).resolve().parent / "results"


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
    keep = tempfile.mkdtemp(prefix="mdcache-bench-") if args.keep else None
    with tempfile.TemporaryDirectory(prefix="mdcache-bench-") as tmp:
        workdir = Path(keep or tmp)
        say(f"work directory {workdir}")
        settings = Settings(
            workdir=workdir,
            quick=quick,
            seconds=seconds,
            warmup=warmup,
            rounds=rounds,
            growth_rows=growth_rows,
            parts=parts,
            options=args,
            say=say,
        )
        for case in CASES:
            if case.name in parts:
                results.update((await case.run(settings)).as_json())
    results["targets"] = [t.as_json() for t in report.targets(results)]
    results["notes"] = report.notes(results)
    results["seconds"] = round(time.perf_counter() - began, 1)
    results["load_average_at_end"] = os.getloadavg()
    return results


def main() -> None:
    args = _parser().parse_args()
    try:
        results = asyncio.run(_main(args))
    except data.MissingData as exc:
        raise SystemExit(f"bench: {exc}") from None
    args.out.mkdir(parents=True, exist_ok=True)
    stem = results["date"] + (f"-{args.tag}" if args.tag else "") + ("-quick" if args.quick else "")
    json_path = args.out / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md_path = args.out / f"{stem}.md"
    md_path.write_text(report.markdown(results) + "\n")
    written = [json_path, md_path]
    for case in CASES:
        result = case.load(results)
        if result is not None:
            written += case.files(result, args.out / stem)
    say("")
    for t in results["targets"]:
        verdict = "REPORT" if t["ok"] is None else ("MET   " if t["ok"] else "MISSED")
        say(f"{verdict} {t['target']}: {t['measured']}")
    say(f"done in {results['seconds']:.0f} s; wrote " + ", ".join(map(str, written)))


if __name__ == "__main__":
    taosd.with_taos_library("bench")
    if procs.redis_binary() is None:
        say("redis-server not found: the Redis comparison will be skipped")
    main()
