"""A taosd of a test's own, from the TDengine bundle that scripts/with-tdengine found, to stop,
kill and restart on its folder while mdcache runs against it."""

from __future__ import annotations

import contextlib
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

    def __init__(self, folder: Path, port: int | None = None, extra_cfg: str = "") -> None:
        if not HOME:
            pytest.skip(
                "MDCACHE_TEST_TDENGINE_HOME is not set (a TDengine bundle with tdengine-start; "
                "scripts/with-tdengine sets it): no taosd of the test's own"
            )
        self.home = Path(HOME)
        self.folder = folder
        self.port = port or free_port()
        self.extra_cfg = extra_cfg  # "name value" lines for taos.cfg (tdengine-start)
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
            env={**os.environ, "TDENGINE_EXTRA_CFG": self.extra_cfg},
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

    def discard(self) -> None:
        """Ends taosd at once (SIGKILL) when its data is thrown away anyway (a test's end)."""
        if self.pid and self.alive():
            self.kill(signal.SIGKILL)


class Cluster:
    """Three taosd on one machine, one cluster (the bundle README's recipe): the second and
    third join the first, and each runs an mnode, so that any one of them may die."""

    def __init__(self, folder: Path) -> None:
        first = Taosd(folder / "dnode1")
        self.nodes = [first] + [
            Taosd(folder / f"dnode{n}", extra_cfg=f"firstEp localhost:{first.port}") for n in (2, 3)
        ]

    @property
    def endpoints(self) -> str:
        return ",".join(f"localhost:{node.port}" for node in self.nodes)

    def url(self, database: str, **options: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"taos://root:taosdata@{self.endpoints}/{database}" + (f"?{query}" if query else "")

    def _query(self, statement: str) -> list[tuple[object, ...]]:
        import taos

        for node in self.nodes:  # through any live node
            if not node.alive():
                continue
            conn = taos.connect(host="localhost", port=node.port, user="root", password="taosdata")
            try:
                return list(conn.query(statement).fetch_all())
            finally:
                conn.close()
        raise AssertionError("no node of the cluster runs")

    def _wait(self, what: str, check: object, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while True:
            with contextlib.suppress(Exception):  # a node starting: ask again
                if check():  # type: ignore[operator]
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"cluster: {what} not within {seconds:g} s")
            time.sleep(0.5)

    def _ready(self, table: str) -> int:
        rows = self._query(f"SELECT status FROM information_schema.{table}")  # noqa: S608
        return sum(1 for (status,) in rows if status == "ready")

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        for node in self.nodes[1:]:
            self._query(f'CREATE DNODE "localhost:{node.port}"')
        self._wait("3 dnodes ready", lambda: self._ready("ins_dnodes") == 3)
        for dnode in (2, 3):
            self._wait(
                f"an mnode on dnode {dnode}",
                lambda dnode=dnode: self._query(f"CREATE MNODE ON DNODE {dnode}") is not None,
            )
        self._wait("3 mnodes ready", lambda: self._ready("ins_mnodes") == 3)

    def whole(self) -> None:
        """Starts any node that is down, and waits until every dnode and mnode is ready."""
        for node in self.nodes:
            if not node.alive():
                node.start()
        self._wait("3 dnodes ready", lambda: self._ready("ins_dnodes") == 3)
        self._wait("3 mnodes ready", lambda: self._ready("ins_mnodes") == 3)

    def discard(self) -> None:
        for node in self.nodes:
            node.discard()
