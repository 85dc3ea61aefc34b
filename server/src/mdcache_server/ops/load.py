"""``mdcache load FILES...``: imports CSV bar files into the cache through its gRPC API.

Each file's format is told from its header (``ops/csvformats.py``), and its timeframe
from the spacing of its bars (``ops/spacing.py``) unless ``--timeframe`` names it, before
anything is written. Rows go out in Write calls of ``--batch-rows`` rows, one call in flight while
the next batch is read. A row that cannot be loaded is reported with its file and line
and counted, and the rest is loaded; ``--strict`` checks every file first and loads
nothing if any row is bad.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mdcache_client import Client, MdcacheError, Record, Series
from mdcache_server.ops.command import Command, UsageError, add_connection, add_json, connect
from mdcache_server.ops.csvformats import BadRow, CsvFormat, UnknownFormat, detect, identifier
from mdcache_server.ops.progress import ProgressBar
from mdcache_server.ops.spacing import infer
from mdcache_server.ops.units import count, elapsed, plural

Batch = dict[Series, list[Record]]
SHOWN_BAD_ROWS = 20


@dataclass(frozen=True, slots=True)
class BadRowAt:
    file: str
    line: int
    error: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.error}"


@dataclass(frozen=True, slots=True)
class Source:
    """A file to load and its format."""

    path: Path
    format: CsvFormat
    rows: int  # about: its lines but the header, for the progress bar
    timeframe: str = ""  # of every series of the file (empty: as the format says)
    why: str = ""  # how the timeframe was told: given, or the spacing that told it


@dataclass
class Tally:
    rows: int = 0  # written
    checked: int = 0  # read and found good, by a check before loading
    series: set[Series] = field(default_factory=set)
    bad: list[BadRowAt] = field(default_factory=list)
    timeframes: dict[str, tuple[str, str]] = field(default_factory=dict)  # file: (tf, why)
    error: str | None = None


def _data_lines(path: Path) -> int:
    with path.open("rb") as f:
        lines, last = 0, b"\n"
        for chunk in iter(lambda: f.read(1 << 20), b""):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return max(lines - (last == b"\n"), 0)  # the header's end or the last row's


def open_sources(
    paths: Sequence[Path], *, symbol: str | None, data_type: str, timeframe: str | None = None
) -> list[Source]:
    """Each file with its format and timeframe (given, else told from the spacing of its
    bars); raises UnknownFormat (or UnknownTimeframe) or OSError before anything is loaded."""
    sources = []
    for path in paths:
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), None)
        if header is None:
            raise UnknownFormat(f"{path}: empty file")
        fmt = detect(path, header, symbol=symbol, data_type=data_type)
        if timeframe:
            tf, why = timeframe, "given (--timeframe)"
        else:
            inferred = infer(path, fmt)
            tf, why = inferred.timeframe, f"inferred: its bars are {inferred.why}"
        sources.append(Source(path, fmt, _data_lines(path), tf, why))
    return sources


def bars(source: Source) -> Iterator[tuple[Series, Record] | BadRowAt]:
    """The file's rows as series and records, or where and why a row is bad."""
    filed: dict[Series, Series] = {}  # the format's series -> under the file's timeframe
    with source.path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            next(reader)
            for fields in reader:
                if not fields:
                    continue  # a blank line
                try:
                    series, record = source.format.bar(fields)
                    if source.timeframe:
                        found = filed.get(series)
                        if found is None:
                            found = filed[series] = series._replace(timeframe=source.timeframe)
                        series = found
                    yield series, record
                except BadRow as exc:
                    yield BadRowAt(str(source.path), reader.line_num, str(exc))
        except (csv.Error, UnicodeDecodeError) as exc:
            line = reader.line_num + 1
            yield BadRowAt(
                str(source.path), line, f"unreadable, the rest of the file skipped: {exc}"
            )


