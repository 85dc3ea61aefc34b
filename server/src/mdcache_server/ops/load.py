"""``mdcache load FILES...``: imports CSV bar files into the cache through its gRPC API.

Each file's format is told from its header (``ops/csvformats.py``), and its timeframe
from the spacing of its bars (``ops/spacing.py``) unless ``--timeframe`` names it, before
anything is written; a directory stands for the ``.csv`` files under it, and a file that is
not CSV (a zip, a README) is refused by name. Rows go out in Write calls of
``--batch-rows`` rows, one call in flight while the next batch is read. A row that cannot
be loaded is reported with its file and line and counted, and the rest is loaded;
``--strict`` checks every file first and loads nothing if any row is bad. The summary says
what each file loaded into which series, and with which timeframe.
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
Origins = dict[Path, dict[Series, int]]  # of a batch: its rows by file and series
SHOWN_BAD_ROWS = 20
SHOWN_SERIES = 3  # per file, in the summary
_ARCHIVES = {b"PK\x03\x04": "a zip archive", b"\x1f\x8b": "a gzip file"}


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
    where: Origins = field(default_factory=dict)  # rows written (or checked) by file, series

    def add(self, origins: Origins) -> None:
        for path, counts in origins.items():
            mine = self.where.setdefault(path, {})
            for series, n in counts.items():
                mine[series] = mine.get(series, 0) + n


def _data_lines(path: Path) -> int:
    with path.open("rb") as f:
        lines, last = 0, b"\n"
        for chunk in iter(lambda: f.read(1 << 20), b""):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return max(lines - (last == b"\n"), 0)  # the header's end or the last row's


def expand(paths: Sequence[Path]) -> list[Path]:
    """The files to load: each file given, and the ``.csv`` files under each directory."""
    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".csv" and p.is_file())
            if not found:
                raise UnknownFormat(f"{path}: a directory with no .csv file under it")
            files += found
        else:
            files.append(path)
    return files


def _refuse_non_csv(path: Path) -> None:
    """Raises UnknownFormat naming a file that is plainly not CSV text (an archive)."""
    with path.open("rb") as f:
        start = f.read(4)
    for magic, kind in _ARCHIVES.items():
        if start.startswith(magic):
            raise UnknownFormat(
                f"{path}: {kind}, not a CSV file: extract it and load the CSV files in it"
            )


def open_sources(
    paths: Sequence[Path],
    *,
    symbol: str | None,
    data_type: str | None = None,
    timeframe: str | None = None,
) -> list[Source]:
    """Each file (directories: their .csv files) with its format and timeframe (given, else
    told from the spacing of its bars); raises UnknownFormat (or UnknownTimeframe) or
    OSError before anything is loaded."""
    sources = []
    for path in expand(paths):
        _refuse_non_csv(path)
        try:
            with path.open(newline="", encoding="utf-8-sig") as f:
                reader = csv.reader(f)
                header = next(reader, None)
                first = next((row for row in reader if row), [])
        except UnicodeDecodeError as exc:
            raise UnknownFormat(f"{path}: not UTF-8 text, so not a CSV file ({exc})") from None
        except csv.Error as exc:
            raise UnknownFormat(f"{path}: not a CSV file ({exc})") from None
        if header is None:
            raise UnknownFormat(f"{path}: empty file")
        try:
            fmt = detect(path, header, symbol=symbol, data_type=data_type, first_row=first)
        except UnknownFormat:
            if path.suffix.lower() != ".csv":
                line = ",".join(header)
                line = line if len(line) <= 60 else line[:60] + "..."
                raise UnknownFormat(
                    f"{path}: not a CSV file of bars or ticks (its first line: {line!r})"
                ) from None
            raise
        if timeframe:
            tf, why = timeframe, "given (--timeframe)"
        elif fmt.timeframe:
            tf, why = fmt.timeframe, f"{fmt.name} files have no other"
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


def batches(
    sources: Sequence[Source], size: int, tally: Tally
) -> Iterator[tuple[Batch, int, Origins]]:
    """Batches of about ``size`` records, each with the rows it consumed (bad ones too) and
    where its records came from."""
    batch: Batch = defaultdict(list)
    origins: Origins = {}
    records = consumed = 0
    for source in sources:
        for item in bars(source):
            consumed += 1
            if isinstance(item, BadRowAt):
                tally.bad.append(item)
                continue
            series, record = item
            batch[series].append(record)
            counts = origins.setdefault(source.path, {})
            counts[series] = counts.get(series, 0) + 1
            records += 1
            if records >= size:
                yield batch, consumed, origins
                batch, origins, records, consumed = defaultdict(list), {}, 0, 0
    if consumed:
        yield batch, consumed, origins


def check(sources: Sequence[Source], tally: Tally, progress: ProgressBar) -> None:
    """Reads every row without writing, counting the series and the bad rows."""
    for batch, consumed, origins in batches(sources, 10_000, tally):
        tally.series.update(batch)
        tally.checked += sum(len(records) for records in batch.values())
        tally.add(origins)
        progress.advance(consumed)
    progress.close()


def load(
    client: Client, sources: Sequence[Source], size: int, tally: Tally, progress: ProgressBar
) -> None:
    """Writes every batch, one Write in flight while the next batch is read."""
    with ThreadPoolExecutor(1, thread_name_prefix="mdcache-load") as writer:
        pending: tuple[Future[int], Batch, int, Origins] | None = None
        try:
            for batch, consumed, origins in batches(sources, size, tally):
                if pending is not None:
                    _landed(pending, tally, progress)
                pending = (writer.submit(client.write_many, batch), batch, consumed, origins)
            if pending is not None:
                _landed(pending, tally, progress)
        except MdcacheError as exc:
            tally.error = f"a Write failed after {count(tally.rows)} rows: {exc}"


def _landed(
    pending: tuple[Future[int], Batch, int, Origins], tally: Tally, progress: ProgressBar
) -> None:
    future, batch, consumed, origins = pending
    tally.rows += future.result()
    tally.series.update(batch)
    tally.add(origins)
    progress.advance(consumed)


def _where(tally: Tally, sources: Sequence[Source]) -> list[str]:
    """A line per file: its format, and the rows it gave each series."""
    lines = []
    for source in sources:
        counts = tally.where.get(source.path, {})
        shown = [
            f"{s.symbol}/{s.data_type}/{s.timeframe}"
            for s in sorted(counts, key=lambda s: -counts[s])[:SHOWN_SERIES]
        ]
        if len(counts) > SHOWN_SERIES:
            shown.append(f"and {count(len(counts) - SHOWN_SERIES)} more series")
        into = f" -> {', '.join(shown)}" if shown else ""
        rows = sum(counts.values())
        lines.append(f"  {source.path} ({source.format.name}): {plural(rows, 'row')}{into}")
    return lines


def summary_text(tally: Tally, sources: Sequence[Source], seconds: float, *, dry_run: bool) -> str:
    files = len(sources)
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
    lines += _where(tally, sources)
    if bad:
        lines.append("bad rows:")
    lines += [f"  {row}" for row in tally.bad[:SHOWN_BAD_ROWS]]
    if bad > SHOWN_BAD_ROWS:
        lines.append(f"  ... and {count(bad - SHOWN_BAD_ROWS)} more (--json lists them all)")
    if tally.error:
        lines.append(f"error: {tally.error}")
    return "\n".join(lines) + "\n"


def summary_json(tally: Tally, sources: Sequence[Source], seconds: float, *, dry_run: bool) -> str:
    report: dict[str, Any] = {
        "files": len(sources),
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
        "loaded": [
            {
                "file": str(source.path),
                "format": source.format.name,
                "series": [
                    {
                        "symbol": s.symbol,
                        "data_type": s.data_type,
                        "timeframe": s.timeframe,
                        "rows": n,
                    }
                    for s, n in tally.where.get(source.path, {}).items()
                ],
            }
            for source in sources
        ],
    }
    return json.dumps(report, ensure_ascii=False) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="CSV files of bars or ticks; a directory: the .csv files under it",
    )
    add_connection(parser)
    parser.add_argument(
        "--symbol",
        help="the symbol of every row (default: from the file; needed for Yahoo "
        "files not named yahoofinance-SYMBOL-....csv)",
    )
    parser.add_argument(
        "--data-type", help="data_type of the series (default: kline for bars, tick for ticks)"
    )
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
    out.write(render(tally, sources, seconds, dry_run=args.dry_run))
    failed = tally.error is not None or (args.strict and bool(tally.bad))
    return 1 if failed else 0


LOAD_HELP = """\
Import CSV files of bars and ticks into the cache through its gRPC API (Write calls of
--batch-rows rows). Each file's format is told from its header:

  tushare  ,ts_code,trade_date,open,high,low,close,...   A-share daily (tushare pro)
           series ts_code/kline/1d, stamped at the 15:00 close, China time (UTC+8)
  czsc     symbol,[id,]dt,[freq,]open,close,high,low,vol   e.g. the SSE index bars
           series symbol/kline/freq (none: 1d; .XSHG -> .SH, .XSHE -> .SZ),
           stamped at dt (the bar's end), China time
  yahoo    Date,Open,High,Low,Close[,Adj Close],Volume    Yahoo Finance daily
           series SYMBOL/kline/1d from yahoofinance-SYMBOL-....csv or
           SYMBOL_....csv (or --symbol), stamped at 00:00 UTC of Date
  us-1m    the same with a time in Date (11/5/2019 9:30)   US one-minute bars
           series SYMBOL/kline/1m, stamped at Date (the bar's start), New York time
  vnpy-tick symbol,date,time,lastPrice,...,bidPrice1,askPrice1,...
           vn.py futures ticks: series symbol/tick/tick, stamped at date time,
           China time

A directory stands for the .csv files under it; a file that is not CSV (a zip, a
README) is refused by name, and nothing is loaded.

Without --timeframe, a file's timeframe is told from the spacing of its bars (the
most common gap within a day: 1, 5, 15, 30, 60 minutes; else a day, a week or a month
apart), said in the summary; a file whose spacing tells none is refused.

A record's payload is the row as a JSON object, numbers as numbers. A bad row (a
field that is not a number, a date that is not one, low above open, bid above ask...)
is reported with its file and line and counted, and the rest is loaded; --strict
checks every row first and loads nothing if any is bad. The summary says what each
file loaded into which series.
"""


COMMAND = Command(
    name="load",
    help="import CSV files of bars and ticks through the gRPC API",
    description=LOAD_HELP,
    add_arguments=add_arguments,
    run=run,
)
