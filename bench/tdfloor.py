"""TDengine alone: taospy in this process, no mdcache and no gRPC, doing the service's work.

The same database options as mdcache's (``PRECISION 'ms' WAL_LEVEL 2 WAL_FSYNC_PERIOD 0``),
the same 1,000-row batches (bound through the statement API, as the store writes them, and
as multi-row INSERT text, TDengine's fastest path), one-record writes, and the same window
queries the store sends for a year of bars and for the latest bar. What TDengine itself
takes for the work bounds what mdcache can do over it.
"""

# ruff: noqa: S608  (names are the benchmark's own; values are ints or escaped below)

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from bench import taosd
from bench.data import YEAR, Bars
from bench.storefloor import _timed
from bench.writes import batches
from mdcache_server.model import SeriesKey
from mdcache_server.store.tdengine.naming import series_table


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def create(conn: Any, db: str) -> None:
    """A fresh database of mdcache's options, with a ``records`` super table as the store's
    but for its ``chk`` (a check of each payload: mdcache's own work, as its bars' numbers
    are; TDengine alone stores the payloads and nothing else)."""
    conn.execute(f"DROP DATABASE IF EXISTS {db}")
    conn.execute(
        f"CREATE DATABASE {db} PRECISION 'ms' KEEP 36500 DURATION 10 WAL_LEVEL 2 WAL_FSYNC_PERIOD 0"
    )
    conn.execute(
        f"CREATE STABLE {db}.records (ts TIMESTAMP, payload VARCHAR(65517)) "
        "TAGS (symbol VARCHAR(64), data_type VARCHAR(64), timeframe VARCHAR(64))"
    )


def insert_text(db: str, batch: Iterable[tuple[SeriesKey, Iterable[Any]]]) -> str:
    """One multi-row INSERT of every series of a batch (records with ``ts_ms`` and
    ``payload``), each into its subtable, made with its tags when new."""
    text = ["INSERT INTO"]
    for key, records in batch:
        text.append(
            f"{db}.{series_table(key)} USING {db}.records TAGS "
            f"({_quoted(key.symbol)}, {_quoted(key.data_type)}, {_quoted(key.timeframe)}) VALUES"
        )
        text.extend(f"({r.ts_ms}, {_quoted(r.payload)})" for r in records)
    return " ".join(text)


def window_query(table: str, start_ms: int, end_ms: int, limit: int) -> str:
    """The store's query of a window, oldest first (one row past the limit tells "more")."""
    return (
        f"SELECT CAST(ts AS BIGINT), payload FROM {table} WHERE ts >= {start_ms} AND "
        f"ts <= {end_ms} ORDER BY ts ASC LIMIT {limit + 1}"
    )


def latest_query(table: str) -> str:
    """The store's query of the latest record."""
    return f"SELECT CAST(ts AS BIGINT), payload FROM {table} ORDER BY ts DESC LIMIT 2"


def run(
    base: str, bars: Bars, series: SeriesKey, window: tuple[int, int], seconds: float
) -> dict[str, Any]:
    import taos

    conn: Any = taosd.connect(base)
    db = "bench_floor"
    try:
        create(conn, db)
        work = list(batches(bars))
        rows = sum(len(r) for b in work for r in b.values())

        # Bound statements, one subtable per execute (as the store binds them).
        stmt = conn.statement(f"INSERT INTO ? USING {db}.records TAGS (?, ?, ?) VALUES (?, ?)")
        started = time.perf_counter()
        for batch in work:
            for s, records in batch.items():
                tags = taos.new_bind_params(3)
                for bind, value in zip(tags, (s.symbol, s.data_type, s.timeframe), strict=True):
                    bind.binary([value])
                stmt.set_tbname_tags(f"{db}.b_{series_table(SeriesKey(*s))}", tags)
                binds = taos.new_multi_binds(2)
                binds[0].timestamp([r.ts_ms for r in records])
                binds[1].binary([r.payload for r in records])
                stmt.bind_param_batch(binds)
                stmt.execute()
        bound_s = time.perf_counter() - started
        stmt.close()

        # Multi-row INSERT text, every subtable of a batch in one statement.
        started = time.perf_counter()
        for batch in work:
            conn.execute(insert_text(db, ((SeriesKey(*s), rs) for s, rs in batch.items())))
        text_s = time.perf_counter() - started

        payload = bars[next(iter(bars))][-1].payload
        counter = iter(range(1, 1 << 62))
        single = f"{db}.single"
        conn.execute(f"CREATE TABLE {single} USING {db}.records TAGS ('S', 'kline', '1m')")
        writes, write_s = _timed(
            lambda: conn.execute(
                f"INSERT INTO {single} VALUES ({1_700_000_000_000 + next(counter)}, "
                f"{_quoted(payload)})"
            ),
            seconds,
        )
        table = f"{db}.{series_table(series)}"
        year = window_query(table, window[0], window[1], YEAR)
        latest = latest_query(table)
        got = conn.query(year).fetch_all()
        if len(got) != YEAR:
            raise RuntimeError(f"TDengine alone: the year window answered {len(got)} rows")
        reads, read_s = _timed(lambda: conn.query(year).fetch_all(), seconds)
        latests, latest_s = _timed(lambda: conn.query(latest).fetch_all(), seconds)
        conn.execute(f"DROP DATABASE IF EXISTS {db}")
    finally:
        conn.close()
    return {
        "ingest_rows_per_s": round(rows / bound_s, 1),
        "ingest_text_rows_per_s": round(rows / text_s, 1),
        "single_writes_per_s": round(writes / write_s, 1),
        "read_250_ms": round(read_s / reads * 1000, 4),
        "read_1_ms": round(latest_s / latests * 1000, 4),
        "read_250_calls_per_s": round(reads / read_s, 1),
        "read_1_calls_per_s": round(latests / latest_s, 1),
        "options": "PRECISION 'ms' WAL_LEVEL 2 WAL_FSYNC_PERIOD 0, one connection",
    }
