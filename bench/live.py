"""``python -m bench.live``: Subscribe, from Write acknowledged to record received.

Every server is a process of its own on a free loopback port (``bench.procs``), over a
SQLite file in a temporary directory; the writer and the subscribers are one asyncio
process (this one), so a delay is measured on one clock: from the moment the writer's
``write`` returned (the Write acknowledged) to the moment a subscriber's iterator gave
the record. A push can overtake the acknowledgement (the server pushes before it
answers): such a delay is negative, and counted as it is.

1. **Fan-out**: one writer, one-record Writes as fast as acknowledged, to one series,
   with 1, 10 and 100 subscribers of it: records per second written, records per second
   received over all subscribers, delay p50 / p99.
2. **Paced**: one record every 10 ms to one series, 1 subscriber: the delay at a rate
   well below capacity, on one server and across two replicas (two server processes on
   one store, written through one, subscribed through the other): on one SQLite file
   (the relay's journal, ``--subscribe-relay on``) and on one TDengine database (its
   subscriptions; a ``taosd`` of the bundle started for the run, or ``--tdengine-url``;
   left out with a reason when there is neither).
3. **Many**: 1,000 subscribers, one series each, and a writer writing every series in
   turn (one ``write_many`` of 100 series every 10 ms): delay p50 / p99, and the server's
   resident memory before the subscribers, with them, and after they hung up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import procs, taosd
from bench.load import percentile
from mdcache_client import AsyncClient, Record, Series

T0 = 1_700_000_000_000
SERVER_ARGS = ("--max-concurrent-calls", "4096", "--log-level", "warning")


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _ms(values: list[float], q: float) -> float:
    return round(percentile(sorted(values), q) * 1000, 2)


class Clock:
    """When each record (by series and timestamp) was acknowledged to the writer."""

    def __init__(self) -> None:
        self.acked: dict[tuple[Series, int], float] = {}
        self.delays: list[float] = []
        self.received = 0
        self.early: dict[tuple[Series, int], list[float]] = {}

    def ack(self, series: Series, ts: int) -> None:
        now = time.perf_counter()
        self.acked[(series, ts)] = now
        for got in self.early.pop((series, ts), []):
            self.delays.append(got - now)  # the push overtook the acknowledgement

    def got(self, series: Series, ts: int) -> None:
        now = time.perf_counter()
        self.received += 1
        acked = self.acked.get((series, ts))
        if acked is None:
            self.early.setdefault((series, ts), []).append(now)
        else:
            self.delays.append(now - acked)


async def _subscriber(
    target: str, series: list[Series], clock: Clock, ready: Callable[[], None]
) -> None:
    async with AsyncClient(target, timeout=30) as client:
        sub = await client.subscribe(series)
        changes = aiter(sub)
        ready()
        async for change in changes:
            clock.got(change.series, change.record.ts_ms or 0)


async def _write(
    target: str, series: Series, clock: Clock, seconds: float, interval: float = 0.0
) -> tuple[int, float]:
    """One-record Writes for ``seconds``, one every ``interval`` (0: back to back), each
    clocked as acknowledged; then a second for the last pushes. Records written, seconds."""
    written = 0
    async with AsyncClient(target, timeout=30) as writer:
        began = time.perf_counter()
        while time.perf_counter() - began < seconds:
            await writer.write(series, [Record.of(T0 + written, {"p": written})])
            clock.ack(series, T0 + written)
            written += 1
            if interval:
                await asyncio.sleep(max(began + written * interval - time.perf_counter(), 0))
        wall = time.perf_counter() - began
        await asyncio.sleep(1.0)  # the last pushes arrive
    return written, wall


async def fan_out(workdir: Path, subscribers: int, seconds: float) -> dict[str, Any]:
    server = procs.mdcache(f"live-fan-{subscribers}", workdir, *SERVER_ARGS)
    series = Series("600519", "quote", "tick")
    clock = Clock()
    try:
        tasks = [
            asyncio.create_task(_subscriber(server.target, [series], clock, lambda: None))
            for _ in range(subscribers)
        ]
        await asyncio.sleep(1.0 + subscribers / 100)  # every stream open
        written, wall = await _write(server.target, series, clock, seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        server.stop()
    return {
        "subscribers": subscribers,
        "written_per_s": round(written / wall, 1),
        "received_per_s": round(clock.received / wall, 1),
        "received_share": round(clock.received / max(written * subscribers, 1), 4),
        "delay_p50_ms": _ms(clock.delays, 50),
        "delay_p99_ms": _ms(clock.delays, 99),
    }


async def paced(
    workdir: Path, store: str, replicas: bool, seconds: float, interval: float = 0.01
) -> dict[str, Any]:
    """``store``: a store URL (TDengine), or ``sqlite`` (a file in ``workdir``)."""
    kind = "sqlite" if store == "sqlite" else "tdengine"
    if store == "sqlite":
        name = "replicas" if replicas else "one"
        store = f"sqlite:///{workdir / f'paced-{name}.sqlite3'}"
    extra = ("--subscribe-relay", "on") if replicas else ()
    a = procs.mdcache("live-paced-a", workdir, *SERVER_ARGS, *extra, store=store)
    b = procs.mdcache("live-paced-b", workdir, *SERVER_ARGS, *extra, store=store) if replicas else a
    series = Series("600519", "quote", "tick")
    clock = Clock()
    try:
        opened = asyncio.Event()
        task = asyncio.create_task(_subscriber(b.target, [series], clock, opened.set))
        await asyncio.wait_for(opened.wait(), 60)  # a TDengine relay subscribes first
        await asyncio.sleep(1.0)
        written, _ = await _write(a.target, series, clock, seconds, interval)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        a.stop()
        if b is not a:
            b.stop()
    return {
        "store": kind,
        "replicas": 2 if replicas else 1,
        "written": written,
        "received": clock.received,
        "delay_p50_ms": _ms(clock.delays, 50),
        "delay_p99_ms": _ms(clock.delays, 99),
        "delay_max_ms": _ms(clock.delays, 100),
    }


async def many(workdir: Path, subscribers: int, seconds: float) -> dict[str, Any]:
    server = procs.mdcache("live-many", workdir, *SERVER_ARGS)
    series = [Series(f"{600000 + i}", "quote", "tick") for i in range(subscribers)]
    clock = Clock()
    try:
        idle_mb = rss_mb(server.pid)
        opened = 0

        def ready() -> None:
            nonlocal opened
            opened += 1

        channels = 10  # subscribers share 10 client channels
        groups = [series[i::channels] for i in range(channels)]

        async def group(members: list[Series]) -> None:
            async with AsyncClient(server.target, timeout=30) as client:
                subs = [await client.subscribe([s]) for s in members]

                async def run(sub: Any) -> None:
                    ready()
                    async for change in sub:
                        clock.got(change.series, change.record.ts_ms or 0)

                await asyncio.gather(*(run(s) for s in subs))

        tasks = [asyncio.create_task(group(g)) for g in groups]
        await asyncio.sleep(3.0)  # every stream open
        subscribed_mb = rss_mb(server.pid)
        written = 0
        async with AsyncClient(server.target, timeout=30) as writer:
            began = time.perf_counter()
            step = 0
            while time.perf_counter() - began < seconds:
                chunk = series[(step * 100) % subscribers :][:100]
                ts = T0 + step
                await writer.write_many({s: [Record.of(ts, {"p": step})] for s in chunk})
                for s in chunk:
                    clock.ack(s, ts)
                written += len(chunk)
                step += 1
                await asyncio.sleep(max(began + step * 0.01 - time.perf_counter(), 0))
            await asyncio.sleep(1.0)
        loaded_mb = rss_mb(server.pid)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(2.0)
        after_mb = rss_mb(server.pid)
    finally:
        server.stop()
    return {
        "subscribers": subscribers,
        "opened": opened,
        "written": written,
        "received": clock.received,
        "delay_p50_ms": _ms(clock.delays, 50),
        "delay_p99_ms": _ms(clock.delays, 99),
        "server_rss_mb": {
            "idle": round(idle_mb, 1),
            "subscribed": round(subscribed_mb, 1),
            "writing": round(loaded_mb, 1),
            "after_hang_up": round(after_mb, 1),
        },
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"fan_out": [], "paced": []}
    with tempfile.TemporaryDirectory(prefix="mdcache-live-") as tmp:
        workdir = Path(tmp)
        for n in (1, 10, 100):
            cell = await fan_out(workdir, n, args.seconds)
            say(f"fan-out to {n}: {json.dumps(cell)}")
            results["fan_out"].append(cell)
        for replicas in (False, True):
            cell = await paced(workdir, "sqlite", replicas, args.seconds)
            say(f"paced, sqlite, {cell['replicas']} server(s): {json.dumps(cell)}")
            results["paced"].append(cell)
        why_not = taosd.available(args.tdengine_url)
        if why_not:
            say(f"paced on TDengine left out: {why_not}")
            results["tdengine_left_out"] = why_not
        else:
            with taosd.server(workdir, args.tdengine_url) as base:
                for replicas in (False, True):
                    url = f"{base}/mdcache_live_{'replicas' if replicas else 'one'}"
                    cell = await paced(workdir, url, replicas, args.seconds)
                    say(f"paced, tdengine, {cell['replicas']} server(s): {json.dumps(cell)}")
                    results["paced"].append(cell)
        results["many"] = await many(workdir, args.many, args.seconds)
        say(f"many: {json.dumps(results['many'])}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.live", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per cell")
    parser.add_argument("--many", type=int, default=1000, help="subscribers of the last part")
    parser.add_argument(
        "--tdengine-url", help="a TDengine 3.x server to use (default: start the bundle's)"
    )
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    arguments = parser.parse_args()
    figures = asyncio.run(main(arguments))
    if arguments.out:
        arguments.out.write_text(json.dumps(figures, indent=2) + "\n")
