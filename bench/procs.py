"""The processes a run talks to: mdcache, the bare gRPC floor and redis-server.

Each one is its own process on a loopback port, so that the load generator (this
process) and the server under test never share an interpreter or a GIL. Standard error
goes to a log file in the run's work directory, never to a pipe that could fill up.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class ProcessError(RuntimeError):
    """A process of the run did not start; the message has the end of its log."""


def free_port() -> int:
    """A loopback port free right now (for the processes that cannot report their own)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Process:
    """A child process with its standard error in ``log``; stopped by SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None):
        self.name = name
        self.log = log
        self._log_file = log.open("w")
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=self._log_file,
            env=env,
            cwd=REPO,
        )
        self.port = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise ProcessError(
                f"{self.name} exited with {self.proc.returncode}:\n{_tail(self.log)}"
            )

    def wait_log_event(self, name: str, timeout: float) -> dict[str, Any]:
        """The first JSON log line whose ``event`` is ``name``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            for line in self.log.read_text(errors="replace").splitlines():
                if f'"{name}"' not in line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") == name:
                    return dict(event)
            time.sleep(0.05)
        self.stop()
        raise ProcessError(f"{self.name}: no {name!r} in {timeout:g} s:\n{_tail(self.log)}")

    def wait_port(self, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    self.port = port
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise ProcessError(f"{self.name}: port {port} not open in {timeout:g} s")

    def stop(self, timeout: float = 30) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log_file.close()


def _clean_env() -> dict[str, str]:
    """This environment without MDCACHE_ settings, so that only the run's flags count."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MDCACHE_")}


def mdcache(name: str, workdir: Path, *args: str, store: str | None = None) -> Process:
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
        sys.executable,
        "-m",
        "mdcache_server",
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
    proc = Process(name, argv, workdir / f"{name}.log", env=_clean_env())
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
