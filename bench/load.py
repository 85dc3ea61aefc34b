"""A closed-loop load generator: ``concurrency`` callers, each calling again as soon as answered.

Calls of the warm-up are made but not counted; then every call that starts and ends
within the measured span counts, its latency taken around the await as the caller sees
it. Calls per second are the calls that ended in the span over the span.

CPU time is taken over the measured span too, of the server (from /proc) and of this
process (the load generator), and divided by the calls: on a shared, noisy machine
CPU milliseconds per call move far less than calls per second do.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

Call = Callable[[int], Awaitable[object]]  # called with the caller's number
TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, every thread) a process has used; 0 when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


@dataclass(frozen=True, slots=True)
class Measurement:
    """One cell of the tables: throughput and latency of one kind of call at one concurrency."""

    concurrency: int
    calls: int
    errors: int
    seconds: float
    calls_per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    server_cpu_ms_per_call: float
    client_cpu_ms_per_call: float

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def percentile(sorted_values: list[float], q: float) -> float:
    """The nearest-rank percentile of sorted values (``q`` in 0..100)."""
    if not sorted_values:
        return math.nan
    rank = max(math.ceil(q / 100 * len(sorted_values)), 1)
    return sorted_values[rank - 1]


@dataclass(slots=True)
class Samples:
    """The latencies (seconds) of the calls counted, failed calls and CPU seconds of one span."""

    concurrency: int
    seconds: float
    latencies: list[float]
    errors: int
    server_cpu: float = 0.0
    client_cpu: float = 0.0


def summarize(runs: list[Samples]) -> Measurement:
    """One measurement of one or more spans of the same load, their calls pooled."""
    ordered = sorted(x for run in runs for x in run.latencies)
    seconds = sum(run.seconds for run in runs)
    calls = len(ordered)
    per_call = 1000 / calls if calls else math.nan
    return Measurement(
        concurrency=runs[0].concurrency,
        calls=calls,
        errors=sum(run.errors for run in runs),
        seconds=seconds,
        calls_per_s=calls / seconds if seconds > 0 else math.nan,
        p50_ms=percentile(ordered, 50) * 1000,
        p99_ms=percentile(ordered, 99) * 1000,
        mean_ms=(sum(ordered) / calls * 1000) if calls else math.nan,
        server_cpu_ms_per_call=sum(run.server_cpu for run in runs) * per_call,
        client_cpu_ms_per_call=sum(run.client_cpu for run in runs) * per_call,
    )


async def closed_loop(
    call: Call, concurrency: int, seconds: float, warmup: float, server_pid: int | None = None
) -> Samples:
    """Runs ``call`` from ``concurrency`` callers for ``warmup + seconds``; measures the rest."""
    clock = time.perf_counter
    begin = clock()
    measure_from = begin + warmup
    measure_to = measure_from + seconds
    latencies: list[float] = []
    errors = 0
    cpu: dict[str, float] = {}

    def server_cpu() -> float:
        return process_cpu(server_pid) if server_pid else 0.0

    async def meter() -> None:
        await asyncio.sleep(max(measure_from - clock(), 0))
        cpu["server"], cpu["client"] = server_cpu(), time.process_time()
        await asyncio.sleep(max(measure_to - clock(), 0))
        cpu["server"] = server_cpu() - cpu["server"]
        cpu["client"] = time.process_time() - cpu["client"]

    async def caller(n: int) -> None:
        nonlocal errors
        while True:
            started = clock()
            if started >= measure_to:
                return
            try:
                await call(n)
            except Exception:  # noqa: BLE001 (counted; a benchmark goes on past a failed call)
                if started >= measure_from:
                    errors += 1
                continue
            ended = clock()
            if started >= measure_from and ended <= measure_to:
                latencies.append(ended - started)

    await asyncio.gather(meter(), *(caller(n) for n in range(concurrency)))
    return Samples(concurrency, seconds, latencies, errors, cpu["server"], cpu["client"])
