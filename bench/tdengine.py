"""The parts ``service``, ``growth`` and ``day`` again on TDengine (issue 13): each server
on a database of its own of one TDengine server (``--tdengine-url``, or a ``taosd`` of the
bundle started for the run), and TDengine alone (``bench.tdfloor``) beside them."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import day, growth, service, taosd, tdfloor
from bench.case import Case, Results, Settings, Target
from bench.data import HOT_SERIES
from bench.day import HIT_RATE, day_table
from bench.growth import growth_table, growth_targets
from bench.service import INGEST_ROWS_PER_S, SEED_READ_MS, best_ingest
from bench.table import fmt, mark, pq, ratio_of
from mdcache_server.model import SeriesKey

TD_COLD_VS_ALONE = 0.6  # cold Reads on TDengine against TDengine alone running the same query
TD_INGEST_VS_ALONE = 0.5  # batch ingest against TDengine alone's multi-row INSERT text
CEILING = "ceiling"  # bench.tdceiling: the gRPC floor doing TDengine alone's work
SHOWN_INGESTS = ("mdcache", CEILING)  # the ingests of the TDengine tables (not the floor's)
TD_CPU_PER_ROW_VS_SQLITE = 1.2
TD_HOT_CPU_VS_SQLITE = 1.2  # "a hot Read costs the same whatever the store"


@dataclass(frozen=True)
class TDengineResult:
    """``tdengine``: the server, and the parts measured on it under their names (or
    ``skipped`` and why)."""

    figures: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"tdengine": self.figures}


class TDengineCase(Case[TDengineResult]):
    name = "tdengine"

    async def run(self, settings: Settings) -> TDengineResult:
        why_not = taosd.available(settings.options.tdengine_url)
        if why_not:
            settings.say(f"TDengine not measured: {why_not}")
            return TDengineResult({"skipped": why_not})
        return TDengineResult(await _measure(settings))

    def load(self, results: Results) -> TDengineResult | None:
        figures = results.get("tdengine")
        return TDengineResult(figures) if figures else None

    def targets(self, result: TDengineResult, results: Results) -> list[Target]:
        td = result.figures
        out: list[Target] = []
        svc, alone, sqlite = td.get("service"), td.get("store_floor"), results.get("service")
        if svc:
            name, best = best_ingest(svc)
            out.append(
                Target(
                    target=f"TDengine: batch ingest >= {INGEST_ROWS_PER_S:,} rows/s",
                    measured=best["rows_per_s"],
                    ok=best["rows_per_s"] >= INGEST_ROWS_PER_S,
                )
            )
            if alone:
                text = alone["ingest_text_rows_per_s"]
                ratio = ratio_of(best["rows_per_s"], text)
                out.append(
                    Target(
                        target=f"TDengine: batch ingest >= {TD_INGEST_VS_ALONE} x TDengine "
                        "alone's multi-row INSERT text",
                        measured=round(ratio, 3),
                        ok=ratio >= TD_INGEST_VS_ALONE,
                    )
                )
                if _measured_ceiling(svc):
                    _, top = best_ingest(svc, CEILING)
                    out.append(
                        Target(
                            target="TDengine: the ceiling's batch ingest (best of 1 and 4 in "
                            "flight) x TDengine alone's INSERT text (reported)",
                            measured=round(ratio_of(top["rows_per_s"], text), 3),
                            ok=None,
                        )
                    )
            if sqlite:
                lite = sqlite["ingest"].get(name, {}).get("server_cpu_us_per_row")
                ratio = ratio_of(best["server_cpu_us_per_row"] or math.nan, lite or math.nan)
                out.append(
                    Target(
                        target=f"TDengine: server CPU per ingested row within "
                        f"{TD_CPU_PER_ROW_VS_SQLITE} x SQLite's ({name})",
                        measured=round(ratio, 3),
                        ok=ratio <= TD_CPU_PER_ROW_VS_SQLITE,
                    )
                )
            for case, by_conc in svc["reads"].items():
                key = "read_250_calls_per_s" if case.startswith("250") else "read_1_calls_per_s"
                for conc, cell in by_conc.items():
                    if alone:
                        ratio = ratio_of(cell["cold"]["calls_per_s"], alone[key])
                        out.append(
                            Target(
                                target=f"TDengine: cold Read {case}, c={conc}: "
                                + (
                                    f">= {TD_COLD_VS_ALONE} x TDengine alone's calls/s"
                                    if conc == "1"
                                    else "x TDengine alone's calls/s (reported)"
                                ),
                                measured=round(ratio, 3),
                                ok=ratio >= TD_COLD_VS_ALONE if conc == "1" else None,
                            )
                        )
                        if CEILING in cell:
                            out.append(
                                Target(
                                    target=f"TDengine: the ceiling's Read {case}, c={conc}: x "
                                    "TDengine alone's calls/s (reported)",
                                    measured=round(
                                        ratio_of(cell[CEILING]["calls_per_s"], alone[key]), 3
                                    ),
                                    ok=None,
                                )
                            )
                cell = by_conc.get("1")
                if cell:
                    p50 = cell["cold"]["p50_ms"]
                    out.append(
                        Target(
                            target=f"TDengine: cold Read {case} p50 at c=1 within the seed's "
                            f"{SEED_READ_MS[0]:g}-{SEED_READ_MS[1]:g} ms (or faster)",
                            measured=p50,
                            ok=p50 <= SEED_READ_MS[1],
                        )
                    )
            if sqlite:
                for case, by_conc in svc["reads"].items():
                    for conc, cell in by_conc.items():
                        other = sqlite["reads"].get(case, {}).get(conc)
                        if not other:
                            continue
                        ratio = ratio_of(
                            cell["hot"]["server_cpu_ms_per_call"],
                            other["hot"]["server_cpu_ms_per_call"],
                        )
                        out.append(
                            Target(
                                target=f"TDengine: hot Read {case}, c={conc}: server CPU a call "
                                f"within {TD_HOT_CPU_VS_SQLITE} x SQLite's",
                                measured=round(ratio, 3),
                                ok=ratio <= TD_HOT_CPU_VS_SQLITE,
                            )
                        )
        out.extend(growth_targets(td.get("growth"), "TDengine: "))
        day = td.get("day")
        if day:
            out.append(
                Target(
                    target="TDengine: day replay hit rate >= 80%",
                    measured=day["hit_rate"],
                    ok=day["hit_rate"] >= HIT_RATE,
                )
            )
        return out

    def tables(self, result: TDengineResult, results: Results) -> list[str]:
        lines: list[str] = []
        _tables(result.figures, results.get("service"), lines.append)
        return lines

    def notes(self, result: TDengineResult, results: Results) -> list[str]:
        return _notes(result.figures)


def _notes(td: dict[str, Any]) -> list[str]:
    """Where issue 23's targets against TDengine alone miss, what the ceiling reached."""
    svc, alone = td.get("service"), td.get("store_floor")
    if not svc or not alone:
        return []
    out = []
    for case, by_conc in svc["reads"].items():
        cell = by_conc.get("1", {})
        if CEILING not in cell:
            continue
        many = case.startswith("250")
        alone_ms = alone["read_250_ms" if many else "read_1_ms"]
        alone_calls = alone["read_250_calls_per_s" if many else "read_1_calls_per_s"]
        cold, top = cell["cold"]["calls_per_s"], cell[CEILING]["calls_per_s"]
        out.append(
            f"TDengine, cold Read {case} at c=1: {ratio_of(cold, alone_calls):.2f} x TDengine "
            f"alone; the ceiling, doing nothing but alone's query behind gRPC and a thread "
            f"hop, {ratio_of(top, alone_calls):.2f} x. One call after another, a call is the "
            f"floor's round trip ({1000 / cell['floor']['calls_per_s']:.2f} ms here), the hop "
            f"and the query (alone: {alone_ms:.2f} ms): {TD_COLD_VS_ALONE} x alone leaves "
            f"{alone_ms / TD_COLD_VS_ALONE:.2f} ms for all three."
        )
    text = alone["ingest_text_rows_per_s"]
    if _measured_ceiling(svc):
        name, best = best_ingest(svc)
        top_name, top = best_ingest(svc, CEILING)
        out.append(
            f"TDengine, batch ingest: mdcache ({name}) {ratio_of(best['rows_per_s'], text):.2f}"
            f" x alone's INSERT text at {best['server_cpu_us_per_row']} µs of server CPU a "
            f"row; the ceiling ({top_name}) {ratio_of(top['rows_per_s'], text):.2f} x at "
            f"{top['server_cpu_us_per_row']} µs a row, converting the request to INSERT text "
            "and nothing else: no check of the payloads, no bar numbers, no change feed read "
            "back for the hot tier and subscribers (bench/PROFILE.md)."
        )
    return out


