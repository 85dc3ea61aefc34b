"""DataFrames: the client's to_pandas, to_polars and frame_records against doing the same by
hand with ``json.loads``.

The data is real: the SSE Composite index's 5,257 one-minute bars of January 2019 (czsc, as
``mdcache load`` files them) and Kweichow Moutai's last 250 daily bars (tushare), from
``../shared/data`` (``MDCACHE_BENCH_DATA`` elsewhere). Each case is timed with the library's
functions and by hand, alternately, and the best and median times compared (the
conversions in CPU time, so that other work on the machine counts less; the target is judged
on the best, as ``timeit`` advises):

- ``month to frame``: the month's records (a Read's answer) to a DataFrame in China time;
- ``frame to records``: that DataFrame's rows to records (what a Write sends);
- ``month round trip``: both, one after the other;
- ``250 bars to frame``: the daily bars' records to a DataFrame;
- ``read month + frame``, ``write month from frame``, ``read 250 + frame``: the same with the
  Read or Write to an ``mdcache serve`` (SQLite, its own process) on loopback included.

By hand is what a researcher writes: ``pd.DataFrame([json.loads(r.payload) for r in
records], index=pd.to_datetime(stamps, unit="ms", utc=True).tz_convert(zone))``, and back
``[Record.of(ts, row) for ts, row in zip(stamps, frame.to_dict("records"))]`` (polars:
``pl.DataFrame(rows)`` with a ``ts`` column, ``to_dicts()``). The target: the library at
least 2x faster than by hand on the conversions.

``python -m bench.frames`` prints a markdown report (``--rounds``, ``--json FILE``); not a
part of ``python -m bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl

from bench import procs
from bench.data import data_dir
from mdcache_client import (
    AsyncClient,
    Record,
    Series,
    frame_records,
    to_pandas,
    to_polars,
    write_frame,
)
from mdcache_server.ops.csvformats import detect

MINUTES_FILE = "cn_index_czsc/000001.XSHG_1min.csv"
DAILY_FILE = "cn_daily_qbot_2010_2020/600519.SH.csv"
MONTH = ",2019-01-"
ZONE = "Asia/Shanghai"
BARS = 250
TARGET = 2.0


def bars(path: Path, keep: str = "") -> tuple[Series, list[Record]]:
    """The file's bars as ``mdcache load`` makes them (rows whose text holds ``keep``)."""
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        fmt = detect(path, header)
        found = [fmt.bar(row) for row in reader if row and keep in ",".join(row)]
    return found[0][0], [record for _, record in found]


# By hand


def pandas_by_hand(records: list[Record]) -> pd.DataFrame:
    rows = [json.loads(r.payload) for r in records]
    stamps = pd.to_datetime([r.ts_ms for r in records], unit="ms", utc=True)
    return pd.DataFrame(rows, index=stamps.tz_convert(ZONE).rename("ts"))


def pandas_back_by_hand(frame: pd.DataFrame) -> list[Record]:
    stamps = frame.index.as_unit("ms").asi8.tolist()
    return [Record.of(ts, row) for ts, row in zip(stamps, frame.to_dict("records"), strict=True)]


def polars_by_hand(records: list[Record]) -> pl.DataFrame:
    rows = [json.loads(r.payload) for r in records]
    stamps = pl.Series("ts", [r.ts_ms for r in records]).cast(pl.Datetime("ms"))
    return pl.DataFrame(rows).with_columns(
        stamps.dt.replace_time_zone("UTC").dt.convert_time_zone(ZONE)
    )


def polars_back_by_hand(frame: pl.DataFrame) -> list[Record]:
    stamps = frame["ts"].dt.epoch("ms").to_list()
    rows = frame.drop("ts").to_dicts()
    return [Record.of(ts, row) for ts, row in zip(stamps, rows, strict=True)]


