"""Part 4, growth: Read latency with 10^4, 10^6 and 10^7 rows stored.

Each store is one SQLite file built by the server's own ``SqliteStore.write()`` in this
process (about 200,000 rows per second, so 10^7 rows take about a minute), then served
by ``mdcache serve --hot-tier-bytes 0`` so that every Read goes to the file. A file is
kept under ``bench/.cache/`` (git-ignored), named for its size and a digest of the
schema and of the generator, so a rerun reuses it and a changed schema builds anew.

The rows are the real A-share bars: synthetic series ``000000.BN``, ``000001.BN``, ...
each a copy of one real series (its timestamps and payloads). A Read asks a random
series for a random window of 250 bars, so that it touches pages all over the file.
"""

from __future__ import annotations

import hashlib
import math
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procs, wire
from bench.case import Case, Results, Settings, Target
from bench.data import YEAR, Bars
from bench.load import closed_loop, summarize
from bench.table import fmt, ratio_of
from mdcache_client import Record, Series
from mdcache_server.model import Record as StoreRecord
from mdcache_server.model import SeriesKey
from mdcache_server.store import sqlite as sqlite_store
from mdcache_server.store.base import StoreConnection

CACHE = Path(__file__).resolve().parent / ".cache"
GENERATOR_VERSION = "1"
WRITE_ROWS = 100_000  # rows per store write (one transaction)
REQUESTS = 4096  # distinct read requests per size, cycled


def synthetic(bars: Bars, rows: int) -> Iterator[tuple[Series, list[Record]]]:
    """``rows`` rows in series copied from the real ones in turn."""
    sources = list(bars.values())
    left, n = rows, 0
    while left > 0:
        records = sources[n % len(sources)][:left]
        yield Series(f"{n:06d}.BN", "kline", "1d"), records
        left -= len(records)
        n += 1


