"""The results: targets judged, markdown tables with each figure beside its comparison, a chart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench import resample

HOT_VS_FLOOR = 0.8
COLD_VS_FLOOR = 0.5
INGEST_ROWS_PER_S = 100_000
GROWTH_P50_FACTOR = 1.5
SEED_READ_MS = (2.0, 10.0)
SEED_WRITES_PER_S = (100, 2_000)
TD_COLD_VS_ALONE = 0.6  # cold Reads on TDengine against TDengine alone running the same query
TD_CPU_PER_ROW_VS_SQLITE = 1.2
TD_HOT_CPU_VS_SQLITE = 1.2  # "a hot Read costs the same whatever the store"
UPSTREAM_VS_BEFORE = 1 / 20  # issue 19: history replay's upstream records against before's
HISTORY_REPLAYS = {"history": "mixed look-backs", "history_250": "last 250 bars only"}


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else math.nan


def _fmt(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("**met**" if ok else "**missed**")


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


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue with what was measured and whether it holds."""
    out: list[dict[str, Any]] = []
    service = results.get("service")
    if service:
        for case, by_conc in service["reads"].items():
            for conc, cell in by_conc.items():
                floor = cell["floor"]["calls_per_s"]
                hot = _ratio(cell["hot"]["calls_per_s"], floor)
                out.append(
                    {
                        "target": f"hot Read {case}, c={conc}: >= {HOT_VS_FLOOR} x floor calls/s",
                        "measured": round(hot, 3),
                        "ok": hot >= HOT_VS_FLOOR,
                        "rounds": by_round(cell, "hot"),
                    }
                )
        for conc, cell in service["reads"]["250 records"].items():
            floor = cell["floor"]["calls_per_s"]
            cold = _ratio(cell["cold"]["calls_per_s"], floor)
            out.append(
                {
                    "target": f"cold Read 250 records, c={conc}: "
                    f">= {COLD_VS_FLOOR} x floor calls/s",
                    "measured": round(cold, 3),
                    "ok": cold >= COLD_VS_FLOOR,
                    "rounds": by_round(cell, "cold"),
                }
            )
        best = max(v["rows_per_s"] for k, v in service["ingest"].items() if k.startswith("mdcache"))
        out.append(
            {
                "target": f"batch ingest (1,000-row batches) >= {INGEST_ROWS_PER_S:,} rows/s",
                "measured": best,
                "ok": best >= INGEST_ROWS_PER_S,
            }
        )
        p50s = [
            cell[t]["p50_ms"]
            for by_conc in service["reads"].values()
            for cell in [by_conc.get("1")]
            if cell
            for t in ("hot", "cold")
        ]
        out.append(
            {
                "target": f"Read p50 at c=1 ahead of the seed's {SEED_READ_MS[0]:g}-"
                f"{SEED_READ_MS[1]:g} ms (worst of hot/cold, 1/250 records)",
                "measured": max(p50s) if p50s else math.nan,
                "ok": bool(p50s) and max(p50s) < SEED_READ_MS[0],
            }
        )
        single = max(v["calls_per_s"] for v in service["single_writes"].values())
        out.append(
            {
                "target": f"single-record Writes/s ahead of the seed's {SEED_WRITES_PER_S[0]:,}-"
                f"{SEED_WRITES_PER_S[1]:,} (best concurrency)",
                "measured": single,
                "ok": single > SEED_WRITES_PER_S[1],
            }
        )
        out.append(
            {
                "target": f"batch ingest ahead of the seed's {SEED_WRITES_PER_S[1]:,} writes/s",
                "measured": best,
                "ok": best > SEED_WRITES_PER_S[1],
            }
        )
    out.extend(_growth_target(results.get("growth")))
    day = results.get("day")
    if day:
        out.append(
            {
                "target": "day replay: hit rate >= 80% (the seed's target)",
                "measured": day["hit_rate"],
                "ok": day["hit_rate"] >= 0.8,
            }
        )
        out.extend(_upstream_targets(day))
    if results.get("resample"):
        out += resample.targets(results["resample"])
    out.extend(_tdengine_targets(results))
    return out