LIBRARIES: dict[str, dict[str, Callable[..., Any]]] = {
    "pandas": {
        "ours": lambda records: to_pandas(records, tz=ZONE),
        "hand": pandas_by_hand,
        "ours back": frame_records,
        "hand back": pandas_back_by_hand,
    },
    "polars": {
        "ours": lambda records: to_polars(records, tz=ZONE),
        "hand": polars_by_hand,
        "ours back": frame_records,
        "hand back": polars_back_by_hand,
    },
}


# Timing


def timed(work: Callable[[], Any]) -> float:
    """The CPU time of this process (every thread's) that ``work`` took, in ms: what a
    conversion costs, whatever else the machine runs meanwhile."""
    start = time.process_time()
    work()
    return (time.process_time() - start) * 1000


async def atimed(work: Callable[[], Awaitable[Any]]) -> float:
    """The wall time ``work`` took, in ms (a call's wait for the server included)."""
    start = time.perf_counter()
    await work()
    return (time.perf_counter() - start) * 1000


def cell(ours: list[float], hand: list[float]) -> dict[str, float]:
    """Best and median of each; the speedups (by hand / ours) of both."""
    best, best_hand = min(ours), min(hand)
    median, median_hand = statistics.median(ours), statistics.median(hand)
    return {
        "ours_best_ms": round(best, 3),
        "hand_best_ms": round(best_hand, 3),
        "speedup_best": round(best_hand / best, 2),
        "ours_median_ms": round(median, 3),
        "hand_median_ms": round(median_hand, 3),
        "speedup_median": round(median_hand / median, 2),
    }


Case = tuple[Callable[[], Any], Callable[[], Any]]


def conversion_cases(
    f: dict[str, Callable[..., Any]], month: list[Record], daily: list[Record]
) -> dict[str, Case]:
    frame, hand_frame = f["ours"](month), f["hand"](month)
    assert f["ours back"](frame) == month  # the same bytes back
    assert [r.json() for r in f["hand back"](hand_frame)] == [r.json() for r in month]
    return {
        "month to frame": (lambda: f["ours"](month), lambda: f["hand"](month)),
        "frame to records": (lambda: f["ours back"](frame), lambda: f["hand back"](hand_frame)),
        "month round trip": (
            lambda: f["ours back"](f["ours"](month)),
            lambda: f["hand back"](f["hand"](month)),
        ),
        f"{BARS} bars to frame": (lambda: f["ours"](daily), lambda: f["hand"](daily)),
    }


def conversions(month: list[Record], daily: list[Record], rounds: int) -> dict[str, Any]:
    """The conversions alone, each library's way and by hand, alternately."""
    out: dict[str, Any] = {}
    for library, f in LIBRARIES.items():
        for case, (ours, hand) in conversion_cases(f, month, daily).items():
            ours(), hand()  # warm
            times: dict[str, list[float]] = {"ours": [], "hand": []}
            for i in range(rounds):
                pair = [("ours", ours), ("hand", hand)]
                for name, work in pair if i % 2 else pair[::-1]:
                    times[name].append(timed(work))
            out.setdefault(library, {})[case] = cell(times["ours"], times["hand"])
    return out


AsyncCase = tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]


def served_cases(
    client: AsyncClient,
    f: dict[str, Callable[..., Any]],
    minutes: tuple[Series, list[Record]],
    daily: Series,
) -> dict[str, AsyncCase]:
    series, month = minutes
    frame, hand_frame = f["ours"](month), f["hand"](month)
    copy = Series(series.symbol, series.data_type, "frames")

    async def read_month(convert: Callable[..., Any]) -> Any:
        read = await client.read(series, start_ms=month[0].ts_ms, end_ms=month[-1].ts_ms)
        return convert(read.records)

    async def read_year(convert: Callable[..., Any]) -> Any:
        return convert((await client.read(daily, limit=BARS, newest_first=True)).records)

    async def write_ours() -> int:
        return await write_frame(client, copy, frame)

    async def write_hand() -> int:
        return await client.write(copy, f["hand back"](hand_frame))

    return {
        "read month + frame": (lambda: read_month(f["ours"]), lambda: read_month(f["hand"])),
        "write month from frame": (write_ours, write_hand),
        f"read {BARS} + frame": (lambda: read_year(f["ours"]), lambda: read_year(f["hand"])),
    }