def batches(sources: Sequence[Source], size: int, tally: Tally) -> Iterator[tuple[Batch, int]]:
    """Batches of about ``size`` records, each with the rows it consumed (bad ones too)."""
    batch: Batch = defaultdict(list)
    records = consumed = 0
    for source in sources:
        for item in bars(source):
            consumed += 1
            if isinstance(item, BadRowAt):
                tally.bad.append(item)
                continue
            series, record = item
            batch[series].append(record)
            records += 1
            if records >= size:
                yield batch, consumed
                batch, records, consumed = defaultdict(list), 0, 0
    if consumed:
        yield batch, consumed


def check(sources: Sequence[Source], tally: Tally, progress: ProgressBar) -> None:
    """Reads every row without writing, counting the series and the bad rows."""
    for batch, consumed in batches(sources, 10_000, tally):
        tally.series.update(batch)
        tally.checked += sum(len(records) for records in batch.values())
        progress.advance(consumed)
    progress.close()


def load(
    client: Client, sources: Sequence[Source], size: int, tally: Tally, progress: ProgressBar
) -> None:
    """Writes every batch, one Write in flight while the next batch is read."""
    with ThreadPoolExecutor(1, thread_name_prefix="mdcache-load") as writer:
        pending: tuple[Future[int], Batch, int] | None = None
        try:
            for batch, consumed in batches(sources, size, tally):
                if pending is not None:
                    _landed(pending, tally, progress)
                pending = (writer.submit(client.write_many, batch), batch, consumed)
            if pending is not None:
                _landed(pending, tally, progress)
        except MdcacheError as exc:
            tally.error = f"a Write failed after {count(tally.rows)} rows: {exc}"


def _landed(pending: tuple[Future[int], Batch, int], tally: Tally, progress: ProgressBar) -> None:
    future, batch, consumed = pending
    tally.rows += future.result()
    tally.series.update(batch)
    progress.advance(consumed)


def summary_text(tally: Tally, files: int, seconds: float, *, dry_run: bool) -> str:
    speed = tally.rows / seconds if seconds > 0 else 0.0
    bad = len(tally.bad)
    if dry_run:
        head = (
            f"checked {count(tally.checked)} rows of {count(len(tally.series))} series in "
            f"{plural(files, 'file')} in {elapsed(seconds)}; nothing written (--dry-run)"
        )
    else:
        head = (
            f"loaded {count(tally.rows)} rows into {count(len(tally.series))} series from "
            f"{plural(files, 'file')} in {elapsed(seconds)} ({count(round(speed))} rows/s)"
        )
    lines = [f"{head}; {plural(bad, 'bad row')}" + (" (not loaded)" if bad and not dry_run else "")]
    lines += [f"  {file}: timeframe {tf}, {why}" for file, (tf, why) in tally.timeframes.items()]
    lines += [f"  {row}" for row in tally.bad[:SHOWN_BAD_ROWS]]
    if bad > SHOWN_BAD_ROWS:
        lines.append(f"  ... and {count(bad - SHOWN_BAD_ROWS)} more (--json lists them all)")
    if tally.error:
        lines.append(f"error: {tally.error}")
    return "\n".join(lines) + "\n"


