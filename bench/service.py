"""Parts 1 to 3 on the real A-share bars: writes, then reads against the floor and Redis.

Servers: ``mdcache-cold`` (``--hot-tier-bytes 0``: every Read goes to SQLite on a
worker), ``mdcache-hot`` (the defaults: a held series is answered from memory), the
floor (``bench.floor``) and redis-server. Each is loaded with the same 60 A-share
series; the loads into the mdcache servers are the batch-ingest measurements.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import data, floor, procs, reads, redisfloor, wire, writes
from bench.data import HOT_SERIES, YEAR, Bars

SIZES = (reads.Case("1 record", 1), reads.Case("250 records", YEAR))
HOP_WORK_US = 100  # SQLite answers the year of bars in 100-160 µs in-process (store floor)


def _sending(call: wire.RawCall, request: bytes) -> reads.Call:
    async def send(_: int) -> bytes:
        return await call(request)

    return send


async def run(
    workdir: Path,
    bars: Bars,
    *,
    concurrencies: list[int],
    seconds: float,
    warmup: float,
    rounds: int,
    progress: Callable[[str], None],
    store: Callable[[str], str | None] = lambda name: None,
    comparisons: bool = True,
) -> dict[str, Any]:
    """``store`` gives each mdcache server's store URL (None: SQLite in its data directory);
    ``comparisons`` adds the floors that answer from a thread, and Redis."""
    started: list[procs.Process] = []
    try:
        return await _run(
            workdir,
            bars,
            started,
            concurrencies=concurrencies,
            seconds=seconds,
            warmup=warmup,
            rounds=rounds,
            progress=progress,
            store=store,
            comparisons=comparisons,
        )
    finally:
        for proc in reversed(started):
            proc.stop()


async def _run(
    workdir: Path,
    bars: Bars,
    started: list[procs.Process],
    *,
    concurrencies: list[int],
    seconds: float,
    warmup: float,
    rounds: int,
    progress: Callable[[str], None],
    store: Callable[[str], str | None],
    comparisons: bool,
) -> dict[str, Any]:
    out: dict[str, Any] = {"servers": {}}
    cold = procs.mdcache("mdcache-cold", workdir, "--hot-tier-bytes", "0", store=store("cold"))
    started.append(cold)
    hot = procs.mdcache("mdcache-hot", workdir, store=store("hot"))
    started.append(hot)
    out["servers"]["mdcache-cold"] = "mdcache serve --hot-tier-bytes 0 (every Read from the store)"
    out["servers"]["mdcache-hot"] = "mdcache serve, defaults (256 MiB hot tier, 2 s max age)"
    channels = {name: wire.channel(p.target) for name, p in (("cold", cold), ("hot", hot))}
    rows = sum(len(r) for r in bars.values())
    progress(f"{len(bars)} series, {rows} bars")

    # Part 2: batch ingest (the loads), then single-record writes.
    ingest: dict[str, Any] = {}
    ingest["mdcache, 1 in flight"] = await writes.ingest(
        writes.grpc_sender(wire.raw(channels["cold"], wire.WRITE)), bars, 1, cold.pid
    )
    progress(f"ingest 1 in flight: {ingest['mdcache, 1 in flight']['rows_per_s']:.0f} rows/s")
    ingest["mdcache, 4 in flight"] = await writes.ingest(
        writes.grpc_sender(wire.raw(channels["hot"], wire.WRITE)), bars, 4, hot.pid
    )
    progress(f"ingest 4 in flight: {ingest['mdcache, 4 in flight']['rows_per_s']:.0f} rows/s")

    # The read requests, and mdcache's own answers to them, which the floor serves.
    first, last = data.year_window(bars[HOT_SERIES])
    requests = {
        "1 record": wire.latest(HOT_SERIES),
        "250 records": wire.window(HOT_SERIES, first, last, YEAR),
    }
    hot_read = wire.raw(channels["hot"], wire.READ)
    answers: dict[int, bytes] = {}
    sizes: dict[str, int] = {}
    for case in SIZES:
        answer = await hot_read(requests[case.name])
        if wire.records_in(answer) != case.records:
            raise RuntimeError(f"{case.name}: mdcache answered {wire.records_in(answer)} records")
        answers[case.records] = answer
        sizes[case.name] = len(answer)
    responses = workdir / "floor-responses.json"
    floor.save_responses(responses, answers)
    grpc_floor = procs.floor("floor", workdir, responses)
    started.append(grpc_floor)
    channels["floor"] = wire.channel(grpc_floor.target)
    out["servers"]["floor"] = "bench.floor: bare grpc.aio, same proto, pre-built answers"
    hop_floors = (
        {
            "floor-hop": procs.floor("floor-hop", workdir, responses, "--hop"),
            "floor-hop-work": procs.floor(
                "floor-hop-work", workdir, responses, "--hop-work-us", str(HOP_WORK_US)
            ),
        }
        if comparisons
        else {}
    )
    started.extend(hop_floors.values())
    channels.update({name: wire.channel(p.target) for name, p in hop_floors.items()})
    if comparisons:
        out["servers"]["floor-hop"] = (
            "bench.floor --hop: the floor taking its pre-built answer from a worker thread "
            "(run_in_executor, 2 threads), measured for the 250-record Read"
        )
        out["servers"]["floor-hop-work"] = (
            f"bench.floor --hop-work-us {HOP_WORK_US}: the same, the worker first hashing for "
            f"about {HOP_WORK_US} µs with the GIL released (a store read's length of work)"
        )
        out["hop_work_us"] = HOP_WORK_US

    ingest["grpc floor, 1 in flight"] = await writes.ingest(
        writes.grpc_sender(wire.raw(channels["floor"], wire.WRITE)), bars, 1, grpc_floor.pid
    )

    targets: dict[str, reads.Target] = {}
    for name, proc in (("floor", grpc_floor), ("hot", hot), ("cold", cold)):
        call = wire.raw(channels[name], wire.READ)
        targets[name] = reads.Target(
            proc.pid, {case: _sending(call, req) for case, req in requests.items()}
        )
    cold_case = "250 records"  # the case of the cold target
    for name, proc in hop_floors.items():
        call = wire.raw(channels[name], wire.READ)
        targets[name] = reads.Target(proc.pid, {cold_case: _sending(call, requests[cold_case])})

    redis_note = None
    if not comparisons:
        redis_note = "not measured beside this store (see the SQLite tables)"
    elif procs.redis_binary() is None:
        redis_note = "skipped: redis-server is not installed (apt-get install -y redis-server)"
        progress(f"Redis {redis_note}")
    else:
        redis_proc = procs.redis("redis", workdir)
        started.append(redis_proc)
        r = redisfloor.client(redis_proc.port)
        ingest["redis, 1 in flight"] = await writes.ingest(
            lambda b: redisfloor.ingest(r, b), bars, 1, redis_proc.pid
        )
        targets["redis"] = reads.Target(
            redis_proc.pid,
            {
                "1 record": redisfloor.latest(r, HOT_SERIES),
                "250 records": redisfloor.window(r, HOT_SERIES, first, last, YEAR),
            },
        )
        got = await targets["redis"].calls["250 records"](0)
        if not isinstance(got, list) or len(got) != YEAR:
            raise RuntimeError(f"redis: the window answered {got!r:.200}, not {YEAR} records")
        out["servers"]["redis"] = (
            f"redis-server, no persistence; redis-py asyncio, {redisfloor.parser()}"
        )
    out["ingest"] = ingest

    single: dict[str, Any] = {}
    single_floor: dict[str, Any] = {}
    payload = bars[HOT_SERIES][-1].payload
    for conc in concurrencies:  # the reads' concurrencies: callers in parallel share commits
        for name, proc, into in (("hot", hot, single), ("floor", grpc_floor, single_floor)):
            into[str(conc)] = m = await writes.single_writes(
                wire.raw(channels[name], wire.WRITE), payload, conc, seconds, warmup, proc.pid
            )
            progress(
                f"single-record Write c={conc} {name:<5}: {m['calls_per_s']:.0f} calls/s "
                f"p50 {m['p50_ms']} ms  server CPU {m['server_cpu_ms_per_call']} ms/call"
            )
    out["single_writes"] = single
    out["single_writes_floor"] = single_floor

    # Parts 1 and 3.
    out["reads"] = await reads.measure(
        list(SIZES), targets, concurrencies, seconds, warmup, rounds, progress
    )
    out["read_answer_bytes"] = sizes
    out["redis"] = redis_note
    out["series"] = "/".join(HOT_SERIES)
    out["window"] = {"start_ms": first, "end_ms": last, "records": YEAR}
    for chan in channels.values():
        await chan.close()
    return out