async def end_to_end(
    target: str,
    minutes: tuple[Series, list[Record]],
    days: tuple[Series, list[Record]],
    rounds: int,
) -> dict[str, Any]:
    """The same with a Read (or Write) of a real server included."""
    out: dict[str, Any] = {}
    async with AsyncClient(target, timeout=60) as client:
        await client.write(*minutes)
        await client.write(*days)
        for library, f in LIBRARIES.items():
            for case, (ours, hand) in served_cases(client, f, minutes, days[0]).items():
                await ours(), await hand()
                times: dict[str, list[float]] = {"ours": [], "hand": []}
                for i in range(rounds):
                    pair = [("ours", ours), ("hand", hand)]
                    for name, work in pair if i % 2 else pair[::-1]:
                        times[name].append(await atimed(work))
                out.setdefault(library, {})[case] = cell(times["ours"], times["hand"])
    return out


def run(workdir: Path, rounds: int) -> dict[str, Any]:
    root = data_dir()
    minutes = bars(root / MINUTES_FILE, MONTH)
    daily_series, daily = bars(root / DAILY_FILE)
    days = (daily_series, daily[-BARS:])
    result: dict[str, Any] = {
        "month": {"series": "/".join(minutes[0]), "records": len(minutes[1])},
        "daily": {"series": "/".join(daily_series), "records": BARS},
        "rounds": rounds,
        "versions": {
            "python": platform.python_version(),
            "pandas": pd.__version__,
            "polars": pl.__version__,
        },
        "conversion": conversions(minutes[1], days[1], rounds),
    }
    server = procs.mdcache("frames", workdir)
    try:
        result["end_to_end"] = asyncio.run(end_to_end(server.target, minutes, days, rounds))
    finally:
        server.stop()
    return result


def markdown(result: dict[str, Any]) -> list[str]:
    month, daily = result["month"], result["daily"]
    lines = [
        "## DataFrames",
        "",
        f"{month['series']}, January 2019: {month['records']:,} one-minute bars; "
        f"{daily['series']}: its last {daily['records']} daily bars. Best and median of "
        f"{result['rounds']} alternating runs, in ms: the conversions in CPU time of the "
        "process, the rows with a server in wall time; speedup = by hand / ours, the target "
        "judged on the best (the medians show how much the machine's other work added). "
        f"Python {result['versions']['python']}, pandas {result['versions']['pandas']}, "
        f"polars {result['versions']['polars']}.",
        "",
        "| library | case | best: ours ms | by hand ms | speedup | median: ours / by hand ms "
        "| speedup | target >= 2x |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for part, judged in (("conversion", True), ("end_to_end", False)):
        for library, cases in result[part].items():
            for case, m in cases.items():
                met = m["speedup_best"] >= TARGET
                verdict = ("met" if met else "missed") if judged else "-"
                lines.append(
                    f"| {library} | {case} | {m['ours_best_ms']:.2f} | {m['hand_best_ms']:.2f} "
                    f"| {m['speedup_best']:.1f}x | {m['ours_median_ms']:.2f} / "
                    f"{m['hand_median_ms']:.2f} | {m['speedup_median']:.1f}x | {verdict} |"
                )
    lines += [
        "",
        "The target is on the conversions; the end-to-end rows add the same Read or Write of "
        "a server process on loopback (SQLite) to both sides.",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.frames", description=__doc__)
    parser.add_argument("--rounds", type=int, default=30, help="timed runs of each case")
    parser.add_argument("--json", type=Path, help="write the result here as JSON too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mdcache-bench-frames-") as tmp:
        result = run(Path(tmp), args.rounds)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write("\n".join(markdown(result)) + "\n")


if __name__ == "__main__":
    main()