def summary_json(tally: Tally, files: int, seconds: float, *, dry_run: bool) -> str:
    report: dict[str, Any] = {
        "files": files,
        "rows": tally.rows,
        "checked": tally.checked,
        "series": len(tally.series),
        "bad_rows": len(tally.bad),
        "seconds": seconds,
        "rows_per_second": tally.rows / seconds if seconds > 0 else 0.0,
        "dry_run": dry_run,
        "error": tally.error,
        "timeframes": {
            file: {"timeframe": tf, "how": why} for file, (tf, why) in tally.timeframes.items()
        },
        "bad": [asdict(b) for b in tally.bad],
    }
    return json.dumps(report, ensure_ascii=False) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="CSV files of bars")
    add_connection(parser)
    parser.add_argument(
        "--symbol",
        help="the symbol of every row (default: from the file; needed for Yahoo "
        "files not named yahoofinance-SYMBOL-....csv)",
    )
    parser.add_argument("--data-type", default="kline", help="data_type of the series (kline)")
    parser.add_argument(
        "--timeframe",
        help="timeframe of every series (1m, 5m, 60m, 1d...; default: told from the "
        "spacing of each file's bars, and a file whose spacing tells none is refused)",
    )
    parser.add_argument(
        "--batch-rows", type=int, default=2000, help="rows per Write call (default 2000)"
    )
    parser.add_argument(
        "--strict", action="store_true", help="check every row first; load nothing if any is bad"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="read and check every row; write nothing"
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw a progress bar on standard error (default: when it is a terminal)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds a Write call may take (default 60)"
    )
    add_json(parser)


def run(args: argparse.Namespace, environ: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    if args.batch_rows < 1:
        raise UsageError("--batch-rows must be at least 1")
    try:
        if args.timeframe is not None:
            identifier("--timeframe", args.timeframe)
        sources = open_sources(
            args.files, symbol=args.symbol, data_type=args.data_type, timeframe=args.timeframe
        )
    except (UnknownFormat, BadRow, OSError, UnicodeDecodeError, csv.Error) as exc:
        err.write(f"mdcache load: {exc}\n")
        return 2
    total = sum(s.rows for s in sources)
    show = err.isatty() if args.progress is None else args.progress
    timeframes = {str(s.path): (s.timeframe, s.why) for s in sources}
    tally = Tally(timeframes=timeframes)
    started = time.perf_counter()
    if args.strict or args.dry_run:
        check(sources, tally, ProgressBar(total, err, enabled=show and args.dry_run))
    if args.strict and tally.bad and not args.dry_run:
        tally.series.clear()
        tally.error = "bad rows and --strict: nothing loaded"
    elif not args.dry_run:
        tally = Tally(timeframes=timeframes)
        progress = ProgressBar(total, err, enabled=show)
        with connect(args, environ, timeout=args.timeout) as client:
            load(client, sources, args.batch_rows, tally, progress)
        progress.close()
    seconds = time.perf_counter() - started
    render = summary_json if args.json else summary_text
    out.write(render(tally, len(sources), seconds, dry_run=args.dry_run))
    failed = tally.error is not None or (args.strict and bool(tally.bad))
    return 1 if failed else 0


LOAD_HELP = """\
Import CSV files of bars into the cache through its gRPC API (Write calls of
--batch-rows rows). Each file's format is told from its header:

  tushare  ,ts_code,trade_date,open,high,low,close,...   A-share daily (tushare pro)
           series ts_code/kline/1d, stamped at the 15:00 close, China time (UTC+8)
  czsc     symbol,[id,]dt,[freq,]open,close,high,low,vol   e.g. the SSE index bars
           series symbol/kline/freq (none: 1d; .XSHG -> .SH, .XSHE -> .SZ),
           stamped at dt (the bar's end), China time
  yahoo    Date,Open,High,Low,Close[,Adj Close],Volume    Yahoo Finance daily
           series SYMBOL/kline/1d from yahoofinance-SYMBOL-....csv (or --symbol),
           stamped at 00:00 UTC of Date

Without --timeframe, a file's timeframe is told from the spacing of its bars (the
most common gap within a day: 1, 5, 15, 30, 60 minutes; else a day, a week or a month
apart), said in the summary; a file whose spacing tells none is refused.

A record's payload is the row as a JSON object, numbers as numbers. A bad row (a
field that is not a number, a date that is not one, low above open...) is reported
with its file and line and counted, and the rest is loaded; --strict checks every
row first and loads nothing if any is bad.
"""


COMMAND = Command(
    name="load",
    help="import CSV bar files through the gRPC API",
    description=LOAD_HELP,
    add_arguments=add_arguments,
    run=run,
)
