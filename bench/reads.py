"""Parts 1 and 3, reads: mdcache hot and cold against the bare gRPC floor and Redis.

Every (size, concurrency) cell measures the four targets back to back, in an order
that rotates from round to round, so that the ratios within a cell share the machine's
state of the moment (other work on a noisy 2-core machine comes and goes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.load import Samples, closed_loop, summarize

Call = Callable[[int], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Target:
    """A server to read from: its process (for its CPU time) and a call for each case."""

    pid: int
    calls: dict[str, Call]


@dataclass(frozen=True, slots=True)
class Case:
    """One kind of Read: its name and the records it returns."""

    name: str
    records: int


async def measure(
    cases: list[Case],
    targets: dict[str, Target],
    concurrencies: list[int],
    seconds: float,
    warmup: float,
    rounds: int,
    progress: Callable[[str], None],
) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """``result[case][concurrency][target]``: the measurement, calls of all rounds pooled."""
    names = list(targets)
    pooled: dict[tuple[str, int, str], list[Samples]] = {}
    for round_no in range(rounds):
        for case in cases:
            for conc in concurrencies:
                shift = round_no % len(names)
                for target in names[shift:] + names[:shift]:
                    call = targets[target].calls.get(case.name)
                    if call is None:
                        continue
                    pid = targets[target].pid
                    samples = await closed_loop(call, conc, seconds, warmup, pid)
                    pooled.setdefault((case.name, conc, target), []).append(samples)
                    m = summarize([samples])
                    progress(
                        f"read {case.name:>11} c={conc:<3} {target:<12} "
                        f"{m.calls_per_s:9.0f} calls/s  p50 {m.p50_ms:7.3f} ms  "
                        f"p99 {m.p99_ms:7.3f} ms  server CPU {m.server_cpu_ms_per_call:.3f} ms/call"
                        + (f"  errors {m.errors}" if m.errors else "")
                    )
    result: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for (case_name, conc, target), runs in pooled.items():
        cell = result.setdefault(case_name, {}).setdefault(str(conc), {})
        cell[target] = summarize(runs).as_dict()
        cell[target]["calls_per_s_by_round"] = [
            round(len(run.latencies) / run.seconds, 1) for run in runs if run.seconds > 0
        ]
    return result
