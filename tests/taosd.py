"""A taosd of a test's own, from the TDengine bundle that scripts/with-tdengine found, to stop,
kill and restart on its folder while mdcache runs against it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

HOME = os.environ.get("MDCACHE_TEST_TDENGINE_HOME", "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Taosd:
    """``tdengine-start`` on a folder and port; stopped, killed and started again on them."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        if not HOME:
            pytest.skip(
                "MDCACHE_TEST_TDENGINE_HOME is not set (a TDengine bundle with tdengine-start; "
                "scripts/with-tdengine sets it): no taosd of the test's own"
            )
        self.home = Path(HOME)
        self.folder = folder
        self.port = port or free_port()
        self.pid = 0

    def url(self, database: str = "mdcache") -> str:
        return f"taos://root:taosdata@localhost:{self.port}/{database}"

    def start(self) -> None:
        """Starts taosd and returns once it answers (tdengine-start waits for it)."""
        subprocess.run(
            [str(self.home / "tdengine-start"), str(self.folder), str(self.port)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.pid = int((self.folder / "taosd.pid").read_text())

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Sends ``sig`` and waits until the process is gone."""
        os.kill(self.pid, sig)
        deadline = time.monotonic() + 60
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        (self.folder / "taosd.pid").unlink(missing_ok=True)

    def alive(self) -> bool:
        """Whether taosd runs (a zombie that nobody reaped yet does not)."""
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, IndexError):
            return False
        return state not in ("Z", "X")

    def stop(self) -> None:
        """Stops taosd if it runs (SIGTERM, as tdengine-stop does)."""
        subprocess.run(
            [str(self.home / "tdengine-stop"), str(self.folder)],
            check=False,
            capture_output=True,
            timeout=90,
        )
