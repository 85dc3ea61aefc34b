"""``mdcache serve --processes N``: what more server processes on one port give.

For N in 1, 2 and ``auto`` (the cores this machine gives the benchmark), two servers of N
processes each on a SQLite file of their own: one with the hot tier (hot Reads: the newest
bar of a held series), one without (cold Reads, from the store; and single-record
Writes, to one SQLite file shared by every process). Each kind of call at c=8 and c=32,
the callers spread over 8 connections (SO_REUSEPORT balances connections, not calls).

Reported per cell: calls/s, server CPU per call summed over every process (the parent
and its children) and each child's share of the calls (from its metrics endpoint, on
the metrics port plus its index). On a machine where the load generator needs a core of
its own, calls/s cannot show what another core gives: CPU per call and the shares can.

    python -m bench.processes [--seconds 3] [--out bench-processes.json]
    python -m bench.processes --baseline-src /path/to/other/checkout/server/src
    python -m bench.processes --server-arg=--subscribe-relay --server-arg=off

``--baseline-src`` runs the servers from another checkout's code (by PYTHONPATH), with
1 process only: today's hot Reads to compare with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from bench import procs, wire
from bench.load import Samples, closed_loop, process_cpu, summarize
from harness.poll import wait_until
from harness.process import MDCACHE
from mdcache_client import Record, Series

CONNECTIONS = 8
CONCURRENCIES = (8, 32)
SERIES = [Series(f"6{i:05d}.SH", "kline", "1d") for i in range(20)]
BARS = 250
START = 1_500_000_000_000
DAY = 86_400_000
CALLS = re.compile(r"^mdcache_call_duration_seconds_count\{[^}]*\} ([0-9.e+]+)$", re.M)


def own_channel(target: str) -> Any:
    """A channel on a connection of its own (channels of one process share by default)."""
    import grpc

    return grpc.aio.insecure_channel(
        target,
        options=[
            ("grpc.max_receive_message_length", wire.MAX_MESSAGE),
            ("grpc.use_local_subchannel_pool", 1),
        ],
    )


class Parent:
    """``mdcache serve --processes N`` with its children's pids and metrics ports."""

    def __init__(self, name: str, workdir: Path, processes: str, env: dict[str, str], *args: str):
        self.metrics_port = procs.free_port()
        data_dir = workdir / f"{name}-data"
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            *MDCACHE, "serve",
            "--listen", "127.0.0.1:0", "--log-format", "json", "--data-dir", str(data_dir),
            "--warm-seconds", "0", "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
        ]  # fmt: skip
        if processes != "1":
            argv += ["--processes", processes]
        self.proc = procs.Process(name, argv + list(args), workdir / f"{name}.log", env=env)
        first = self.proc.wait_log_event("serving", timeout=120)
        self.proc.port = int(first["port"])
        self.children = self._count(processes)
        wait_until(
            lambda: self._events("serving") >= self.children, 120, f"{name}: every child serving"
        )
        started = self._all("child_started")
        self.pids = [self.proc.pid, *(int(e["pid"]) for e in started)]

    def _count(self, processes: str) -> int:
        if processes == "1":
            return 1
        event = self.proc.wait_log_event("processes_starting", timeout=30)
        return int(event["processes"])

    def _all(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.proc.events if e.get("event") == name]

    def _events(self, name: str) -> int:
        return len(self._all(name))

    def cpu(self) -> float:
        return sum(process_cpu(pid) for pid in self.pids)

    def calls(self) -> list[float]:
        """Calls each child has answered so far (its metrics endpoint)."""
        counts = []
        for i in range(self.children):
            url = f"http://127.0.0.1:{self.metrics_port + i}/metrics"
            with urllib.request.urlopen(url, timeout=5) as answer:
                text = answer.read().decode()
            counts.append(sum(float(n) for n in CALLS.findall(text)))
        return counts


async def measure(
    parent: Parent, request: bytes, method: str, concurrency: int, seconds: float, fresh: bool
) -> dict[str, Any]:
    channels = [own_channel(parent.proc.target) for _ in range(CONNECTIONS)]
    try:
        calls = [wire.raw(c, method) for c in channels]
        opening = wire.latest(SERIES[0])
        opens = [wire.raw(c, wire.READ)(opening) for c in channels]
        await asyncio.gather(*opens)  # every connection open
        counter = iter(range(10**9))

        async def one(n: int) -> object:
            if fresh:  # a Write of a record of its own
                i = next(counter)
                record = Record(START + (BARS + i) * DAY, json.dumps({"close": i}))
                return await calls[n % CONNECTIONS](wire.write({SERIES[n % len(SERIES)]: [record]}))
            return await calls[n % CONNECTIONS](request)

        before_calls, before_cpu = parent.calls(), parent.cpu()
        samples: Samples = await closed_loop(one, concurrency, seconds, warmup=0.0)
        cpu = parent.cpu() - before_cpu
        after_calls = parent.calls()
    finally:
        await asyncio.gather(*(c.close() for c in channels))
    cell = summarize([samples]).as_dict()
    served = [a - b for a, b in zip(after_calls, before_calls, strict=True)]
    total = sum(served) or 1
    cell["server_cpu_ms_per_call"] = round(cpu * 1000 / max(cell["calls"], 1), 4)
    cell["shares"] = [round(s / total, 3) for s in served]
    return cell


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDCACHE_")}
    if args.baseline_src:
        env["PYTHONPATH"] = args.baseline_src
    counts = ["1"] if args.baseline_src else ["1", "2", "auto"]
    load = {
        s: [Record(START + i * DAY, json.dumps({"close": i})) for i in range(BARS)] for s in SERIES
    }
    out: dict[str, Any] = {"cores": len(os.sched_getaffinity(0)), "cells": {}}
    for processes in counts:
        for kind, extra in (("hot", ()), ("cold", ("--hot-tier-bytes", "0"))):
            parent = Parent(
                f"{kind}-{processes}", workdir, processes, env, *extra, *args.server_arg
            )
            try:
                writer = own_channel(parent.proc.target)
                await wire.raw(writer, wire.WRITE)(wire.write(load))
                await writer.close()
                cases = [("Read", wire.READ, wire.latest(SERIES[0]), False)]
                if kind == "cold":
                    cases.append(("Write", wire.WRITE, b"", True))
                for call, method, request, fresh in cases:
                    for c in CONCURRENCIES:
                        cell = await measure(parent, request, method, c, args.seconds, fresh)
                        label = f"{kind if call == 'Read' else 'single-record'} {call}"
                        key = f"{label}, processes={processes} ({parent.children}), c={c}"
                        out["cells"][key] = cell
                        sys.stdout.write(
                            f"{key}: {cell['calls_per_s']:.0f} calls/s, "
                            f"{cell['server_cpu_ms_per_call']:.3f} ms CPU/call, "
                            f"p50 {cell['p50_ms']:.2f} ms, errors {cell['errors']}, "
                            f"shares {cell['shares']}\n"
                        )
                        sys.stdout.flush()
            finally:
                parent.proc.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.processes", description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--workdir", default=str(Path(tempfile.gettempdir()) / "mdcache-bench-processes")
    )
    parser.add_argument("--out", default="")
    parser.add_argument("--baseline-src", default="")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="one more argument for every server (repeat), e.g. --server-arg=--subscribe-relay "
        "--server-arg=off",
    )
    args = parser.parse_args()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    result = asyncio.run(run(args))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
