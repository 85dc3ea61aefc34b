"""A child process whose standard error is a log of JSON events (one a line), waited on.

Standard error goes either to a log file (the benchmark's: no thread of the load
generator reads it while it measures; the file is read when asked, from where the last
read ended), or to a pipe drained by a thread (the tests': a server under a file-size
limit, as in the full-disk test, must still be able to log). The tests and the benchmark
both start ``mdcache serve`` this way and wait for its ``serving`` event to learn its port.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

MDCACHE = [sys.executable, "-m", "mdcache_server"]


class ProcessError(AssertionError):
    """A process did not do what was waited for; the message has the end of its log."""


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without MDCACHE_ settings (only the given flags and ``extra`` count)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MDCACHE_")}
    environ.update(extra or {})
    return environ


class LogProcess:
    """A child process with its standard error in ``log`` (a file), or without one in a
    pipe that a thread drains; ``events`` are its JSON log lines, ``lines`` all of them."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log = log
        self._file: IO[bytes] | None = log.open("w+b") if log else None
        self.proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.DEVNULL,
            stderr=self._file if self._file else subprocess.PIPE,
            env=env,
            cwd=cwd,
        )
        self.port = 0
        self._lines: list[str] = []
        self._events: list[dict[str, Any]] = []
        self._offset = 0
        self._partial = b""
        self._reader: threading.Thread | None = None
        if self._file is None:
            self._reader = threading.Thread(target=self._drain, daemon=True)
            self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _take(self, raw: bytes) -> None:
        line = raw.decode(errors="replace").rstrip("\n") + "\n"
        self._lines.append(line)
        try:
            event = json.loads(line)
        except ValueError:
            return
        if isinstance(event, dict):
            self._events.append(event)
            if event.get("event") == "serving" and not self.port:
                self.port = int(event["port"])

    def _drain(self) -> None:
        """The pipe's reader: every line as it comes, until every writer closed it."""
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self._take(raw)

    def _read(self) -> None:
        """Takes in what the process wrote to its log file since the last read."""
        if self._file is None or self._file.closed:
            return
        while chunk := os.pread(self._file.fileno(), 1 << 20, self._offset):
            self._offset += len(chunk)
            *whole, self._partial = (self._partial + chunk).split(b"\n")
            for raw in whole:
                self._take(raw)

    @property
    def lines(self) -> list[str]:
        """Every whole line written so far (each with its newline)."""
        self._read()
        return self._lines

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every JSON log event written so far, in order."""
        self._read()
        return self._events

    def tail(self, lines: int = 20) -> str:
        return "".join(self.lines[-lines:]) or "(no log)"

    def wait_event(self, name: str, timeout: float = 10) -> dict[str, Any]:
        """The first log event whose ``event`` is ``name``, waited for up to ``timeout`` s
        (and no more than a second after the process ended)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            events = self.events
            for event in events[seen:]:
                if event.get("event") == name:
                    return event
            seen = len(events)
            now = time.monotonic()
            if self.proc.poll() is not None:
                deadline = min(deadline, now + 1)  # its children's last lines
            if now > deadline:
                ended = self.proc.poll()
                how = f"exited with {ended}" if ended is not None else f"in {timeout:g} s"
                raise ProcessError(f"{self.name}: no {name!r} event ({how}):\n{self.tail()}")
            time.sleep(0.02)

    def wait_port(self, port: int, timeout: float) -> None:
        """Waits until ``port`` on loopback takes connections (for a process with no log
        event to tell its port by), and takes it as this process's port."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ProcessError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    self.port = port
                    return
            except OSError:
                if time.monotonic() > deadline:
                    why = f"{self.name}: port {port} not open in {timeout:g} s"
                    raise ProcessError(why) from None
                time.sleep(0.05)

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Signals the process and waits for it to end, and for its last log lines."""
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)  # the pipe ends once children are gone too
        return code

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` s; the log taken in and closed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.close()

    def kill(self) -> None:
        """Ends the process at once if it still runs; the log taken in and closed."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.close()

    def close(self) -> None:
        """The log taken in and closed (the process ended)."""
        if self._reader is not None:
            self._reader.join(10)
            if self.proc.stderr is not None:
                self.proc.stderr.close()
        if self._file is not None:
            self._read()
            self._file.close()


class ServerProcess(LogProcess):
    """``mdcache serve --listen 127.0.0.1:0 --log-format json`` with the given flags, in
    this environment without its MDCACHE_ settings (plus ``env``)."""

    def __init__(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
        name: str = "mdcache serve",
        cwd: Path | None = None,
    ) -> None:
        argv = [*MDCACHE, "serve", "--listen", "127.0.0.1:0", "--log-format", "json", *args]
        super().__init__(name, argv, log, clean_env(env), cwd)

    def wait_serving(self, timeout: float = 20) -> int:
        """Waits until the server serves and its start-up retention run has ended: that run
        lists the series beside the first calls, and would purge a test's records of 2023
        written meanwhile (older than the default rules keep). Killed if it does not."""
        deadline = time.monotonic() + timeout
        try:
            self.wait_event("serving", timeout)
            settle_by = max(deadline, time.monotonic() + 1.0)
            while not any(
                e.get("event") == "retention_applied" or e.get("job") == "retention"
                for e in self.events
            ):  # the start-up run ended (applied, or failed)
                if time.monotonic() > settle_by:
                    raise ProcessError(f"{self.name}: no start-up retention run:\n{self.tail()}")
                time.sleep(0.02)
        except ProcessError:
            self.kill()
            raise
        return self.port
