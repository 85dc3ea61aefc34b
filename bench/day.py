"""Part 5, a day of the market-data service: cache-aside reads with a slow upstream.

Every series of ../shared/data is replayed from ``STEPS`` bars before its end: each step
(``STEP_SECONDS`` of wall time) "today" moves on a bar. The replay runs three times, each on a
fresh server. **Fed**: an ingester writes every series' next bar in one ``write_many``, as
a feed would, before "today" moves on. **History**: no feed; the cache starts holding
each series' 250 bars up to yesterday (as after yesterday's run) and learns each new bar
only through ``get_or_load``. It runs twice: with the fed replay's mixed look-backs, and
with every caller asking the service's own question, "the last 250 daily bars, up to
today" (``LAST_250``). Meanwhile ``CALLERS`` backend callers ask ``get_or_load`` for a
window ending today, looking back 0 to 250 bars (``MIXED``), series drawn Zipf-skewed (a
few symbols are asked for most of the time). A miss goes to the loader, which sleeps
200 ms like a slow upstream and returns the true bars of the window, which the client
writes back. The cache starts empty.

Every answer is checked against the upstream (the same records, byte for byte), so a hit
rate bought with wrong answers would show. The upstream counts its calls and the records
it returned: what a rate-limited, sometimes paid upstream is asked for. A history
replay also counts its floor: the new bars (those after yesterday) inside at least one
window asked, which any cache-aside client must fetch once.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import data, procs
from bench.case import Case, Results, Settings, Target
from bench.data import Bars
from bench.load import percentile, process_cpu
from bench.table import fmt, verdict
from mdcache_client import AsyncClient, Record, Series, Source, Window

LOADER_SECONDS = 0.2
LOOKBACKS = (0, 5, 20, 60, 250)  # bars before today: the latest bar, a week, a month, ...
LOOKBACK_WEIGHTS = (0.3, 0.3, 0.2, 0.1, 0.1)
MIXED = dict(zip(LOOKBACKS, LOOKBACK_WEIGHTS, strict=True))
LAST_250 = {250: 1.0}  # the service's question: the last 250 bars, up to today
ZIPF_S = 1.1
CALLERS = 32


@dataclass
class Upstream:
    """The slow source of truth: every bar, answered after ``LOADER_SECONDS``."""

    bars: Bars
    stamps: dict[Series, list[int]] = field(init=False)
    loads: int = 0
    fetched: int = 0  # records returned, over every load

    def __post_init__(self) -> None:
        self.stamps = {s: [r.ts_ms or 0 for r in recs] for s, recs in self.bars.items()}

    def window(self, series: Series, window: Window) -> list[Record]:
        ts = self.stamps[series]
        lo, hi = bisect_left(ts, window.start_ms), bisect_right(ts, window.end_ms)
        return self.bars[series][lo:hi]

    async def load(self, series: Series, window: Window) -> Iterable[Record]:
        self.loads += 1
        await asyncio.sleep(LOADER_SECONDS)
        records = self.window(series, window)
        self.fetched += len(records)
        return records


@dataclass(frozen=True, slots=True)
class Outcome:
    step: int
    seconds: float
    source: Source
    correct: bool
    wrong: str = ""  # what differed, for a wrong answer


async def run(
    workdir: Path,
    bars: Bars,
    *,
    steps: int,
    step_seconds: float,
    progress: Callable[[str], None],
    seed: int = 7,
    store: str | None = None,
) -> dict[str, Any]:
    """The fed replay's figures, with the history replays' under ``"history"`` (mixed
    look-backs) and ``"history_250"`` (the last 250 bars only)."""
    replays = (("fed", MIXED), ("history", MIXED), ("history_250", LAST_250))
    figures = {
        kind: await _one(workdir, kind, lookbacks, bars, steps, step_seconds, progress, seed, store)
        for kind, lookbacks in replays
    }
    return figures.pop("fed") | figures


async def _one(
    workdir: Path,
    kind: str,
    lookbacks: dict[int, float],
    bars: Bars,
    steps: int,
    step_seconds: float,
    progress: Callable[[str], None],
    seed: int,
    store: str | None,
) -> dict[str, Any]:
    url = f"{store}_{kind}" if store else None  # a database of its own for each replay
    server = procs.mdcache(f"mdcache-day-{kind}", workdir, store=url)
    try:
        async with AsyncClient(server.target, timeout=30) as client:
            return await _replay(
                client, server.pid, bars, steps, step_seconds, progress, seed, kind, lookbacks
            )
    finally:
        server.stop()


async def _replay(
    client: AsyncClient,
    pid: int,
    bars: Bars,
    steps: int,
    step_seconds: float,
    progress: Callable[[str], None],
    seed: int,
    kind: str,
    lookbacks: dict[int, float],
) -> dict[str, Any]:
    fed = kind == "fed"
    rng = random.Random(seed)
    needed = steps + 1 + max(LOOKBACKS)  # today's bar at step 0 has the longest look back
    left_out = sum(1 for records in bars.values() if len(records) < needed)
    bars = {s: records for s, records in bars.items() if len(records) >= needed}
    upstream = Upstream(bars)
    series = sorted(bars)
    rng.shuffle(series)  # popularity rank: series[0] is asked for most
    weights = [1 / (rank + 1) ** ZIPF_S for rank in range(len(series))]
    start = {s: len(bars[s]) - steps - 1 for s in series}  # "today" at step 0
    if min(start.values()) < max(LOOKBACKS):
        raise ValueError("a series has too few bars for the replay")
    step = 0
    longest_back: dict[Series, dict[int, int]] = {s: {} for s in series}  # today -> bars back
    outcomes: list[Outcome] = []
    write_latencies: list[float] = []
    done = asyncio.Event()

    async def ingester() -> None:
        nonlocal step
        # Fed: today's bars of every series are in the cache before the first caller asks.
        # History: the bars up to yesterday are.
        if fed:
            await client.write_many({s: [bars[s][start[s]]] for s in series})
        else:
            back = max(LOOKBACKS)
            await client.write_many({s: bars[s][start[s] - back : start[s]] for s in series})
        began = time.perf_counter()
        for next_step in range(1, steps + 1):
            await asyncio.sleep(max(began + next_step * step_seconds - time.perf_counter(), 0))
            if fed:
                fresh = {s: [bars[s][start[s] + next_step]] for s in series}
                t0 = time.perf_counter()
                await client.write_many(fresh)
                write_latencies.append(time.perf_counter() - t0)
            step = next_step
        done.set()

    async def caller(n: int) -> None:
        local = random.Random(seed * 1000 + n)
        while not done.is_set():
            s = local.choices(series, weights)[0]
            back = local.choices(list(lookbacks), list(lookbacks.values()))[0]
            now = step
            today = start[s] + now
            asked = longest_back[s]
            asked[today] = max(asked.get(today, 0), back)
            ts = upstream.stamps[s]
            window = Window(ts[today - back], ts[today])
            t0 = time.perf_counter()
            got = await client.get_or_load(s, window, upstream.load)
            seconds = time.perf_counter() - t0
            truth = upstream.window(s, window)
            correct = list(got.records) == truth
            wrong = "" if correct else _difference(s, window, got.source, got.records, truth)
            outcomes.append(Outcome(now, seconds, got.source, correct, wrong))

    cpu = process_cpu(pid)
    began = time.perf_counter()
    await asyncio.gather(ingester(), *(caller(n) for n in range(CALLERS)))
    wall = time.perf_counter() - began
    cpu = process_cpu(pid) - cpu
    stats = await client.stats()
    result = _summary(outcomes, wall, steps, write_latencies)
    result.update(
        replay=kind,
        series=len(series),
        series_too_short=left_out,
        callers=CALLERS,
        steps=steps,
        step_seconds=step_seconds,
        loader_seconds=LOADER_SECONDS,
        loader_calls=upstream.loads,
        loader_records=upstream.fetched,
        new_bars_asked=None if fed else _new_bars_asked(longest_back, start),
        lookbacks={str(back): weight for back, weight in lookbacks.items()},
        zipf_s=ZIPF_S,
        top_series_share=round(weights[0] / sum(weights), 3),
        server_cpu_ms_per_call=round(cpu * 1000 / max(len(outcomes), 1), 4),
        server_hit_rate=round(stats.hit_rate, 4),
        server_hot_tier={"hits": stats.hot_tier.hits, "misses": stats.hot_tier.misses},
    )
    progress(
        f"day ({result['replay']}): {result['calls']} calls, "
        f"{result['calls_per_s']:.0f} calls/s, hit rate "
        f"{result['hit_rate']:.1%} (second half {result['hit_rate_second_half']:.1%}), "
        f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.1f} ms, "
        f"wrong answers {result['wrong_answers']}; upstream: {upstream.loads} calls, "
        f"{upstream.fetched} records"
        + ("" if fed else f" (floor: {result['new_bars_asked']} new bars asked)")
    )
    return result


def _new_bars_asked(longest_back: dict[Series, dict[int, int]], start: dict[Series, int]) -> int:
    """The new bars (from "today" at step 0 on) inside at least one window asked: each must
    come from the upstream once, whatever the client does."""
    total = 0
    for s, asked in longest_back.items():
        needed: set[int] = set()
        for today, back in asked.items():
            needed.update(range(max(today - back, start[s]), today + 1))
        total += len(needed)
    return total


def _difference(
    series: Series, window: Window, source: Source, got: Iterable[Record], truth: list[Record]
) -> str:
    answered, true = {r.ts_ms: r for r in got}, {r.ts_ms: r for r in truth}
    missing = sorted(set(true) - set(answered), key=lambda t: t or 0)
    extra = sorted(set(answered) - set(true), key=lambda t: t or 0)
    unlike = sorted(
        (t for t in true if t in answered and answered[t] != true[t]), key=lambda t: t or 0
    )
    return (
        f"{'/'.join(series)} {window.start_ms}..{window.end_ms} ({source.value}): "
        f"missing {missing[:3]}, extra {extra[:3]}, unlike {unlike[:3]}"
    )


def _ms(values: list[float], q: float) -> float:
    return round(percentile(sorted(values), q) * 1000, 3)


def _summary(
    outcomes: list[Outcome], wall: float, steps: int, writes: list[float]
) -> dict[str, Any]:
    hits = [o for o in outcomes if o.source is Source.CACHE]
    later = [o for o in outcomes if o.step > steps // 2]
    later_hits = [o for o in later if o.source is Source.CACHE]
    misses = [o.seconds for o in outcomes if o.source is not Source.CACHE]
    return {
        "calls": len(outcomes),
        "seconds": round(wall, 2),
        "calls_per_s": round(len(outcomes) / wall, 1),
        "hit_rate": round(len(hits) / len(outcomes), 4) if outcomes else 0.0,
        "hit_rate_second_half": round(len(later_hits) / len(later), 4) if later else 0.0,
        "p50_ms": _ms([o.seconds for o in outcomes], 50),
        "p99_ms": _ms([o.seconds for o in outcomes], 99),
        "hit_p50_ms": _ms([o.seconds for o in hits], 50),
        "hit_p99_ms": _ms([o.seconds for o in hits], 99),
        "miss_p50_ms": _ms(misses, 50),
        "miss_p99_ms": _ms(misses, 99),
        "fallbacks": sum(o.source is Source.FALLBACK for o in outcomes),
        "wrong_answers": sum(not o.correct for o in outcomes),
        "wrong_examples": [o.wrong for o in outcomes if not o.correct][:5],
        "ingest_writes": len(writes),
        "ingest_write_p50_ms": _ms(writes, 50),
    }


# The case ---------------------------------------------------------------------------------

UPSTREAM_VS_BEFORE = 1 / 20  # issue 19: history replay's upstream records against before's
HISTORY_REPLAYS = {"history": "mixed look-backs", "history_250": "last 250 bars only"}
HIT_RATE = 0.8  # the seed's target


@dataclass(frozen=True)
class DayResult:
    """Part 5 (``day``): the fed replay's figures, the history replays' under theirs, and
    ``before``'s (``--day-before``) when given."""

    day: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"day": self.day}


