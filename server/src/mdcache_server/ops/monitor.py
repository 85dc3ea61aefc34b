"""``mdcache monitor``: a live view of a server, redrawn every ``--interval`` seconds.

Each view is the server's Stats (records, series, symbols, hit rate, hot symbols, the hot
tier, retention, uptime) and the calls per second by method, from the difference of two
Stats a known time apart. ``--once`` takes two Stats one interval apart, shows one view
and exits; ``--json`` writes each view as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from mdcache_client import Client, MdcacheError, Stats
from mdcache_server.ops.command import (
    Command,
    UsageError,
    add_connection,
    add_json,
    connect,
    target,
)
from mdcache_server.ops.stats import stats_json, stats_lines
from mdcache_server.ops.units import rate

CLEAR = "\x1b[H\x1b[2J"
ALTERNATE_SCREEN, NORMAL_SCREEN = "\x1b[?1049h", "\x1b[?1049l"


@dataclass(frozen=True, slots=True)
class Sample:
    stats: Stats
    at: float  # time.monotonic() when it came


@dataclass(frozen=True, slots=True)
class Rates:
    seconds: float
    calls: dict[str, float]
    errors: dict[str, float]


def rates(before: Sample, after: Sample) -> Rates:
    """Calls and errors per second by method between two samples of one server."""
    seconds = after.at - before.at
    calls: dict[str, float] = {}
    errors: dict[str, float] = {}
    for method, now in sorted(after.stats.calls.items()):
        then = before.stats.calls.get(method)
        done, failed = (
            now.calls - (then.calls if then else 0),
            now.errors - (then.errors if then else 0),
        )
        if done < 0:  # the server restarted in between: count from its start
            done, failed = now.calls, now.errors
        calls[method] = done / seconds if seconds > 0 else 0.0
        errors[method] = failed / seconds if seconds > 0 else 0.0
    return Rates(seconds, calls, errors)


def view_lines(server: str, sample: Sample, measured: Rates | None, interval: float) -> list[str]:
    clock = datetime.now().astimezone().strftime("%H:%M:%S")
    if measured is None:
        per_second = "measuring..."
    else:
        per_second = (
            ", ".join(
                f"{m} {rate(r)}"
                + (f" ({rate(measured.errors[m])} errors)" if measured.errors[m] else "")
                for m, r in measured.calls.items()
            )
            or "none"
        )
    return [
        f"mdcache monitor  {server}  every {interval:g}s  {clock}",
        "",
        *stats_lines(sample.stats),
        f"calls/s      {per_second}",
    ]


def view_json(server: str, sample: Sample, measured: Rates | None) -> str:
    report: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(),
        "target": server,
        "seconds": measured.seconds if measured else None,
        "calls_per_second": measured.calls if measured else None,
        "errors_per_second": measured.errors if measured else None,
        "stats": stats_json(sample.stats),
    }
    return json.dumps(report, ensure_ascii=False) + "\n"


class Monitor:
    """Samples a server and writes its views to ``out``."""

    def __init__(
        self,
        client: Client,
        server: str,
        out: TextIO,
        *,
        interval: float,
        as_json: bool,
        top: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.server = server
        self.out = out
        self.interval = interval
        self.as_json = as_json
        self.top = top
        self.sleep = sleep
        self.redraw = out.isatty() and not as_json

    def sample(self) -> Sample:
        return Sample(self.client.stats(top_n=self.top), time.monotonic())

    def show(self, sample: Sample, measured: Rates | None) -> None:
        if self.as_json:
            self.out.write(view_json(self.server, sample, measured))
        else:
            lines = view_lines(self.server, sample, measured, self.interval)
            self.out.write((CLEAR if self.redraw else "") + "\n".join(lines) + "\n")
            if not self.redraw:
                self.out.write("\n")
        self.out.flush()

    def once(self) -> None:
        first = self.sample()
        self.sleep(self.interval)
        second = self.sample()
        self.show(second, rates(first, second))

    def live(self) -> None:
        """Until interrupted; a server that stops answering is shown as such, and retried."""
        previous: Sample | None = None
        if self.redraw:
            self.out.write(ALTERNATE_SCREEN)
        try:
            while True:
                try:
                    current = self.sample()
                except MdcacheError as exc:
                    self._unreachable(exc)
                    previous = None
                else:
                    self.show(current, rates(previous, current) if previous else None)
                    previous = current
                self.sleep(self.interval)
        finally:
            if self.redraw:
                self.out.write(NORMAL_SCREEN)
                self.out.flush()

    def _unreachable(self, exc: MdcacheError) -> None:
        if self.as_json:
            report = {
                "time": datetime.now(UTC).isoformat(),
                "target": self.server,
                "error": str(exc),
            }
            self.out.write(json.dumps(report) + "\n")
        else:
            message = f"mdcache monitor  {self.server}: no answer ({exc}); retrying"
            self.out.write((CLEAR if self.redraw else "") + message + "\n")
        self.out.flush()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection(parser)
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between views (default 2)"
    )
    parser.add_argument("--once", action="store_true", help="show one view and exit")
    parser.add_argument("--top", type=int, default=10, help="hot symbols to list (default 10)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default 5)")
    add_json(parser)


def run(args: argparse.Namespace, environ: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    if not args.interval > 0:
        raise UsageError("--interval must be above 0")
    server = target(args, environ)
    with connect(args, environ, timeout=args.timeout) as client:
        monitor = Monitor(
            client, server, out, interval=args.interval, as_json=args.json, top=args.top
        )
        try:
            if args.once:
                monitor.once()
            else:
                monitor.live()
        except MdcacheError as exc:
            err.write(f"mdcache monitor: {server}: {exc}\n")
            return 1
        except KeyboardInterrupt:
            return 0
    return 0


MONITOR_HELP = """\
Watch a server: records, series, symbols, hit rate, hot symbols, the hot tier,
retention, uptime and calls per second by method, redrawn every --interval
seconds (Ctrl-C quits). --once shows one view, measured over one interval, and
exits; --json writes each view as a line of JSON.
"""


COMMAND = Command(
    name="monitor",
    help="watch a server live: records, hit rate, calls per second, hot tier",
    description=MONITOR_HELP,
    add_arguments=add_arguments,
    run=run,
)
