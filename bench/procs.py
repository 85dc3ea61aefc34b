"""The processes a run talks to: mdcache, the bare gRPC floor and redis-server.

Each one is its own process on a loopback port, so that the load generator (this
process) and the server under test never share an interpreter or a GIL. Standard error
goes to a log file in the run's work directory, never to a pipe that could fill up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.ports import free_port
from harness.process import MDCACHE, LogProcess, ProcessError, clean_env

__all__ = ["REPO", "Process", "ProcessError", "floor", "free_port", "mdcache", "redis", "tdceiling"]

REPO = Path(__file__).resolve().parents[1]


class Process(LogProcess):
    """A process of the run, in the checkout, with its standard error in ``log``."""

    metrics_port = 0  # its /metrics, when started with them

    def __init__(
        self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None
    ) -> None:
        super().__init__(name, argv, log, env=env, cwd=REPO)

    def wait_log_event(self, name: str, timeout: float) -> dict[str, Any]:
        """The first JSON log line whose ``event`` is ``name``; stopped if there is none."""
        try:
            return self.wait_event(name, timeout)
        except ProcessError:
            self.stop()
            raise

    def wait_port(self, port: int, timeout: float) -> None:
        try:
            super().wait_port(port, timeout)
        except ProcessError:
            self.stop()
            raise


def store_calls(proc: Process) -> dict[str, float]:
    """Store calls by kind so far (``mdcache_store_calls_total``), from the server's
    ``/metrics`` (a server started with ``metrics=True``); with the change feed's marks."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://127.0.0.1:{proc.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "mdcache_store_calls_total":
                found[sample.labels["kind"]] = sample.value
            elif sample.name == "mdcache_feed_marks":
                found["feed marks"] = sample.value
    return found


def mdcache(
    name: str, workdir: Path, *args: str, store: str | None = None, metrics: bool = False
) -> Process:
    """``mdcache serve`` on a free loopback port with its own data directory.

    Logs at the default level (errors and slow calls), as a deployment would run it;
    with a ``--log-level`` above info it has no ``serving`` event to tell its port by, so
    it is given a free port and waited for until that port answers.
    """
    quiet = "--log-level" in args
    port = free_port() if quiet else 0
    data_dir = workdir / f"{name}-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        *MDCACHE,
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--log-format",
        "json",
        "--data-dir",
        str(data_dir),
        "--warm-seconds",
        "0",
        *(["--store", store] if store is not None else []),
        *args,
    ]
    metrics_port = free_port() if metrics else 0
    if metrics:
        argv += ["--metrics-listen", f"127.0.0.1:{metrics_port}"]
    proc = Process(name, argv, workdir / f"{name}.log", env=clean_env())
    proc.metrics_port = metrics_port
    if quiet:
        proc.wait_port(port, timeout=120)
    else:
        proc.port = int(proc.wait_log_event("serving", timeout=120)["port"])
    return proc


def floor(name: str, workdir: Path, responses: Path, *args: str) -> Process:
    """The bare grpc.aio server (``bench.floor``), answering the pre-built responses."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.floor", "--port", str(port), "--responses", str(responses)]
    argv += args
    proc = Process(name, argv, workdir / f"{name}.log")
    proc.wait_port(port, timeout=30)
    return proc


def tdceiling(name: str, workdir: Path, responses: Path, base: str, db: str) -> Process:
    """The gRPC floor doing TDengine alone's work (``bench.tdceiling``), on database ``db``."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.tdceiling", "--port", str(port)]
    argv += ["--responses", str(responses), "--tdengine", base, "--db", db]
    proc = Process(name, argv, workdir / f"{name}.log")
    proc.wait_port(port, timeout=60)
    return proc


def redis_binary() -> str | None:
    return shutil.which("redis-server")


def redis(name: str, workdir: Path) -> Process:
    """redis-server on a free loopback port, nothing persisted (no RDB, no AOF)."""
    binary = redis_binary()
    if binary is None:
        raise ProcessError("redis-server is not installed (apt-get install -y redis-server)")
    port = free_port()
    argv = [
        binary,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--protected-mode",
        "yes",
        "--logfile",
        "",
    ]
    proc = Process(name, argv, workdir / f"{name}.log")
    proc.wait_port(port, timeout=30)
    return proc


def server_code() -> str:
    """Which server code is measured: its commit, and whether the tree differs from it."""
    import mdcache_server  # the one on sys.path: PYTHONPATH may point at another tree

    given = os.environ.get("MDCACHE_BENCH_CODE")
    if given:
        return given
    source = Path(mdcache_server.__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--", ".", "../../../client/src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"{source} (not a git work tree)"
    return f"{commit}" + (" with uncommitted changes to the server or client" if changed else "")
