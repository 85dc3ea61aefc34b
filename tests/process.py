"""A real ``mdcache serve`` process on a free port, for tests of the process as a whole."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MDCACHE = [sys.executable, "-m", "mdcache_server"]


class ServerProcess:
    """Starts ``mdcache serve`` and collects its JSON log events from standard error."""

    def __init__(self, *args: str, env: Mapping[str, str] | None = None) -> None:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("MDCACHE_")}
        environ.update(env or {})
        self.proc = subprocess.Popen(
            [*MDCACHE, "serve", "--listen", "127.0.0.1:0", "--log-format", "json", *args],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            env=environ,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self._serving = threading.Event()
        self._settled = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = 0

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self.events.append(event)
            if event.get("event") == "serving":
                self.port = int(event["port"])
                self._serving.set()
            if event.get("event") == "retention_applied" or event.get("job") == "retention":
                self._settled.set()  # the start-up run ended (applied, or failed)

    def wait_serving(self, timeout: float = 20) -> int:
        """Waits until the server serves and its start-up retention run has ended: that run
        lists the series beside the first calls, and would purge a test's records of 2023
        written meanwhile (older than the default rules keep)."""
        deadline = time.monotonic() + timeout
        if not self._serving.wait(timeout):
            self.kill()
            raise AssertionError("server did not start:\n" + "".join(self.lines))
        if not self._settled.wait(max(deadline - time.monotonic(), 1.0)):
            self.kill()
            raise AssertionError("no start-up retention run:\n" + "".join(self.lines))
        return self.port

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Signals the server and waits for it to end, and for its last log lines."""
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._reader.join(timeout)  # standard error ends once children are gone too
        return code

    def kill(self) -> None:
        """Ends the process if it still runs, and releases its pipe."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def wait_event(self, name: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in list(self.events):
                if event.get("event") == name:
                    return event
            time.sleep(0.02)
        raise AssertionError(f"no {name!r} event in:\n" + "".join(self.lines))


def data_dir_args(path: Path) -> list[str]:
    return ["--data-dir", str(path)]
