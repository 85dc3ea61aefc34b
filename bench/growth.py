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
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from bench import procs, wire
from bench.data import YEAR, Bars
from bench.load import closed_loop, summarize
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
