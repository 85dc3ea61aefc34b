"""``mdcache verify``: checks a deployment end to end and says what is wrong.

The checks, in order (a check whose prerequisite failed is skipped):

- ``store``: the store URL opens, a connection is made, the store answers its version;
- ``schema``: the database and its tables answer (counts and the series listing);
- ``server``: something answers gRPC at the target;
- ``health``: the standard gRPC health service says SERVING;
- ``reflection``: server reflection lists ``mdcache.v1.MarketDataCache``;
- ``canary``: a record of the reserved symbol ``__mdcache_canary__`` is written, read
  back, and purged (by symbol), and is gone afterwards;
- ``server_store``: the canary written through the server was in the store checked here,
  so the server and this command look at the same store;
- ``retention``: the retention rules the server applies, from its Stats.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from mdcache.v1 import cache_pb2 as pb
from mdcache_client import (
    Client,
    PermissionDeniedError,
    Record,
    Series,
    UnauthenticatedError,
)
from mdcache_server.config import SQLITE_FILE, Config, described, setting
from mdcache_server.errors import ConfigError
from mdcache_server.model import SeriesKey, Window
from mdcache_server.ops.command import (
    Command,
    UsageError,
    add_connection,
    add_json,
    connect,
    target,
)
from mdcache_server.ops.units import count, elapsed, retention
from mdcache_server.store.base import StoreConnection
from mdcache_server.store.sqlite import SqliteStore
from mdcache_server.store.url import open_store

SERVICE = pb.DESCRIPTOR.services_by_name["MarketDataCache"].full_name
CANARY = Series("__mdcache_canary__", "kline", "1m")

HINTS = {
    "store": "check --store / MDCACHE_STORE_URL (or --data-dir / MDCACHE_DATA_DIR), and that "
    "the store is running and reachable from here with these credentials",
    "schema": "the database or its tables are missing or unreadable: start `mdcache serve` on "
    "this store once (it creates them), and check the user may read them",
    "server": "start `mdcache serve`, or point --target / MDCACHE_TARGET at the server's "
    "host:port (its --listen)",
    "health": "the server cannot reach its store (its log says store_probe_failed), or it is "
    "shutting down",
    "reflection": "is an mdcache server listening at the target, and not another gRPC service?",
    "canary": "the server cannot write, read or purge: see the server's log for this call",
    "server_store": "the server uses another store than the one checked here: give the "
    "server's store URL with --store / MDCACHE_STORE_URL",
    "retention": "the server does not answer Stats: see the server's log",
}


AUTH_HINT = "the server requires a token with the write role: --token / MDCACHE_TOKEN"


class CheckFailed(Exception):
    """A check found something wrong; ``hint`` replaces the check's usual hint."""

    def __init__(self, detail: str, hint: str | None = None) -> None:
        super().__init__(detail)
        self.hint = hint


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # "ok", "fail" or "skip"
    detail: str
    hint: str
    seconds: float