def _digest(bars: Bars) -> str:
    text = sqlite_store.SCHEMA + GENERATOR_VERSION + str(sum(len(r) for r in bars.values()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _fill(conn: StoreConnection, bars: Bars, rows: int, said: Callable[[int], None]) -> int:
    """Writes the synthetic rows through the store's own ``write()``, WRITE_ROWS a call."""
    pending: list[tuple[SeriesKey, list[StoreRecord]]] = []
    size = done = 0
    for series, records in synthetic(bars, rows):
        pending.append(
            (SeriesKey(*series), [StoreRecord(r.ts_ms or 0, r.payload) for r in records])
        )
        size += len(records)
        if size >= WRITE_ROWS:
            done += conn.write(pending)
            pending, size = [], 0
            if done % 1_000_000 < WRITE_ROWS:
                said(done)
    if pending:
        done += conn.write(pending)
    return done


def store_file(bars: Bars, rows: int, progress: Callable[[str], None]) -> tuple[Path, float]:
    """The SQLite file with ``rows`` rows, built unless cached; and the seconds building took."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"growth-{rows}-{_digest(bars)}.sqlite3"
    if path.exists():
        return path, 0.0
    for stale in CACHE.glob(f"growth-{rows}-*"):  # of another schema or generator
        stale.unlink()
    building = path.with_suffix(".building")
    for leftover in CACHE.glob(building.name + "*"):
        leftover.unlink()
    started = time.perf_counter()
    store = sqlite_store.SqliteStore(building, synchronous="OFF")
    conn = store.connect()
    conn.ensure_schema()
    done = _fill(
        conn, bars, rows, lambda n: progress(f"growth: building {rows:,} rows: {n:,} written")
    )
    conn.close()
    db = sqlite3.connect(building)  # fold the WAL into the file before it is renamed
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    building.rename(path)
    seconds = time.perf_counter() - started
    progress(f"growth: built {rows:,} rows in {seconds:.1f} s ({done / seconds:,.0f} rows/s)")
    return path, seconds


def tdengine_database(
    base: str, bars: Bars, rows: int, progress: Callable[[str], None]
) -> tuple[str, float]:
    """A TDengine database with ``rows`` rows (the same as the SQLite file's), built by the
    server's own ``TDengineStore.write()``; its URL and the seconds building took."""
    from mdcache_server.store.tdengine import TDengineStore, drop_database

    url = f"{base}/bench_growth_{rows}"
    drop_database(url)
    started = time.perf_counter()
    conn = TDengineStore.from_url(url).connect()
    try:
        conn.ensure_schema()
        _fill(conn, bars, rows, lambda n: progress(f"growth: building {rows:,} in TDengine: {n:,}"))
    finally:
        conn.close()
    seconds = time.perf_counter() - started
    progress(f"growth: built {rows:,} rows in TDengine in {seconds:.1f} s")
    return url, seconds


def _requests(bars: Bars, rows: int, seed: int) -> dict[str, list[bytes]]:
    """Random reads over every stored series: a window of 250 bars, and the latest bar."""
    rng = random.Random(seed)
    stored = [(s, r) for s, r in synthetic(bars, rows) if len(r) >= YEAR]
    windows, latest = [], []
    for _ in range(REQUESTS):
        series, records = rng.choice(stored)
        i = rng.randrange(len(records) - YEAR + 1)
        first, last = records[i].ts_ms or 0, records[i + YEAR - 1].ts_ms or 0
        windows.append(wire.window(series, first, last, YEAR))
        latest.append(wire.latest(series))
    return {"250 records": windows, "1 record": latest}


def _cycling(read: wire.RawCall, requests: list[bytes]) -> Callable[[int], Awaitable[bytes]]:
    """A call that sends the requests in turn, whichever caller makes it."""
    counter = iter(range(1 << 62))

    async def one(_: int) -> bytes:
        return await read(requests[next(counter) % len(requests)])

    return one


async def run(
    workdir: Path,
    bars: Bars,
    sizes: list[int],
    *,
    concurrencies: list[int],
    seconds: float,
    warmup: float,
    progress: Callable[[str], None],
    tdengine: str | None = None,
) -> dict[str, Any]:
    """On SQLite files, or on databases of the TDengine server at ``tdengine`` (a base URL)."""
    out: dict[str, Any] = {"sizes": {}}
    for rows in sizes:
        size_bytes: int | None
        if tdengine is None:
            path, built = store_file(bars, rows, progress)
            url, size_bytes = f"sqlite:///{path}", path.stat().st_size
        else:
            (url, built), size_bytes = tdengine_database(tdengine, bars, rows, progress), None
        server = procs.mdcache(f"growth-{rows}", workdir, "--hot-tier-bytes", "0", store=url)
        chan = wire.channel(server.target)
        try:
            read = wire.raw(chan, wire.READ)
            cells: dict[str, Any] = {}
            for case, requests in _requests(bars, rows, seed=rows).items():
                answer = await read(requests[0])
                expected = YEAR if case == "250 records" else 1
                if wire.records_in(answer) != expected:
                    raise RuntimeError(f"growth {rows}: {case} answered {wire.records_in(answer)}")
                one = _cycling(read, requests)

                for conc in concurrencies:
                    samples = await closed_loop(one, conc, seconds, warmup, server.pid)
                    m = summarize([samples])
                    cells.setdefault(case, {})[str(conc)] = m.as_dict()
                    progress(
                        f"growth {rows:>10,} rows {case:>11} c={conc:<2} "
                        f"{m.calls_per_s:7.0f} calls/s  p50 {m.p50_ms:7.3f} ms  "
                        f"p99 {m.p99_ms:7.3f} ms"
                    )
            out["sizes"][str(rows)] = {
                "file_bytes": size_bytes,
                "build_seconds": round(built, 1),
                "reads": cells,
            }
        finally:
            await chan.close()
            server.stop()
            if tdengine is not None:
                from mdcache_server.store.tdengine import drop_database

                drop_database(url)
    return out


# The case ---------------------------------------------------------------------------------

GROWTH_P50_FACTOR = 1.5
CONCURRENCIES = [1, 8]


@dataclass(frozen=True)
class GrowthResult:
    """Part 4 (``growth``): ``sizes[rows]`` with the file's bytes, its build and the reads."""

    growth: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"growth": self.growth}


class GrowthCase(Case[GrowthResult]):
    name = "growth"

    async def run(self, settings: Settings) -> GrowthResult:
        return GrowthResult(
            await run(
                settings.workdir,
                settings.all_shares,
                settings.growth_rows,
                concurrencies=CONCURRENCIES,
                seconds=settings.seconds,
                warmup=settings.warmup,
                progress=settings.say,
            )
        )

    def load(self, results: Results) -> GrowthResult | None:
        growth = results.get("growth")
        return GrowthResult(growth) if growth else None

    def targets(self, result: GrowthResult, results: Results) -> list[Target]:
        return growth_targets(result.growth)

    def tables(self, result: GrowthResult, results: Results) -> list[str]:
        lines: list[str] = []
        growth_table(result.growth, lines.append)
        return lines

    def files(self, result: GrowthResult, stem: Path) -> list[Path]:
        png = stem.with_name(f"{stem.name}-growth.png")
        chart(result.growth, png)
        return [png]


CASE = GrowthCase()


def growth_targets(growth: dict[str, Any] | None, prefix: str = "") -> list[Target]:
    """Read p50 with the most rows stored against the fewest."""
    if not growth or len(growth["sizes"]) < 2:
        return []
    sizes = sorted(growth["sizes"], key=int)
    small = growth["sizes"][sizes[0]]["reads"]["250 records"]["1"]["p50_ms"]
    large = growth["sizes"][sizes[-1]]["reads"]["250 records"]["1"]["p50_ms"]
    factor = ratio_of(large, small)
    return [
        Target(
            target=f"{prefix}Read p50 (250 records, c=1) with {int(sizes[-1]):,} rows within "
            f"{GROWTH_P50_FACTOR} x of {int(sizes[0]):,} rows",
            measured=round(factor, 3),
            ok=factor <= GROWTH_P50_FACTOR,
        )
    ]


def growth_table(growth: dict[str, Any], add: Callable[[str], None], store: str = "SQLite") -> None:
    """The section of a growth result (its store named: SQLite's, or TDengine's under it)."""
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
                ratio = ratio_of(m["p50_ms"], base[case][conc]["p50_ms"])
                mb = entry["file_bytes"] / 1e6 if entry["file_bytes"] else math.nan
                add(
                    f"| {int(rows):,} | {fmt(mb)} | {case} | {conc} | "
                    f"{fmt(m['calls_per_s'])} | {m['p50_ms']:.3f} | {m['p99_ms']:.3f} | "
                    f"{fmt(ratio, 2)} |"
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
