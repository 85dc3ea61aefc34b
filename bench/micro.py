"""``python -m bench.micro``: what the pieces of a Read and a Write cost, in-process.

Two kinds of figures, microseconds per call, best of several repeats (the least
disturbed by other work on the machine):

- the server's own handlers, called as gRPC calls them (``servicer.Read(request,
  context)``) on a real cache over a SQLite file, with its logging and metrics: what a
  call costs the server besides the gRPC stack (the floor);
- reference pieces that do not depend on the server's code: building a 250-record answer
  as messages, against joining records serialized once; ``json.loads`` against
  ``orjson.loads``; parsing a 1,000-row WriteRequest.

A piece that cannot run against the server code of the moment is left out and named in
``errors`` rather than stopping the benchmark.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import timeit
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import data, wire
from bench.case import Case, Results, Settings
from bench.data import HOT_SERIES, YEAR
from mdcache.v1 import cache_pb2 as pb

orjson: Any
try:
    import orjson
except ImportError:  # measured only when installed
    orjson = None


def best_us(fn: Callable[[], object], number: int, repeat: int = 5) -> float:
    number = max(number, 1)
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


async def best_async_us(fn: Callable[[], Awaitable[object]], number: int, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(max(number, 1)):
            await fn()
        best = min(best, (time.perf_counter() - started) / max(number, 1))
    return best * 1e6


def _fragment(ts: int, payload: str) -> bytes:
    """One ``SeriesResult.records`` field (tag 3, length, Record), serialized once."""
    body = pb.Record(ts_ms=ts, payload=payload).SerializeToString()
    return b"\x1a" + _varint(len(body)) + body


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def reference(quick: bool) -> dict[str, float]:
    """Pieces independent of the server's code."""
    n = 200 if quick else 2000
    bars = data.a_shares()[HOT_SERIES]
    first, last = data.year_window(bars)
    year = [r for r in bars if r.ts_ms is not None and first <= r.ts_ms <= last]
    key = pb.SeriesKey(symbol=HOT_SERIES.symbol, data_type="kline", timeframe="1d")
    out: dict[str, float] = {}

    def build() -> bytes:
        response = pb.ReadResponse()
        item = response.results.add(hit=True)
        item.series.CopyFrom(key)
        add = item.records.add
        for r in year:
            add(ts_ms=r.ts_ms, payload=r.payload)
        return response.SerializeToString()

    fragments = [_fragment(r.ts_ms or 0, r.payload) for r in year]
    head = pb.SeriesResult(series=key, hit=True).SerializeToString()

    def join() -> bytes:
        body = head + b"".join(fragments)
        return b"\x0a" + _varint(len(body)) + body

    if join() != build():
        raise AssertionError("joined fragments differ from the built answer")
    out["250-record answer: built as messages, then serialized"] = best_us(build, n // 4)
    out["250-record answer: joined from records serialized once"] = best_us(join, n)
    payloads = [r.payload for r in bars[:1000]]
    out["1,000 payloads: json.loads"] = best_us(lambda: [json.loads(p) for p in payloads], n // 100)
    if orjson is not None:
        loads = orjson.loads
        out["1,000 payloads: orjson.loads"] = best_us(
            lambda: [loads(p) for p in payloads], n // 100
        )
    write = pb.WriteRequest.FromString(wire.write({HOT_SERIES: bars[:1000]}))
    raw = write.SerializeToString()
    out["1,000-row WriteRequest: parse (upb)"] = best_us(lambda: pb.WriteRequest.FromString(raw), n)
    return out


async def handlers(quick: bool) -> dict[str, float]:
    """The server's own handlers, on a real cache over SQLite, with its logging and metrics."""
    from mdcache_server import logs
    from mdcache_server.app import Server
    from mdcache_server.config import Config
    from mdcache_server.service.servicer import MarketDataCacheServicer
    from mdcache_server.store.sqlite import SqliteStore

    n = 200 if quick else 2000
    bars = data.a_shares()[HOT_SERIES]
    first, last = data.year_window(bars)
    out: dict[str, float] = {}
    stderr = sys.stderr
    null = _DEVNULL
    with tempfile.TemporaryDirectory(prefix="mdcache-micro-") as tmp:
        sys.stderr = null  # the server logs what it logs when serving (errors, slow calls)
        servers = []
        try:
            logs.configure("info", "json")
            servicers = {}
            for name, hot_bytes in (("hot", None), ("cold", "0")):
                flags = {"data_dir": str(Path(tmp) / name)}
                if hot_bytes is not None:
                    flags["hot_tier_bytes"] = hot_bytes
                config = Config.load(flags, {})
                server = Server(config, SqliteStore(Path(tmp) / f"{name}.sqlite3"))
                servers.append(server)
                await server._prepare_store()
                servicers[name] = server.servicer
            # The hot server's handler with no answers remembered: the path of a first ask.
            hot_server = servers[0]
            servicers["hot, not remembered"] = MarketDataCacheServicer(
                hot_server.cache, hot_server.config.limits, metrics=hot_server.metrics
            )
            write = pb.WriteRequest.FromString(wire.write({HOT_SERIES: bars}))
            for servicer in servicers.values():
                await servicer.Write(write, None)  # type: ignore[arg-type]
            latest = wire.latest(HOT_SERIES)  # Read is served with the request's bytes
            window = wire.window(HOT_SERIES, first, last, YEAR)

            def read(servicer: Any, request: bytes) -> Callable[[], Awaitable[bytes]]:
                async def call() -> bytes:
                    answer = await servicer.Read(request, None)
                    return answer if isinstance(answer, bytes) else answer.SerializeToString()

                return call

            for name, servicer in servicers.items():
                for size, request in (("1 record", latest), ("250 records", window)):
                    call = read(servicer, request)
                    await call()  # a hot series is held from here on
                    count = n if size == "1 record" else n // 4
                    out[f"Read handler, {name}, {size} (serialized)"] = await best_async_us(
                        call, count
                    )
            thousand = pb.WriteRequest.FromString(
                wire.write({HOT_SERIES._replace(symbol="MICRO"): bars[:1000]})
            )
            hot = servicers["hot"]
            out["Write handler, 1,000 rows (validation, SQLite commit)"] = await best_async_us(
                lambda: hot.Write(thousand, None),  # type: ignore[arg-type]
                max(n // 200, 2),
            )
        finally:
            sys.stderr = stderr
            for server in servers:
                await asyncio.to_thread(server.pool.close)
    return out


# Kept open for the process: loggers cached while it is standard error write to it after
# (a later part of the same run, the TDengine growth build, logs through them).
_DEVNULL = open(os.devnull, "w")  # noqa: SIM115


async def run(quick: bool = False) -> tuple[dict[str, float], list[str]]:
    """Every piece that runs, in µs per call, and what could not run and why."""
    out: dict[str, float] = {}
    errors: list[str] = []
    try:
        out.update(await handlers(quick))
    except Exception as exc:  # noqa: BLE001 (diagnostic: the rest of the benchmark goes on)
        errors.append(f"server handlers: {type(exc).__name__}: {exc}")
    out.update(reference(quick))
    return out, errors


# The case ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MicroResult:
    """µs per call of each piece that ran (``micro_us``), and what could not (``micro_errors``)."""

    pieces: dict[str, float]
    errors: list[str]

    def as_json(self) -> dict[str, Any]:
        return {"micro_us": self.pieces, "micro_errors": self.errors}


class MicroCase(Case[MicroResult]):
    name = "micro"

    async def run(self, settings: Settings) -> MicroResult:
        pieces, errors = await run(settings.quick)
        for name, us in pieces.items():
            settings.say(f"micro: {us:9.1f} µs  {name}")
        for error in errors:
            settings.say(f"micro: left out: {error}")
        return MicroResult({k: round(v, 2) for k, v in pieces.items()}, errors)

    def load(self, results: Results) -> MicroResult | None:
        pieces = results.get("micro_us")
        return MicroResult(pieces, results.get("micro_errors") or []) if pieces else None

    def tables(self, result: MicroResult, results: Results) -> list[str]:
        lines = [
            "## Pieces of a call (in-process, µs per call, best of 5)",
            "",
            "| piece | µs |",
            "|---|---:|",
            *(f"| {name} | {us:,.1f} |" for name, us in result.pieces.items()),
            *(f"| left out: {error} | - |" for error in result.errors),
            "",
        ]
        return lines

    def notes(self, result: MicroResult, results: Results) -> list[str]:
        return _notes(result.pieces)


CASE = MicroCase()


def _notes(pieces: dict[str, float]) -> list[str]:
    """What the pieces say of a call's costs."""
    notes: list[str] = []
    hot1 = pieces.get("Read handler, hot, 1 record (serialized)")
    hot250 = pieces.get("Read handler, hot, 250 records (serialized)")
    cold250 = pieces.get("Read handler, cold, 250 records (serialized)")
    first1 = pieces.get("Read handler, hot, not remembered, 1 record (serialized)")
    first250 = pieces.get("Read handler, hot, not remembered, 250 records (serialized)")
    if hot1 and hot250 and cold250:
        notes.append(
            f"In-process, the server's Read handler takes {hot1:.0f} µs for a hot 1-record "
            f"read and {hot250:.0f} µs for a hot 250-record read asked before (a remembered "
            "answer)"
            + (
                f", {first1:.0f} and {first250:.0f} µs asked for the first time"
                if first1 and first250
                else ""
            )
            + f", and {cold250:.0f} µs for a cold 250-record read (answer serialized, metrics "
            "included). Over the network a µs of handler work costs 1.1 to 3.8 µs of server CPU "
            "(bench/PROFILE.md), so 0.8 x the floor's calls/s leaves at most about 50 µs of "
            "handler work per call."
        )
    write = pieces.get("Write handler, 1,000 rows (validation, SQLite commit)")
    if write:
        notes.append(
            f"The Write handler takes {write / 1000:.1f} µs a row for a 1,000-row batch "
            f"(validation on the event loop, the commit on a worker): about "
            f"{1e6 / (write / 1000):,.0f} rows/s for one batch in flight at a time."
        )
    built = pieces.get("250-record answer: built as messages, then serialized")
    joined = pieces.get("250-record answer: joined from records serialized once")
    if built and joined:
        notes.append(
            f"A 250-record answer built as messages costs {built:.0f} µs; joined from records "
            f"serialized once, {joined:.0f} µs."
        )
    return notes


def main() -> None:
    pieces, errors = asyncio.run(run())
    for name, us in pieces.items():
        sys.stdout.write(f"{us:10.1f} µs  {name}\n")
    for error in errors:
        sys.stdout.write(f"left out: {error}\n")


if __name__ == "__main__":
    main()