def _upstream_targets(day: dict[str, Any]) -> list[dict[str, Any]]:
    """Each history replay's upstream records against the same replay's before
    (``--day-before``), with no answer unlike the upstream's."""
    out = []
    for kind, name in HISTORY_REPLAYS.items():
        now, before = day.get(kind), (day.get("before") or {}).get(kind)
        if now and before:
            most = before["loader_records"] * UPSTREAM_VS_BEFORE
            out.append(
                {
                    "target": f"day history, {name}: upstream records <= 1/20 of before's "
                    f"{before['loader_records']:,} ({most:,.0f}), no wrong answer",
                    "measured": now["loader_records"],
                    "ok": now["loader_records"] <= most and now["wrong_answers"] == 0,
                }
            )
    return out


def _growth_target(growth: dict[str, Any] | None, prefix: str = "") -> list[dict[str, Any]]:
    """Read p50 with the most rows stored against the fewest."""
    if not growth or len(growth["sizes"]) < 2:
        return []
    sizes = sorted(growth["sizes"], key=int)
    small = growth["sizes"][sizes[0]]["reads"]["250 records"]["1"]["p50_ms"]
    large = growth["sizes"][sizes[-1]]["reads"]["250 records"]["1"]["p50_ms"]
    factor = _ratio(large, small)
    return [
        {
            "target": f"{prefix}Read p50 (250 records, c=1) with {int(sizes[-1]):,} rows within "
            f"{GROWTH_P50_FACTOR} x of {int(sizes[0]):,} rows",
            "measured": round(factor, 3),
            "ok": factor <= GROWTH_P50_FACTOR,
        }
    ]