def redact(url: str) -> str:
    """The URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


class Verifier:
    """Runs the checks in order, timing each; see the module docstring."""

    def __init__(self, client: Client, target: str, store_url: str, timeout: float) -> None:
        self.client = client
        self.target = target
        self.store_url = store_url
        self.timeout = timeout
        self.checks: list[Check] = []
        self._conn: StoreConnection | None = None
        self._canary_in_store: bool | None = None

    def _status(self, name: str) -> str | None:
        return next((c.status for c in self.checks if c.name == name), None)

    def step(self, name: str, check: Callable[[], str], *, needs: tuple[str, ...] = ()) -> None:
        missing = [n for n in needs if self._status(n) != "ok"]
        if missing:
            self.checks.append(Check(name, "skip", f"needs {', '.join(missing)}", "", 0.0))
            return
        started = time.perf_counter()
        status, hint = "ok", ""
        try:
            detail = check()
        except CheckFailed as exc:
            status, detail, hint = "fail", str(exc), exc.hint or HINTS[name]
        except (UnauthenticatedError, PermissionDeniedError) as exc:
            status, detail, hint = "fail", str(exc), AUTH_HINT
        except Exception as exc:  # noqa: BLE001 (a check reports whatever went wrong)
            status, detail, hint = "fail", f"{type(exc).__name__}: {exc}", HINTS[name]
        self.checks.append(Check(name, status, detail, hint, time.perf_counter() - started))

    def run(self) -> list[Check]:
        try:
            self.step("store", self.check_store)
            self.step("schema", self.check_schema, needs=("store",))
            channel, client = self.client.channel, self.client
            self.step("server", lambda: self.check_server(channel))
            self.step("health", lambda: self.check_health(channel), needs=("server",))
            self.step("reflection", lambda: self.check_reflection(channel), needs=("server",))
            self.step("canary", lambda: self.check_canary(client), needs=("server",))
            self.step("server_store", self.check_server_store, needs=("schema", "canary"))
            self.step("retention", lambda: self.check_retention(client), needs=("server",))
        finally:
            if self._conn is not None:
                self._conn.close()
        return self.checks

    def check_store(self) -> str:
        store = open_store(self.store_url)
        if isinstance(store, SqliteStore) and not store.path.is_file():
            # Opening it would create an empty database: say so instead.
            raise CheckFailed(
                f"no SQLite database file at {store.path}",
                "the server creates it when it starts: give the server's --store / "
                "MDCACHE_STORE_URL or --data-dir / MDCACHE_DATA_DIR (run verify with its "
                "environment)",
            )
        self._conn = store.connect()
        return f"{store.name} {self._conn.server_version()}"

    def check_schema(self) -> str:
        assert self._conn is not None
        counts = self._conn.counts()
        listed = self._conn.list_series()
        return (
            f"{count(counts.records)} records in {count(counts.series)} series of "
            f"{count(counts.symbols)} symbols ({count(len(listed))} series listed)"
        )

    def check_server(self, channel: grpc.Channel) -> str:
        try:
            grpc.channel_ready_future(channel).result(timeout=self.timeout)
        except grpc.FutureTimeoutError:
            raise CheckFailed(
                f"nothing answers gRPC at {self.target} within {self.timeout:g} s"
            ) from None
        return f"{self.target} answers"

    def check_health(self, channel: grpc.Channel) -> str:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=self.timeout)
        status = str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise CheckFailed(f"{SERVICE} is {status}")
        return status

    def check_reflection(self, channel: grpc.Channel) -> str:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        replies = stub.ServerReflectionInfo(iter([request]), timeout=self.timeout)
        names = sorted(s.name for s in next(replies).list_services_response.service)
        if SERVICE not in names:
            raise CheckFailed(f"reflection lists {', '.join(names) or 'no service'}")
        return f"lists {SERVICE}"

    def check_canary(self, client: Client) -> str:
        ts = time.time_ns() // 1_000_000
        record = Record.of(ts, {"canary": secrets.token_hex(8)})
        client.write(CANARY, [record])
        try:
            found = client.read(CANARY, start_ms=ts, end_ms=ts)
            if [r.payload for r in found.records] != [record.payload]:
                raise CheckFailed(f"wrote {record.payload} at {ts}, read back {found.records}")
            if self._conn is not None:
                key = SeriesKey(*CANARY)
                stored = self._conn.read([key], Window(start_ms=ts, end_ms=ts))[0]
                self._canary_in_store = [r.payload for r in stored.records] == [record.payload]
        finally:
            deleted = client.purge(before_ms=ts + 1, symbol=CANARY.symbol)
        if deleted < 1:
            raise CheckFailed(f"the purge of {CANARY.symbol} deleted {deleted} records")
        after = client.read(CANARY, start_ms=ts, end_ms=ts)
        if after.hit:
            raise CheckFailed("the canary can still be read after its purge")
        return f"wrote, read back and purged {'/'.join(CANARY)} ({deleted} deleted)"

    def check_server_store(self) -> str:
        if not self._canary_in_store:
            raise CheckFailed(
                f"the canary written through {self.target} is not in {redact(self.store_url)}"
            )
        return "the canary written through the server was in the store checked"

    def check_retention(self, client: Client) -> str:
        stats = client.stats(top_n=1)
        return f"{retention(stats.retention)} (server's store: {stats.store} {stats.store_version})"


def report_text(target: str, store_url: str, checks: list[Check], seconds: float) -> str:
    lines = [f"mdcache verify: server {target}, store {redact(store_url)}", ""]
    for c in checks:
        shown = "FAIL" if c.status == "fail" else c.status
        lines.append(f"  {shown:<4}  {c.name:<12}  {elapsed(c.seconds):>8}  {c.detail}")
        if c.hint:
            lines.append(f"  {'':<4}  {'':<12}  {'':>8}  hint: {c.hint}")
    failed = [c.name for c in checks if c.status == "fail"]
    lines.append("")
    if failed:
        lines.append(f"FAILED: {', '.join(failed)} ({len(failed)} of {len(checks)} checks)")
    else:
        lines.append(f"all {len(checks)} checks passed in {elapsed(seconds)}")
    return "\n".join(lines) + "\n"


def report_json(target: str, store_url: str, checks: list[Check], seconds: float) -> str:
    report: dict[str, Any] = {
        "ok": all(c.status != "fail" for c in checks),
        "failed": [c.name for c in checks if c.status == "fail"],
        "target": target,
        "store": redact(store_url),
        "seconds": seconds,
        "checks": [asdict(c) for c in checks],
    }
    return json.dumps(report, ensure_ascii=False) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection(parser)
    store, data_dir = setting("store_url"), setting("data_dir")  # the server's own
    parser.add_argument(
        store.flag,
        dest=store.name,
        default=None,
        metavar="URL",
        help=f"the server's store [env {store.env}, default sqlite:///<data dir>/{SQLITE_FILE}]",
    )
    parser.add_argument(data_dir.flag, type=Path, default=None, help=described(data_dir))
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds each check may take (default 5)"
    )
    add_json(parser)


def run(args: argparse.Namespace, environ: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    server = target(args, environ)
    try:
        config = Config.load({"store_url": args.store_url, "data_dir": args.data_dir}, environ)
    except ConfigError as exc:
        raise UsageError(f"configuration error: {exc}") from None
    started = time.perf_counter()
    with connect(args, environ, timeout=args.timeout) as client:
        checks = Verifier(client, server, config.store_url, args.timeout).run()
    seconds = time.perf_counter() - started
    render = report_json if args.json else report_text
    out.write(render(server, config.store_url, checks, seconds))
    return 1 if any(c.status == "fail" for c in checks) else 0


VERIFY_HELP = """\
Check a deployment end to end, timing each check, and say what is wrong:

  store         the store URL opens and the store answers its version
  schema        the database and its tables answer (counts, series listing)
  server        something answers gRPC at --target
  health        gRPC health says SERVING
  reflection    server reflection lists mdcache.v1.MarketDataCache
  canary        a record of __mdcache_canary__ is written, read back and purged
  server_store  the canary written through the server was in --store
  retention     the retention rules the server applies

Exit status 0 when every check passes, 1 when any fails (each named, with a hint),
2 on a bad configuration.
"""


COMMAND = Command(
    name="verify",
    help="check a deployment end to end and say what is wrong",
    description=VERIFY_HELP,
    add_arguments=add_arguments,
    run=run,
)