def _measured_ceiling(svc: dict[str, Any]) -> bool:
    """Whether the run measured the ceiling's ingest (runs before 3ae1f65 did not)."""
    return any(name.startswith(CEILING) for name in svc["ingest"])


CASE = TDengineCase()


async def _measure(settings: Settings) -> dict[str, Any]:
    """The same parts on TDengine: each server on a database of its own."""
    url = settings.options.tdengine_url
    workdir = settings.workdir / "tdengine"

    def say(text: str) -> None:
        settings.say(f"TDengine {text}")

    out: dict[str, Any] = {}
    with taosd.server(settings.workdir, url) as base:
        out["server_version"] = taosd.version(base)
        out["server"] = (
            "given by --tdengine-url" if url else f"taosd of {taosd.home()}"
        ) + f", TDengine {out['server_version']}, native connector (taospy)"
        settings.say(f"TDengine: {out['server']}")
        if "service" in settings.parts:
            out["service"] = await service.run(
                workdir,
                settings.shares,
                concurrencies=service.CONCURRENCIES,
                seconds=settings.seconds,
                warmup=settings.warmup,
                rounds=settings.rounds,
                progress=say,
                store=lambda name: f"{base}/bench_{name}",
                comparisons=False,
                ceiling=base,
            )
            window = (out["service"]["window"]["start_ms"], out["service"]["window"]["end_ms"])
            out["store_floor"] = tdfloor.run(
                base,
                settings.shares,
                SeriesKey(*HOT_SERIES),
                window,
                seconds=1.0 if settings.quick else 2.0,
            )
            settings.say(f"TDengine alone: {out['store_floor']}")
        if "growth" in settings.parts:
            out["growth"] = await growth.run(
                workdir,
                settings.all_shares,
                settings.growth_rows,
                concurrencies=growth.CONCURRENCIES,
                seconds=settings.seconds,
                warmup=settings.warmup,
                progress=say,
                tdengine=base,
            )
        if "day" in settings.parts:
            out["day"] = await day.run(
                workdir,
                day.every_series(settings),
                steps=day.steps(settings),
                step_seconds=0.25,
                progress=say,
                store=f"{base}/bench_day",
            )
    return out


