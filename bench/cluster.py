"""``python -m bench.cluster``: mdcache on a three-node TDengine cluster, run on demand.

Batch ingest and cold 250-record Reads through ``mdcache serve --hot-tier-bytes 0`` on a
single TDengine server, on the cluster with a ``REPLICA 1`` database and with ``REPLICA 3``;
then failover: 8 writers through mdcache on the ``REPLICA 3`` database while one ``taosd``
after another is killed with SIGKILL (each started again on its folder before the next),
timing the first acknowledged Write after each kill and counting the calls that failed.

The three nodes share this machine's 2 cores with mdcache and the load generator: the
figures show what replication costs, not what a real cluster of three machines serves.
Writes ``bench/results/<date>-cluster.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import data, procs, taosd, wire, writes
from bench.data import HOT_SERIES, YEAR
from bench.load import closed_loop, summarize
from harness.taosd import Cluster
from mdcache_client import Client, MdcacheError, Record, Series

RESULTS = Path(__file__).resolve().parent / "results"


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


async def _measure(
    name: str, url: str, workdir: Path, bars: data.Bars, seconds: float
) -> dict[str, Any]:
    server = procs.mdcache(name, workdir, "--hot-tier-bytes", "0", store=url)
    chan = wire.channel(server.target)
    try:
        ingest = await writes.ingest(
            writes.grpc_sender(wire.raw(chan, wire.WRITE)), bars, 4, server.pid
        )
        first, last = data.year_window(bars[HOT_SERIES])
        read = wire.raw(chan, wire.READ)
        request = wire.window(HOT_SERIES, first, last, YEAR)

        async def one(_: int) -> bytes:
            return await read(request)

        reads = {}
        for conc in (1, 8):
            m = summarize([await closed_loop(one, conc, seconds, 0.5, server.pid)])
            reads[str(conc)] = m.as_dict()
        say(
            f"{name}: ingest {ingest['rows_per_s']:,.0f} rows/s; cold 250 c=1 "
            f"{reads['1']['calls_per_s']:.0f} calls/s p50 {reads['1']['p50_ms']:.2f} ms, "
            f"c=8 {reads['8']['calls_per_s']:.0f} calls/s"
        )
        return {"ingest": ingest, "cold_250": reads}
    finally:
        await chan.close()
        server.stop()


def _failover(url: str, workdir: Path, cluster: Cluster, kills: int) -> dict[str, Any]:
    server = procs.mdcache("failover", workdir, "--hot-tier-bytes", "0", store=url)
    acked: list[float] = []
    failed: list[float] = []
    stop = threading.Event()

    def writer(i: int) -> None:
        ts = 1_700_000_000_000
        with Client(server.target, timeout=10) as client:
            while not stop.is_set():
                ts += 1
                try:
                    client.write(Series(f"F{i}", "quote", "tick"), [Record(ts, "{}")])
                except MdcacheError:
                    failed.append(time.monotonic())
                    continue
                acked.append(time.monotonic())

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    events = []
    try:
        for n in range(kills):
            time.sleep(3)
            node = n % len(cluster.nodes)
            killed = cluster.kill(node)
            deadline = killed + 60
            while time.monotonic() < deadline and not any(a > killed for a in acked):
                time.sleep(0.02)
            first = min((a for a in acked if a > killed), default=float("nan"))
            time.sleep(1)
            event = {
                "node": node + 1,
                "first_write_after_kill_s": round(first - killed, 3),
                "failed_calls": sum(1 for f in failed if killed <= f <= first + 1),
            }
            events.append(event)
            say(f"failover: killed dnode {node + 1}: {event}")
            cluster.restart(node)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        server.stop()
    waits = [e["first_write_after_kill_s"] for e in events]
    return {
        "kills": events,
        "first_write_after_kill_p50_s": statistics.median(waits) if waits else None,
        "writes_acknowledged": len(acked),
        "writes_failed": len(failed),
    }


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# mdcache on a TDengine cluster, {results['date']}",
        "",
        f"Machine: {results['machine']}. TDengine {results['server_version']}, three `taosd` "
        "on this one machine (each its own folder and port, three mnodes). They share 2 cores "
        "with mdcache and the load generator, so these figures show the cost of replication, "
        "not the capacity of a real cluster of three machines.",
        "",
        "| store | ingest rows/s (4 in flight) | cold 250 c=1 calls/s | p50 ms | c=8 calls/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results["setups"].items():
        one, eight = r["cold_250"]["1"], r["cold_250"]["8"]
        lines.append(
            f"| {name} | {r['ingest']['rows_per_s']:,.0f} | {one['calls_per_s']:,.0f} | "
            f"{one['p50_ms']:.2f} | {eight['calls_per_s']:,.0f} |"
        )
    f = results["failover"]
    lines += [
        "",
        "## A node killed under 8 writers (REPLICA 3)",
        "",
        "| dnode killed | first acknowledged Write after SIGKILL, s | calls failed meanwhile |",
        "|---:|---:|---:|",
        *(
            f"| {e['node']} | {e['first_write_after_kill_s']} | {e['failed_calls']} |"
            for e in f["kills"]
        ),
        "",
        f"p50 {f['first_write_after_kill_p50_s']} s; {f['writes_acknowledged']:,} writes "
        f"acknowledged, {f['writes_failed']:,} failed (UNAVAILABLE, each retried by the client "
        "within its deadline first) over the whole run.",
        "",
    ]
    return "\n".join(lines)


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    bars = data.a_shares()
    if args.quick:
        bars = dict(sorted(bars.items())[:10]) | {HOT_SERIES: bars[HOT_SERIES]}
    seconds = 1.0 if args.quick else 3.0
    out: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores",
        "setups": {},
    }
    with tempfile.TemporaryDirectory(prefix="mdcache-cluster-") as tmp:
        workdir = Path(tmp)
        with taosd.server(workdir, None) as single:
            out["server_version"] = taosd.version(single)
            out["setups"]["single server"] = await _measure(
                "single", f"{single}/bench_single", workdir, bars, seconds
            )
        with taosd.cluster(workdir) as cluster:
            for replica in (1, 3):
                url = f"{cluster.base}/bench_r{replica}?replica={replica}"
                out["setups"][f"cluster, REPLICA {replica}"] = await _measure(
                    f"cluster-r{replica}", url, workdir, bars, seconds
                )
            url = f"{cluster.base}/bench_failover?replica=3"
            out["failover"] = await asyncio.to_thread(
                _failover, url, workdir, cluster, 3 if args.quick else 6
            )
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    if why := taosd.available(None):
        raise SystemExit(f"bench.cluster: {why}")
    results = asyncio.run(_main(args))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{results['date']}-cluster" + ("-quick" if args.quick else "")
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(results) + "\n")
    say(f"wrote {args.out / stem}.json and .md")


if __name__ == "__main__":
    taosd.with_taos_library("bench.cluster")
    main()