def _best_ingest(service: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return max(
        ((k, v) for k, v in service["ingest"].items() if k.startswith("mdcache")),
        key=lambda kv: kv[1]["rows_per_s"],
    )


def _tdengine_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of the benchmark on TDengine (issue 13)."""
    td = results.get("tdengine") or {}
    out: list[dict[str, Any]] = []
    svc, alone, sqlite = td.get("service"), td.get("store_floor"), results.get("service")
    if svc:
        name, best = _best_ingest(svc)
        out.append(
            {
                "target": f"TDengine: batch ingest >= {INGEST_ROWS_PER_S:,} rows/s",
                "measured": best["rows_per_s"],
                "ok": best["rows_per_s"] >= INGEST_ROWS_PER_S,
            }
        )
        if sqlite:
            lite = sqlite["ingest"].get(name, {}).get("server_cpu_us_per_row")
            ratio = _ratio(best["server_cpu_us_per_row"] or math.nan, lite or math.nan)
            out.append(
                {
                    "target": f"TDengine: server CPU per ingested row within "
                    f"{TD_CPU_PER_ROW_VS_SQLITE} x SQLite's ({name})",
                    "measured": round(ratio, 3),
                    "ok": ratio <= TD_CPU_PER_ROW_VS_SQLITE,
                }
            )
        for case, by_conc in svc["reads"].items():
            key = "read_250_calls_per_s" if case.startswith("250") else "read_1_calls_per_s"
            for conc, cell in by_conc.items():
                if alone:
                    ratio = _ratio(cell["cold"]["calls_per_s"], alone[key])
                    out.append(
                        {
                            "target": f"TDengine: cold Read {case}, c={conc}: "
                            + (
                                f">= {TD_COLD_VS_ALONE} x TDengine alone's calls/s"
                                if conc == "1"
                                else "x TDengine alone's calls/s (reported)"
                            ),
                            "measured": round(ratio, 3),
                            "ok": ratio >= TD_COLD_VS_ALONE if conc == "1" else None,
                        }
                    )
            cell = by_conc.get("1")
            if cell:
                p50 = cell["cold"]["p50_ms"]
                out.append(
                    {
                        "target": f"TDengine: cold Read {case} p50 at c=1 within the seed's "
                        f"{SEED_READ_MS[0]:g}-{SEED_READ_MS[1]:g} ms (or faster)",
                        "measured": p50,
                        "ok": p50 <= SEED_READ_MS[1],
                    }
                )
        if sqlite:
            for case, by_conc in svc["reads"].items():
                for conc, cell in by_conc.items():
                    other = sqlite["reads"].get(case, {}).get(conc)
                    if not other:
                        continue
                    ratio = _ratio(
                        cell["hot"]["server_cpu_ms_per_call"],
                        other["hot"]["server_cpu_ms_per_call"],
                    )
                    out.append(
                        {
                            "target": f"TDengine: hot Read {case}, c={conc}: server CPU a call "
                            f"within {TD_HOT_CPU_VS_SQLITE} x SQLite's",
                            "measured": round(ratio, 3),
                            "ok": ratio <= TD_HOT_CPU_VS_SQLITE,
                        }
                    )
    out.extend(_growth_target(td.get("growth"), "TDengine: "))
    day = td.get("day")
    if day:
        out.append(
            {
                "target": "TDengine: day replay hit rate >= 80%",
                "measured": day["hit_rate"],
                "ok": day["hit_rate"] >= 0.8,
            }
        )
    return out


def markdown(results: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    add(f"# mdcache benchmark, {results['date']}")
    add("")
    add(f"Machine: {results['machine']}. Mode: {results['mode']}. Command: `{results['command']}`.")
    add("")
    add(
        f"Server code measured: {results.get('code', 'unknown')}. Load average (1 min) "
        f"{results['load_average_at_start'][0]:.2f} at the start, "
        f"{results['load_average_at_end'][0]:.2f} at the end (2 cores: at the start, above 1 "
        f"means other work was running; at the end it counts the benchmark's own "
        f"processes); {results['seconds']:.0f} s in all."
    )
    add("")
    add("Every figure of a table comes from one run on one machine; the servers of a")
    add("read cell were measured back to back (rotating order each round), so read the ratios")
    add("rather than the absolute figures on a shared machine. Server CPU ms/call is the")
    add("server process's CPU time over the measured span divided by the calls: the steadiest")
    add("figure on a noisy machine.")
    add("")
    add("## Targets")
    add("")
    add("Reads: the ratio of all rounds pooled, and of each round alone (the servers of a")
    add("cell measured back to back), which shows how far the machine moves a ratio.")
    add("")
    add("| target | measured | each round | verdict |")
    add("|---|---:|---|---|")
    for t in results["targets"]:
        measured = t["measured"]
        shown = (
            _fmt(measured, 3) if isinstance(measured, float) and measured < 100 else _fmt(measured)
        )
        rounds = ", ".join(f"{r:.2f}" for r in t.get("rounds", [])) or "-"
        add(f"| {t['target']} | {shown} | {rounds} | {_verdict(t['ok'])} |")
    add("")
    service = results.get("service")
    if service:
        _service_tables(service, results.get("store_floor"), add)
    pieces = results.get("micro_us")
    if pieces:
        add("## Pieces of a call (in-process, µs per call, best of 5)")
        add("")
        add("| piece | µs |")
        add("|---|---:|")
        for name, us in pieces.items():
            add(f"| {name} | {us:,.1f} |")
        for error in results.get("micro_errors") or []:
            add(f"| left out: {error} | - |")
        add("")
    growth = results.get("growth")
    if growth:
        _growth_table(growth, add)
    day = results.get("day")
    if day:
        _day_table(day, add)
    td = results.get("tdengine")
    if td:
        _tdengine_tables(td, results.get("service"), add)
    if results.get("resample"):
        lines.extend(resample.markdown(results["resample"]))
    notes = results.get("notes") or []
    if notes:
        add("## Notes")
        add("")
        for note in notes:
            add(f"- {note}")
        add("")
    return "\n".join(lines)


def _service_tables(service: dict[str, Any], store: dict[str, Any] | None, add: Any) -> None:
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
                f"| {case} | {conc} | {_fmt(floor)} | {_fmt(hot)} | "
                f"{_mark(_ratio(hot, floor), hot_t)} | {_fmt(cold)} | "
                f"{_mark(_ratio(cold, floor), cold_t)} | {_fmt(redis)} | "
                f"{_fmt(_ratio(hot, redis), 2)} |"
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
            cpu = " / ".join(_fmt(cell[t]["server_cpu_ms_per_call"], 3) for t in names)
            add(
                f"| {case} | {conc} | {_fmt(floor)} | {_fmt(hop)} ({_fmt(_ratio(hop, floor), 2)})"
                f" | {_fmt(worked)} ({_fmt(_ratio(worked, floor), 2)}) | {_fmt(cold)} "
                f"({_mark(_ratio(cold, floor), COLD_VS_FLOOR)}) | "
                f"{_fmt(_ratio(cold, worked), 2)} | {cpu} |"
            )
    add("")
    add("### Latency as the caller sees it, p50 / p99 in ms")
    add("")
    add("| read | c | floor | hot | cold | Redis | seed |")
    add("|---|---:|---:|---:|---:|---:|---|")
    for case, by_conc in service["reads"].items():
        for conc, cell in by_conc.items():
            cols = [_pq(cell.get(t)) for t in ("floor", "hot", "cold", "redis")]
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
                f"| {case} | {conc} | {_fmt(f, 3)} | {_fmt(h, 3)} | {_fmt(_ratio(h, f), 2)} | "
                f"{_fmt(c, 3)} | {_fmt(_ratio(c, f), 2)} | {_fmt(r, 3)} |"
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
            f"| {name} | {_fmt(v['rows_per_s'])} | "
            f"{_fmt(v['rows_per_s'] / INGEST_ROWS_PER_S, 2)} | {_fmt(v['batch_p50_ms'], 2)} | "
            f"{_fmt(v['server_cpu_us_per_row'] or math.nan, 1)} |"
        )
    if store:
        add(
            f"| SQLite alone (the server's SqliteStore in-process, no gRPC) | "
            f"{_fmt(store['ingest_rows_per_s'])} | "
            f"{_fmt(store['ingest_rows_per_s'] / INGEST_ROWS_PER_S, 2)} | - | - |"
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
            ratio = _ratio(cell["calls_per_s"], floors[conc]["calls_per_s"]) if floors else math.nan
            add(
                f"| {name} c={conc} | {_fmt(cell['calls_per_s'])} | {_fmt(ratio, 2)} | "
                f"{_against_seed(cell['calls_per_s'])} | {_fmt(cell['p50_ms'], 2)} | "
                f"{_fmt(cell['p99_ms'], 2)} | {_fmt(cell['server_cpu_ms_per_call'], 3)} |"
            )
    if store:
        add(
            f"| SQLite alone, one commit per record | {_fmt(store['single_writes_per_s'])} "
            f"| - | - | {_fmt(1000 / store['single_writes_per_s'], 2)} | - | - |"
        )
        add("")
        add(
            f"SQLite alone reads the same year of bars in {store['read_250_ms']:.3f} ms and the "
            f"latest bar in {store['read_1_ms']:.3f} ms (in-process, no gRPC)."
        )
    add("")


def _tdengine_tables(td: dict[str, Any], sqlite: dict[str, Any] | None, add: Any) -> None:
    add("## TDengine")
    add("")
    if "skipped" in td:
        add(f"Not measured: {td['skipped']}.")
        add("")
        return
    add(
        f"Server: {td['server']}. Each mdcache server runs on a database of its own, made by "
        "mdcache (`PRECISION 'ms' WAL_LEVEL 2 WAL_FSYNC_PERIOD 0`: every acknowledged write "
        "fsynced); TDengine alone = taospy in the benchmark's process on one connection, "
        "the same options, batches and window queries, no gRPC. The TDengine server shares "
        "the machine's 2 cores with mdcache and the load generator."
    )
    add("")
    svc, alone = td.get("service"), td.get("store_floor")
    if svc:
        add("### Reads on TDengine, calls per second")
        add("")
        add(
            "| read | c | floor | hot | hot ÷ floor | hot CPU ms/call (SQLite's) | cold | "
            "TDengine alone | cold ÷ alone | cold p50 / p99 ms |"
        )
        add("|---|---:|---:|---:|---:|---|---:|---:|---:|---|")
        for case, by_conc in svc["reads"].items():
            key = "read_250_calls_per_s" if case.startswith("250") else "read_1_calls_per_s"
            for conc, cell in by_conc.items():
                floor, hot, cold = (cell[t]["calls_per_s"] for t in ("floor", "hot", "cold"))
                lite = ((sqlite or {}).get("reads", {}).get(case, {}).get(conc) or {}).get("hot")
                lite_cpu = f" ({_fmt(lite['server_cpu_ms_per_call'], 3)})" if lite else ""
                target = TD_COLD_VS_ALONE if conc == "1" else None
                by_alone = _ratio(cold, alone[key]) if alone else math.nan
                add(
                    f"| {case} | {conc} | {_fmt(floor)} | {_fmt(hot)} | "
                    f"{_fmt(_ratio(hot, floor), 2)} | "
                    f"{_fmt(cell['hot']['server_cpu_ms_per_call'], 3)}{lite_cpu} | {_fmt(cold)} | "
                    f"{_fmt(alone[key]) if alone else '-'} | {_mark(by_alone, target)} | "
                    f"{_pq(cell['cold'])} |"
                )
        add("")
        add("### Writes on TDengine")
        add("")
        add(
            "| batch ingest, 1,000-row batches | rows/s | ÷ target 100,000 | batch p50 ms | "
            "server CPU µs/row (SQLite's) |"
        )
        add("|---|---:|---:|---:|---|")
        for name, v in svc["ingest"].items():
            if not name.startswith("mdcache"):
                continue
            lite = ((sqlite or {}).get("ingest", {}).get(name) or {}).get("server_cpu_us_per_row")
            add(
                f"| {name} | {_fmt(v['rows_per_s'])} | "
                f"{_fmt(v['rows_per_s'] / INGEST_ROWS_PER_S, 2)} | {_fmt(v['batch_p50_ms'], 2)} | "
                f"{_fmt(v['server_cpu_us_per_row'] or math.nan, 1)}"
                + (f" ({_fmt(lite, 1)})" if lite else "")
                + " |"
            )
        if alone:
            add(
                f"| TDengine alone, bound statements (the store's way) | "
                f"{_fmt(alone['ingest_rows_per_s'])} | "
                f"{_fmt(alone['ingest_rows_per_s'] / INGEST_ROWS_PER_S, 2)} | - | - |"
            )
            add(
                f"| TDengine alone, multi-row INSERT text | {_fmt(alone['ingest_text_rows_per_s'])}"
                f" | {_fmt(alone['ingest_text_rows_per_s'] / INGEST_ROWS_PER_S, 2)} | - | - |"
            )
        add("")
        add("| single-record Write | calls/s | p50 ms | p99 ms | server CPU ms/call |")
        add("|---|---:|---:|---:|---:|")
        for conc, cell in svc["single_writes"].items():
            add(
                f"| mdcache c={conc} | {_fmt(cell['calls_per_s'])} | {_fmt(cell['p50_ms'], 2)} | "
                f"{_fmt(cell['p99_ms'], 2)} | {_fmt(cell['server_cpu_ms_per_call'], 3)} |"
            )
        if alone:
            add(
                f"| TDengine alone, one INSERT per record | {_fmt(alone['single_writes_per_s'])} "
                f"| {_fmt(1000 / alone['single_writes_per_s'], 2)} | - | - |"
            )
            add("")
            add(
                f"TDengine alone reads the year of bars in {alone['read_250_ms']:.3f} ms and the "
                f"latest bar in {alone['read_1_ms']:.3f} ms (in-process, one connection)."
            )
        add("")
    growth = td.get("growth")
    if growth:
        _growth_table(growth, add, store="TDengine")
    day = td.get("day")
    if day:
        _day_table(day, add, store="TDengine")


def _against_seed(writes_per_s: float) -> str:
    if writes_per_s > SEED_WRITES_PER_S[1]:
        return "ahead"
    return "within" if writes_per_s >= SEED_WRITES_PER_S[0] else "behind"


def _mark(ratio: float, target: float | None) -> str:
    shown = _fmt(ratio, 2)
    if target is None or math.isnan(ratio):
        return shown
    return f"{shown} {'✓' if ratio >= target else '✗'}"


def _pq(cell: dict[str, Any] | None) -> str:
    if not cell:
        return "-"
    return f"{cell['p50_ms']:.2f} / {cell['p99_ms']:.2f}"


def _growth_table(growth: dict[str, Any], add: Any, store: str = "SQLite") -> None:
    add("## Growth (part 4)" if store == "SQLite" else f"### Growth on {store}")
    add("")
    add(f"`mdcache serve --hot-tier-bytes 0` on {store} stores of each size (the real bars copied")
    add("into series `NNNNNN.BN`); each Read asks a random series for a random 250-bar window, or")
    add("its latest bar. p50 / p99 ms, and calls/s.")
    add("")
    sizes = sorted(growth["sizes"], key=int)
    base = growth["sizes"][sizes[0]]["reads"]
    add("| rows stored | file MB | read | c | calls/s | p50 ms | p99 ms | p50 ÷ smallest |")
    add("|---:|---:|---|---:|---:|---:|---:|---:|")
    for rows in sizes:
        entry = growth["sizes"][rows]
        for case, by_conc in entry["reads"].items():
            for conc, m in by_conc.items():
                ratio = _ratio(m["p50_ms"], base[case][conc]["p50_ms"])
                mb = entry["file_bytes"] / 1e6 if entry["file_bytes"] else math.nan
                add(
                    f"| {int(rows):,} | {_fmt(mb)} | {case} | {conc} | "
                    f"{_fmt(m['calls_per_s'])} | {m['p50_ms']:.3f} | {m['p99_ms']:.3f} | "
                    f"{_fmt(ratio, 2)} |"
                )
    add("")
    builds = {
        r: growth["sizes"][r]["build_seconds"] for r in sizes if growth["sizes"][r]["build_seconds"]
    }
    if builds:
        add(
            "Built this run: "
            + ", ".join(f"{int(r):,} rows in {s:g} s" for r, s in builds.items())
            + (
                " (SqliteStore.write, synchronous=OFF while building; cached under bench/.cache/)."
                if store == "SQLite"
                else " (TDengineStore.write in the benchmark's process)."
            )
        )
        add("")


def _day_table(day: dict[str, Any], add: Any, store: str = "SQLite") -> None:
    add(
        "## A day of the market-data service (part 5)"
        if store == "SQLite"
        else f"### A day on {store}"
    )
    add("")
    add(
        f"{day['series']} real series, {day['steps']} steps of {day['step_seconds']} s (each step "
        f"every series gets its next bar, one write_many); {day['callers']} callers in a closed "
        f"loop through `AsyncClient.get_or_load`, series Zipf-skewed (s={day['zipf_s']}, the top "
        f"series {day['top_series_share']:.0%} of calls), windows ending today looking back "
        f"{', '.join(day['lookbacks'])} bars; loader sleeps {day['loader_seconds'] * 1000:.0f} ms. "
        "The cache starts empty."
    )
    add("")
    add("| figure | measured | comparison |")
    add("|---|---:|---|")
    add(f"| hit rate | {day['hit_rate']:.1%} | seed's target >= 80% |")
    add(f"| hit rate, second half | {day['hit_rate_second_half']:.1%} | |")
    add(f"| calls/s | {_fmt(day['calls_per_s'])} | |")
    add(
        f"| p50 / p99 ms, all calls | {day['p50_ms']:.2f} / {day['p99_ms']:.1f} "
        "| seed 2-10 ms reads |"
    )
    add(f"| p50 / p99 ms, hits | {day['hit_p50_ms']:.2f} / {day['hit_p99_ms']:.1f} | |")
    add(
        f"| p50 / p99 ms, misses (loader) | {day['miss_p50_ms']:.1f} / {day['miss_p99_ms']:.1f} | "
        f"loader {day['loader_seconds'] * 1000:.0f} ms |"
    )
    add(f"| loader calls | {day['loader_calls']:,} | |")
    if "loader_records" in day:
        add(f"| records the loader returned | {day['loader_records']:,} | |")
    add(f"| answers unlike the upstream's | {day['wrong_answers']} | 0 |")
    add(f"| fallbacks (cache unreachable) | {day['fallbacks']} | 0 |")
    add(f"| ingest write_many p50 ms | {day['ingest_write_p50_ms']:.2f} | |")
    add(f"| server CPU ms per call | {day['server_cpu_ms_per_call']:.3f} | |")
    add("")
    if day.get("history"):
        _history_table(day, add)


def _history_table(day: dict[str, Any], add: Any) -> None:
    replays = {k: name for k, name in HISTORY_REPLAYS.items() if day.get(k)}
    add(
        "**History** (the same replay with no feed: the cache starts holding each series' "
        "250 bars up to yesterday, and learns each new bar only through `get_or_load`; "
        "callers ask with the mixed look-backs above, or all of them the service's question, "
        "the last 250 bars up to today). The floor counts the new bars inside at least one "
        "window asked: each must come from the upstream once, whatever the client does."
    )
    add("")
    add("| figure | " + " | ".join(replays.values()) + " |")
    add("|---|" + "---:|" * len(replays))

    def row(figure: str, show: Any) -> None:
        add(f"| {figure} | " + " | ".join(show(day[k]) for k in replays) + " |")

    def floor(h: dict[str, Any]) -> str:
        return _fmt(h.get("new_bars_asked"))

    row("calls", lambda h: f"{h['calls']:,}")
    row("hit rate", lambda h: f"{h['hit_rate']:.1%}")
    row("loader calls", lambda h: f"{h['loader_calls']:,}")
    row("records the loader returned", lambda h: f"{h['loader_records']:,}")
    row("floor: new bars asked", floor)
    row("answers unlike the upstream's", lambda h: f"{h['wrong_answers']}")
    row("p50 / p99 ms, all calls", lambda h: f"{h['p50_ms']:.2f} / {h['p99_ms']:.1f}")
    add("")
    before = day.get("before")
    add(
        "Target (issue 19): records fetched from the upstream at most 1/20 of before's, "
        "with no answer unlike the upstream's"
        + (f"; before: {before['code']} ({before['results']})." if before else ".")
    )
    add("")
    for kind, name in replays.items():
        add(f"- {name}: " + _upstream_verdict(day[kind], (before or {}).get(kind)))
    add("")


def _upstream_verdict(now: dict[str, Any], before: dict[str, Any] | None) -> str:
    records, floor = now["loader_records"], now.get("new_bars_asked")
    if not before:
        return (
            f"{records:,} records, floor {_fmt(floor)}; no before to judge against (--day-before)."
        )
    was = before["loader_records"]
    ok = records <= was * UPSTREAM_VS_BEFORE and now["wrong_answers"] == 0
    text = (
        f"{records:,} records ({now['wrong_answers']} wrong) against {was:,} before "
        f"({before['wrong_answers']} wrong): 1/{was / max(records, 1):.1f}, {_verdict(ok)}."
    )
    if floor:
        text += f" The floor, {floor:,}, is 1/{was / floor:.1f} of before"
        if floor > was * UPSTREAM_VS_BEFORE:
            text += (
                f": 1/20 of before ({was * UPSTREAM_VS_BEFORE:,.0f}) is below it, out of reach "
                "on this replay whatever the client fetches."
            )
        else:
            text += "."
    return text


def chart(growth: dict[str, Any], path: Path) -> None:
    """Read latency against rows stored (log scale), p50 and p99, for each read."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(growth["sizes"], key=int)
    xs = [int(s) for s in sizes]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    cases = list(growth["sizes"][sizes[0]]["reads"])
    for case, color in zip(cases, ("tab:blue", "tab:orange", "tab:green"), strict=False):
        for q, style in (("p50_ms", "-o"), ("p99_ms", "--s")):
            ys = [growth["sizes"][s]["reads"][case]["1"][q] for s in sizes]
            ax.plot(xs, ys, style, color=color, label=f"{case}, {q[:3]}")
    ax.set_xscale("log")
    ax.set_xlabel("rows stored")
    ax.set_ylabel("Read latency, ms (concurrency 1)")
    ax.set_title("mdcache Read latency against rows stored (SQLite, hot tier off)")
    ax.set_ylim(bottom=0)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