def steps(settings: Settings) -> int:
    return 40 if settings.quick else 240


def every_series(settings: Settings) -> Bars:
    """The series a day replays: the A shares and every other file of ../shared/data."""
    return settings.all_shares | data.others()


class DayCase(Case[DayResult]):
    name = "day"

    async def run(self, settings: Settings) -> DayResult:
        day = await run(
            settings.workdir,
            every_series(settings),
            steps=steps(settings),
            step_seconds=0.25,
            progress=settings.say,
        )
        if settings.options.day_before:
            day["before"] = _day_before(settings.options.day_before)
        return DayResult(day)

    def load(self, results: Results) -> DayResult | None:
        day = results.get("day")
        return DayResult(day) if day else None

    def targets(self, result: DayResult, results: Results) -> list[Target]:
        day = result.day
        return [
            Target(
                target="day replay: hit rate >= 80% (the seed's target)",
                measured=day["hit_rate"],
                ok=day["hit_rate"] >= HIT_RATE,
            ),
            *_upstream_targets(day),
        ]

    def tables(self, result: DayResult, results: Results) -> list[str]:
        lines: list[str] = []
        day_table(result.day, lines.append)
        return lines


CASE = DayCase()


def _day_before(path: Path) -> dict[str, Any]:
    """The history replays' figures of an earlier results file, and the code it measured."""
    before = json.loads(path.read_text())
    day = before["day"]
    replays = {k: day[k] for k in ("history", "history_250") if k in day}
    return {"results": path.name, "code": before.get("code", "unknown")} | replays