def _tables(td: dict[str, Any], sqlite: dict[str, Any] | None, add: Callable[[str], None]) -> None:
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
            "ceiling = the bare gRPC floor doing TDengine alone's work, as alone does it, on "
            "a worker thread (`bench.tdceiling`: the same query fetched by taospy, its rows "
            "not even turned into the answer; Writes as one multi-row INSERT text): ceiling ÷ "
            "alone is the share of TDengine alone's speed that gRPC and the thread hop leave "
            "a server doing nothing else. mdcache's store fetches result blocks column-wise, "
            "faster than taospy, so its cold Reads can pass the ceiling where the fetch weighs."
        )
        add("")
        add(
            "| read | c | floor | hot | hot ÷ floor | hot CPU ms/call (SQLite's) | cold | "
            "TDengine alone | cold ÷ alone | ceiling | ceiling ÷ alone | cold p50 / p99 ms |"
        )
        add("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|")
        for case, by_conc in svc["reads"].items():
            key = "read_250_calls_per_s" if case.startswith("250") else "read_1_calls_per_s"
            for conc, cell in by_conc.items():
                floor, hot, cold = (cell[t]["calls_per_s"] for t in ("floor", "hot", "cold"))
                lite = ((sqlite or {}).get("reads", {}).get(case, {}).get(conc) or {}).get("hot")
                lite_cpu = f" ({fmt(lite['server_cpu_ms_per_call'], 3)})" if lite else ""
                target = TD_COLD_VS_ALONE if conc == "1" else None
                by_alone = ratio_of(cold, alone[key]) if alone else math.nan
                top = cell[CEILING]["calls_per_s"] if CEILING in cell else None
                add(
                    f"| {case} | {conc} | {fmt(floor)} | {fmt(hot)} | "
                    f"{fmt(ratio_of(hot, floor), 2)} | "
                    f"{fmt(cell['hot']['server_cpu_ms_per_call'], 3)}{lite_cpu} | {fmt(cold)} | "
                    f"{fmt(alone[key]) if alone else '-'} | {mark(by_alone, target)} | "
                    f"{fmt(top) if top else '-'} | "
                    f"{fmt(ratio_of(top, alone[key]), 2) if top and alone else '-'} | "
                    f"{pq(cell['cold'])} |"
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
            if not name.startswith(SHOWN_INGESTS):
                continue
            lite = ((sqlite or {}).get("ingest", {}).get(name) or {}).get("server_cpu_us_per_row")
            add(
                f"| {name} | {fmt(v['rows_per_s'])} | "
                f"{fmt(v['rows_per_s'] / INGEST_ROWS_PER_S, 2)} | {fmt(v['batch_p50_ms'], 2)} | "
                f"{fmt(v['server_cpu_us_per_row'] or math.nan, 1)}"
                + (f" ({fmt(lite, 1)})" if lite else "")
                + " |"
            )
        if alone:
            add(
                f"| TDengine alone, bound statements (the store's way) | "
                f"{fmt(alone['ingest_rows_per_s'])} | "
                f"{fmt(alone['ingest_rows_per_s'] / INGEST_ROWS_PER_S, 2)} | - | - |"
            )
            add(
                f"| TDengine alone, multi-row INSERT text | {fmt(alone['ingest_text_rows_per_s'])}"
                f" | {fmt(alone['ingest_text_rows_per_s'] / INGEST_ROWS_PER_S, 2)} | - | - |"
            )
            text = alone["ingest_text_rows_per_s"]
            shares = ", ".join(
                f"{name} {ratio_of(v['rows_per_s'], text):.2f} x"
                for name, v in svc["ingest"].items()
                if name.startswith(SHOWN_INGESTS)
            )
            add("")
            add(f"Against TDengine alone's multi-row INSERT text: {shares}.")
        add("")
        add("| single-record Write | calls/s | p50 ms | p99 ms | server CPU ms/call |")
        add("|---|---:|---:|---:|---:|")
        for conc, cell in svc["single_writes"].items():
            add(
                f"| mdcache c={conc} | {fmt(cell['calls_per_s'])} | {fmt(cell['p50_ms'], 2)} | "
                f"{fmt(cell['p99_ms'], 2)} | {fmt(cell['server_cpu_ms_per_call'], 3)} |"
            )
        if alone:
            add(
                f"| TDengine alone, one INSERT per record | {fmt(alone['single_writes_per_s'])} "
                f"| {fmt(1000 / alone['single_writes_per_s'], 2)} | - | - |"
            )
            add("")
            add(
                f"TDengine alone reads the year of bars in {alone['read_250_ms']:.3f} ms and the "
                f"latest bar in {alone['read_1_ms']:.3f} ms (in-process, one connection)."
            )
        add("")
    growth = td.get("growth")
    if growth:
        growth_table(growth, add, store="TDengine")
    day = td.get("day")
    if day:
        day_table(day, add, store="TDengine")
