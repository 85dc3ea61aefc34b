"""Parts 1 to 3 on the real A-share bars: writes, then reads against the floor and Redis.

Servers: ``mdcache-cold`` (``--hot-tier-bytes 0``: every Read goes to SQLite on a
worker), ``mdcache-hot`` (the defaults: a held series is answered from memory), the
floor (``bench.floor``) and redis-server. Each is loaded with the same 60 A-share
series; the loads into the mdcache servers are the batch-ingest measurements.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import data, floor, procs, reads, storefloor, wire, writes
from bench.case import Case, Results, Settings, Target
from bench.data import HOT_SERIES, YEAR, Bars
from bench.table import fmt, mark, pq, ratio_of
from mdcache_server.model import SeriesKey

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
    ceiling: str | None = None,
) -> dict[str, Any]:
    """``store`` gives each mdcache server's store URL (None: SQLite in its data directory);
    ``comparisons`` adds the floors that answer from a thread, and Redis; ``ceiling``, a
    TDengine server's base URL, adds the gRPC floor doing TDengine alone's work there."""
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
            ceiling=ceiling,
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
    ceiling: str | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"servers": {}}
    cold = procs.mdcache("mdcache-cold", workdir, "--hot-tier-bytes", "0", store=store("cold"))
    started.append(cold)
    hot = procs.mdcache("mdcache-hot", workdir, store=store("hot"), metrics=True)
    started.append(hot)
    out["servers"]["mdcache-cold"] = "mdcache serve --hot-tier-bytes 0 (every Read from the store)"
    out["servers"]["mdcache-hot"] = "mdcache serve, defaults (256 MiB hot tier)"
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

    read_targets = [("floor", grpc_floor), ("hot", hot), ("cold", cold)]
    if ceiling:
        td_ceiling = procs.tdceiling("ceiling", workdir, responses, ceiling, "bench_ceiling")
        started.append(td_ceiling)
        channels["ceiling"] = wire.channel(td_ceiling.target)
        out["servers"]["ceiling"] = (
            "bench.tdceiling: the floor doing TDengine alone's work on a worker thread "
            "(multi-row INSERT text, the window query), checking and holding nothing"
        )
        for in_flight in (1, 4):  # as mdcache's: the best of the two is the ceiling
            ingest[f"ceiling, {in_flight} in flight"] = await writes.ingest(
                writes.grpc_sender(wire.raw(channels["ceiling"], wire.WRITE)),
                bars,
                in_flight,
                td_ceiling.pid,
            )
        read_targets.append(("ceiling", td_ceiling))

    targets: dict[str, reads.Target] = {}
    for name, proc in read_targets:
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
        from bench import redisfloor  # redis-py: the bench extra, not needed by --parts others

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

    # Parts 1 and 3: the hot server's store calls counted around them (all of its Reads
    # are of the held series: none should reach the store).
    calls_before = procs.store_calls(hot)
    out["reads"] = await reads.measure(
        list(SIZES), targets, concurrencies, seconds, warmup, rounds, progress
    )
    calls_after = procs.store_calls(hot)
    out["hot_store_calls"] = {
        kind: calls_after[kind] - calls_before.get(kind, 0.0) for kind in sorted(calls_after)
    }
    out["hot_reads"] = sum(
        cell["hot"]["calls"]
        for by_conc in out["reads"].values()
        for cell in by_conc.values()
        if "hot" in cell
    )
    progress(f"hot server's store calls during {out['hot_reads']} Reads: {out['hot_store_calls']}")
    out["read_answer_bytes"] = sizes
    out["redis"] = redis_note
    out["series"] = "/".join(HOT_SERIES)
    out["window"] = {"start_ms": first, "end_ms": last, "records": YEAR}
    for chan in channels.values():
        await chan.close()
    return out


# The case ---------------------------------------------------------------------------------

HOT_VS_FLOOR = 0.8
COLD_VS_FLOOR = 0.5
INGEST_ROWS_PER_S = 100_000
SEED_READ_MS = (2.0, 10.0)
SEED_WRITES_PER_S = (100, 2_000)
CONCURRENCIES = [1, 8, 32]


@dataclass(frozen=True)
class ServiceResult:
    """Parts 1 to 3 (``service``) and SQLite alone on the same bars (``store_floor``)."""

    service: dict[str, Any]
    store_floor: dict[str, Any] | None

    def as_json(self) -> dict[str, Any]:
        return {"service": self.service, "store_floor": self.store_floor}


def by_round(cell: dict[str, Any], target: str) -> list[float]:
    """The target's calls/s over the floor's, round by round (measured back to back)."""
    return [
        round(a / b, 2)
        for a, b in zip(
            cell[target].get("calls_per_s_by_round", []),
            cell["floor"].get("calls_per_s_by_round", []),
            strict=False,
        )
        if b
    ]


def best_ingest(service: dict[str, Any], of: str = "mdcache") -> tuple[str, dict[str, Any]]:
    """The ingest of the server ``of`` (named in each ingest's key) with the most rows/s:
    its name and figures."""
    return max(
        ((k, v) for k, v in service["ingest"].items() if k.startswith(of)),
        key=lambda kv: kv[1]["rows_per_s"],
    )


class ServiceCase(Case[ServiceResult]):
    name = "service"

    async def run(self, settings: Settings) -> ServiceResult:
        service = await run(
            settings.workdir,
            settings.shares,
            concurrencies=CONCURRENCIES,
            seconds=settings.seconds,
            warmup=settings.warmup,
            rounds=settings.rounds,
            progress=settings.say,
        )
        window = (service["window"]["start_ms"], service["window"]["end_ms"])
        store = storefloor.run(
            settings.workdir,
            settings.shares,
            SeriesKey(*HOT_SERIES),
            window,
            seconds=1.0 if settings.quick else 2.0,
        )
        settings.say(f"SQLite alone: {store}")
        return ServiceResult(service, store)

    def load(self, results: Results) -> ServiceResult | None:
        service = results.get("service")
        return ServiceResult(service, results.get("store_floor")) if service else None

    def targets(self, result: ServiceResult, results: Results) -> list[Target]:
        service = result.service
        out: list[Target] = []
        for case, by_conc in service["reads"].items():
            for conc, cell in by_conc.items():
                floor = cell["floor"]["calls_per_s"]
                hot = ratio_of(cell["hot"]["calls_per_s"], floor)
                out.append(
                    Target(
                        target=f"hot Read {case}, c={conc}: >= {HOT_VS_FLOOR} x floor calls/s",
                        measured=round(hot, 3),
                        ok=hot >= HOT_VS_FLOOR,
                        rounds=by_round(cell, "hot"),
                    )
                )
        for conc, cell in service["reads"]["250 records"].items():
            floor = cell["floor"]["calls_per_s"]
            cold = ratio_of(cell["cold"]["calls_per_s"], floor)
            out.append(
                Target(
                    target=f"cold Read 250 records, c={conc}: >= {COLD_VS_FLOOR} x floor calls/s",
                    measured=round(cold, 3),
                    ok=cold >= COLD_VS_FLOOR,
                    rounds=by_round(cell, "cold"),
                )
            )
        best = max(v["rows_per_s"] for k, v in service["ingest"].items() if k.startswith("mdcache"))
        out.append(
            Target(
                target=f"batch ingest (1,000-row batches) >= {INGEST_ROWS_PER_S:,} rows/s",
                measured=best,
                ok=best >= INGEST_ROWS_PER_S,
            )
        )
        p50s = [
            cell[t]["p50_ms"]
            for by_conc in service["reads"].values()
            for cell in [by_conc.get("1")]
            if cell
            for t in ("hot", "cold")
        ]
        out.append(
            Target(
                target=f"Read p50 at c=1 ahead of the seed's {SEED_READ_MS[0]:g}-"
                f"{SEED_READ_MS[1]:g} ms (worst of hot/cold, 1/250 records)",
                measured=max(p50s) if p50s else math.nan,
                ok=bool(p50s) and max(p50s) < SEED_READ_MS[0],
            )
        )
        single = max(v["calls_per_s"] for v in service["single_writes"].values())
        out.append(
            Target(
                target=f"single-record Writes/s ahead of the seed's {SEED_WRITES_PER_S[0]:,}-"
                f"{SEED_WRITES_PER_S[1]:,} (best concurrency)",
                measured=single,
                ok=single > SEED_WRITES_PER_S[1],
            )
        )
        out.append(
            Target(
                target=f"batch ingest ahead of the seed's {SEED_WRITES_PER_S[1]:,} writes/s",
                measured=best,
                ok=best > SEED_WRITES_PER_S[1],
            )
        )
        return out

    def tables(self, result: ServiceResult, results: Results) -> list[str]:
        lines: list[str] = []
        _tables(result.service, result.store_floor, lines.append)
        return lines

    def notes(self, result: ServiceResult, results: Results) -> list[str]:
        return _notes(result.service, result.store_floor, results.get("micro_us") or {})


CASE = ServiceCase()


def _tables(
    service: dict[str, Any], store: dict[str, Any] | None, add: Callable[[str], None]
) -> None:
    add("## Reads (parts 1 and 3)")
    add("")
    add(f"Series {service['series']}; 1 record = the latest bar (newest first, limit 1); ")
    add(
        f"250 records = a year of daily bars (window {service['window']['start_ms']}.."
        f"{service['window']['end_ms']}, limit 250). Answer sizes: "
        + ", ".join(f"{k} {v:,} bytes" for k, v in service["read_answer_bytes"].items())
        + "."
    )
    add("hot = default server, series held in the hot tier; cold = `--hot-tier-bytes 0`, every")
    add("Read from SQLite on a worker thread. floor = bare grpc.aio server with pre-built answers.")
    if service.get("redis"):
        add(f"Redis: {service['redis']}")
    if "hot_store_calls" in service:
        calls = service["hot_store_calls"]
        add(
            f"Store calls of the hot server during its {service['hot_reads']:,} Reads, by kind "
            "(`mdcache_store_calls_total`; a hit makes none): "
            + (", ".join(f"{k} {v:,.0f}" for k, v in calls.items() if v) or "none")
            + "."
        )
    add("")
    add("### Calls per second (ratio to the floor beside each)")
    add("")
    add("| read | c | floor | hot | hot ÷ floor | cold | cold ÷ floor | Redis | hot ÷ Redis |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case, by_conc in service["reads"].items():
        for conc, cell in by_conc.items():
            floor = cell["floor"]["calls_per_s"]
            hot = cell["hot"]["calls_per_s"]
            cold = cell["cold"]["calls_per_s"]
            redis = cell.get("redis", {}).get("calls_per_s", math.nan)
            hot_t = HOT_VS_FLOOR
            cold_t = COLD_VS_FLOOR if case.startswith("250") else None
            add(
                f"| {case} | {conc} | {fmt(floor)} | {fmt(hot)} | "
                f"{mark(ratio_of(hot, floor), hot_t)} | {fmt(cold)} | "
                f"{mark(ratio_of(cold, floor), cold_t)} | {fmt(redis)} | "
                f"{fmt(ratio_of(hot, redis), 2)} |"
            )
    hops = [
        (case, conc, cell)
        for case, by_conc in service["reads"].items()
        for conc, cell in by_conc.items()
        if "floor-hop" in cell and "floor-hop-work" in cell
    ]
    if hops:
        work = service.get("hop_work_us", "N")
        add("")
        add("### Cold Reads against floors that answer from a worker thread")
        add("")
        add(
            "floor + hop = the floor taking its pre-built answer from a worker thread, doing "
            f"nothing there; floor + hop + work = the same after about {work} µs of work on the "
            "thread with the GIL released (hashing), about what SQLite takes to answer the "
            "year of bars. Each ratio is to the floor."
        )
        add("")
        add(
            "| read | c | floor | floor + hop | floor + hop + work | cold | cold ÷ "
            "(floor + hop + work) | server CPU ms/call: floor / + hop / + work / cold |"
        )
        add("|---|---:|---:|---:|---:|---:|---:|---|")
        names = ("floor", "floor-hop", "floor-hop-work", "cold")
        for case, conc, cell in hops:
            floor, hop, worked, cold = (cell[t]["calls_per_s"] for t in names)
            cpu = " / ".join(fmt(cell[t]["server_cpu_ms_per_call"], 3) for t in names)
            add(
                f"| {case} | {conc} | {fmt(floor)} | {fmt(hop)} ({fmt(ratio_of(hop, floor), 2)})"
                f" | {fmt(worked)} ({fmt(ratio_of(worked, floor), 2)}) | {fmt(cold)} "
                f"({mark(ratio_of(cold, floor), COLD_VS_FLOOR)}) | "
                f"{fmt(ratio_of(cold, worked), 2)} | {cpu} |"
            )
    add("")
    add("### Latency as the caller sees it, p50 / p99 in ms")
    add("")
    add("| read | c | floor | hot | cold | Redis | seed |")
    add("|---|---:|---:|---:|---:|---:|---|")
    for case, by_conc in service["reads"].items():
        for conc, cell in by_conc.items():
            cols = [pq(cell.get(t)) for t in ("floor", "hot", "cold", "redis")]
            add(f"| {case} | {conc} | {' | '.join(cols)} | 2-10 ms |")
    add("")
    add("### Server CPU per call, ms (ratio to the floor beside each)")
    add("")
    add("| read | c | floor | hot | hot ÷ floor | cold | cold ÷ floor | Redis |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|")
    for case, by_conc in service["reads"].items():
        for conc, cell in by_conc.items():
            f, h, c = (cell[t]["server_cpu_ms_per_call"] for t in ("floor", "hot", "cold"))
            r = cell.get("redis", {}).get("server_cpu_ms_per_call", math.nan)
            add(
                f"| {case} | {conc} | {fmt(f, 3)} | {fmt(h, 3)} | {fmt(ratio_of(h, f), 2)} | "
                f"{fmt(c, 3)} | {fmt(ratio_of(c, f), 2)} | {fmt(r, 3)} |"
            )
    add("")
    add("## Writes (part 2)")
    add("")
    add("Embedded store (SQLite, `synchronous=FULL`: every answered Write is fsynced). TDengine's")
    add("figures are in their own section below.")
    add("")
    add(
        "| batch ingest, 1,000-row batches | rows/s | ÷ target 100,000 | batch p50 ms "
        "| server CPU µs/row |"
    )
    add("|---|---:|---:|---:|---:|")
    for name, v in service["ingest"].items():
        add(
            f"| {name} | {fmt(v['rows_per_s'])} | "
            f"{fmt(v['rows_per_s'] / INGEST_ROWS_PER_S, 2)} | {fmt(v['batch_p50_ms'], 2)} | "
            f"{fmt(v['server_cpu_us_per_row'] or math.nan, 1)} |"
        )
    if store:
        add(
            f"| SQLite alone (the server's SqliteStore in-process, no gRPC) | "
            f"{fmt(store['ingest_rows_per_s'])} | "
            f"{fmt(store['ingest_rows_per_s'] / INGEST_ROWS_PER_S, 2)} | - | - |"
        )
    add("")
    add(
        "| single-record Write | calls/s | ÷ floor | seed 100-2,000 | p50 ms | p99 ms "
        "| server CPU ms/call |"
    )
    add("|---|---:|---:|---|---:|---:|---:|")
    floors = service.get("single_writes_floor", {})
    for conc, v in service["single_writes"].items():
        for name, cell in (("mdcache", v), ("grpc floor", floors.get(conc))):
            if not cell:
                continue
            ratio = (
                ratio_of(cell["calls_per_s"], floors[conc]["calls_per_s"]) if floors else math.nan
            )
            add(
                f"| {name} c={conc} | {fmt(cell['calls_per_s'])} | {fmt(ratio, 2)} | "
                f"{_against_seed(cell['calls_per_s'])} | {fmt(cell['p50_ms'], 2)} | "
                f"{fmt(cell['p99_ms'], 2)} | {fmt(cell['server_cpu_ms_per_call'], 3)} |"
            )
    if store:
        add(
            f"| SQLite alone, one commit per record | {fmt(store['single_writes_per_s'])} "
            f"| - | - | {fmt(1000 / store['single_writes_per_s'], 2)} | - | - |"
        )
        add("")
        add(
            f"SQLite alone reads the same year of bars in {store['read_250_ms']:.3f} ms and the "
            f"latest bar in {store['read_1_ms']:.3f} ms (in-process, no gRPC)."
        )
    add("")


def _against_seed(writes_per_s: float) -> str:
    if writes_per_s > SEED_WRITES_PER_S[1]:
        return "ahead"
    return "within" if writes_per_s >= SEED_WRITES_PER_S[0] else "behind"


def _share(cell: dict[str, Any], target: str) -> str:
    """A target's calls/s as a share of the floor's in one read cell."""
    return f"{cell[target]['calls_per_s'] / cell['floor']['calls_per_s']:.2f}"


def _notes(
    svc: dict[str, Any], store: dict[str, Any] | None, pieces: dict[str, float]
) -> list[str]:
    """Why a missed target is missed, from this run's own figures (and the pieces of a
    call, part micro, when it ran)."""
    notes: list[str] = []
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
    hot1 = pieces.get("Read handler, hot, 1 record (serialized)")
    hot250 = pieces.get("Read handler, hot, 250 records (serialized)")
    cold250 = pieces.get("Read handler, cold, 250 records (serialized)")
    under = []
    for case, by_conc in svc.get("reads", {}).items():
        for conc, cell in by_conc.items():
            floor_cpu = cell["floor"]["server_cpu_ms_per_call"]
            if cell["hot"]["calls_per_s"] >= HOT_VS_FLOOR * cell["floor"]["calls_per_s"]:
                continue
            rounds = " / ".join(f"{r:.2f}" for r in by_round(cell, "hot"))
            under.append(
                f"{case} c={conc}: {cell['hot']['calls_per_s'] / cell['floor']['calls_per_s']:.3f}"
                f" pooled, rounds {rounds}; server CPU "
                f"{cell['hot']['server_cpu_ms_per_call']:.3f} against the floor's "
                f"{floor_cpu:.3f} ms a call"
            )
    if under:
        notes.append(
            f"Hot Reads under {HOT_VS_FLOOR} x the floor in this run: "
            + "; ".join(under)
            + ". A remembered answer costs the handler "
            + (f"{hot1:.0f}-{hot250:.0f} µs in-process" if hot1 and hot250 else "a few µs")
            + ". The rounds of one cell, each measured back to back with its floor, differ "
            "more than the distance to the line: on this machine the ratio of the same code "
            "moves by 0.1 to 0.3 from one minute to the next (bench/PROFILE.md has the runs)."
        )
    cold = svc.get("reads", {}).get("250 records", {})
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
                f"about {svc.get('hop_work_us', 'N')} µs of work there with the GIL "
                "released (what the store read takes), keeps this share of its calls/s: "
                + ("; ".join(hops) if hops else "not measured in this run")
                + ". Work on a second thread competes with the event loop and the load "
                "generator for 2 cores, and each hand-off of the GIL wakes a thread "
                "(bench/PROFILE.md)."
            )
    return notes