def _upstream_targets(day: dict[str, Any]) -> list[Target]:
    """Each history replay's upstream records against the same replay's before
    (``--day-before``), with no answer unlike the upstream's."""
    out: list[Target] = []
    for kind, name in HISTORY_REPLAYS.items():
        now, before = day.get(kind), (day.get("before") or {}).get(kind)
        if now and before:
            most = before["loader_records"] * UPSTREAM_VS_BEFORE
            out.append(
                Target(
                    target=f"day history, {name}: upstream records <= 1/20 of before's "
                    f"{before['loader_records']:,} ({most:,.0f}), no wrong answer",
                    measured=now["loader_records"],
                    ok=now["loader_records"] <= most and now["wrong_answers"] == 0,
                )
            )
    return out


def day_table(day: dict[str, Any], add: Callable[[str], None], store: str = "SQLite") -> None:
    """The section of a day result (its store named: SQLite's, or TDengine's under it)."""
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
    add(f"| calls/s | {fmt(day['calls_per_s'])} | |")
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


def _history_table(day: dict[str, Any], add: Callable[[str], None]) -> None:
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
        return fmt(h.get("new_bars_asked"))

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
        add(f"- {name}: " + _upstreamverdict(day[kind], (before or {}).get(kind)))
    add("")


def _upstreamverdict(now: dict[str, Any], before: dict[str, Any] | None) -> str:
    records, floor = now["loader_records"], now.get("new_bars_asked")
    if not before:
        return (
            f"{records:,} records, floor {fmt(floor)}; no before to judge against (--day-before)."
        )
    was = before["loader_records"]
    ok = records <= was * UPSTREAM_VS_BEFORE and now["wrong_answers"] == 0
    text = (
        f"{records:,} records ({now['wrong_answers']} wrong) against {was:,} before "
        f"({before['wrong_answers']} wrong): 1/{was / max(records, 1):.1f}, {verdict(ok)}."
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
