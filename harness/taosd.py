"""``taosd`` of a TDengine bundle (a folder with ``tdengine-start``, ``tdengine-stop`` and
``lib/``, as ``../shared/tdengine``), and three of them as one cluster.

A node is started on a folder and port of its own, and stopped, killed and started again
on them while mdcache runs against it (the tests' faults, the benchmark's failover).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from harness.poll import wait_until
from harness.ports import free_port

USER, PASSWORD = "root", "taosdata"  # the bundle's defaults


class Taosd:
    """``tdengine-start`` on a folder and port; stopped, killed and started again on them."""

    def __init__(self, home: Path, folder: Path, port: int | None = None, extra_cfg: str = ""):
        self.home = home
        self.folder = folder
        self.port = port or free_port()
        self.extra_cfg = extra_cfg  # "name value" lines for taos.cfg (tdengine-start)
        self.pid = 0

    @property
    def endpoint(self) -> str:
        return f"localhost:{self.port}"

    def url(self, database: str = "mdcache") -> str:
        return f"taos://{USER}:{PASSWORD}@{self.endpoint}/{database}"

    def start(self, timeout: float = 180) -> None:
        """Starts taosd and returns once it answers (tdengine-start waits for it)."""
        subprocess.run(
            [str(self.home / "tdengine-start"), str(self.folder), str(self.port)],
            check=True,
            capture_output=True,
            timeout=timeout,
            env={**os.environ, "TDENGINE_EXTRA_CFG": self.extra_cfg},
        )
        self.pid = int((self.folder / "taosd.pid").read_text())

    def kill(self, sig: int = signal.SIGKILL) -> float:
        """Sends ``sig`` and waits until the process is gone; the monotonic time it was sent."""
        os.kill(self.pid, sig)
        sent = time.monotonic()
        wait_until(lambda: not self.alive(), 60, f"taosd {self.pid} gone")
        (self.folder / "taosd.pid").unlink(missing_ok=True)
        return sent

    def alive(self) -> bool:
        """Whether taosd runs (a zombie that nobody reaped yet does not)."""
        if not self.pid:
            return False
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, IndexError):
            return False
        return state not in ("Z", "X")

    def stop(self, timeout: float = 120) -> None:
        """Stops taosd if it runs (SIGTERM, as tdengine-stop does)."""
        subprocess.run(
            [str(self.home / "tdengine-stop"), str(self.folder)],
            check=False,
            capture_output=True,
            timeout=timeout,
        )

    def discard(self) -> None:
        """Ends taosd at once (SIGKILL) when its data is thrown away anyway (a test's end)."""
        if self.pid and self.alive():
            self.kill(signal.SIGKILL)

    def query(self, statement: str) -> list[tuple[Any, ...]]:
        """``statement``'s rows, through taospy on a connection of its own."""
        import taos

        conn = taos.connect(host="localhost", port=self.port, user=USER, password=PASSWORD)
        try:
            return list(conn.query(statement).fetch_all())
        finally:
            conn.close()


class Cluster:
    """Three taosd on one machine, one cluster (the bundle README's recipe): the second and
    third join the first, and each runs an mnode, so that any one of them may die."""

    def __init__(self, home: Path, folder: Path) -> None:
        first = Taosd(home, folder / "dnode1")
        self.nodes = [first] + [
            Taosd(home, folder / f"dnode{n}", extra_cfg=f"firstEp {first.endpoint}") for n in (2, 3)
        ]

    @property
    def endpoints(self) -> str:
        return ",".join(node.endpoint for node in self.nodes)

    @property
    def base(self) -> str:
        """``taos://user:password@`` every endpoint (the benchmark adds ``/database``)."""
        return f"taos://{USER}:{PASSWORD}@{self.endpoints}"

    def url(self, database: str, **options: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"{self.base}/{database}" + (f"?{query}" if query else "")

    def query(self, statement: str) -> list[tuple[Any, ...]]:
        """``statement``'s rows through the first live node that answers."""
        for node in self.nodes:
            if not node.alive():
                continue
            try:
                return node.query(statement)
            except Exception:  # noqa: BLE001, S112 (that node is going down: the next)
                continue
        raise AssertionError("no node of the cluster answers")

    def _wait(self, what: str, check: Any, seconds: float = 120) -> None:
        wait_until(check, seconds, f"cluster: {what}", interval=0.5, tolerate=(Exception,))

    def _ready(self, table: str) -> int:
        rows = self.query(f"SELECT status FROM information_schema.{table}")  # noqa: S608
        return sum(1 for (status,) in rows if status == "ready")

    def _whole(self) -> None:
        self._wait("3 dnodes ready", lambda: self._ready("ins_dnodes") == 3)
        self._wait("3 mnodes ready", lambda: self._ready("ins_mnodes") == 3)

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        for node in self.nodes[1:]:
            self.query(f'CREATE DNODE "{node.endpoint}"')
        self._wait("3 dnodes ready", lambda: self._ready("ins_dnodes") == 3)
        for dnode in (2, 3):
            self._wait(
                f"an mnode on dnode {dnode}",
                lambda dnode=dnode: self.query(f"CREATE MNODE ON DNODE {dnode}") is not None,
            )
        self._wait("3 mnodes ready", lambda: self._ready("ins_mnodes") == 3)

    def whole(self) -> None:
        """Starts any node that is down, and waits until every dnode and mnode is ready."""
        for node in self.nodes:
            if not node.alive():
                node.start()
        self._whole()

    def kill(self, n: int) -> float:
        """SIGKILL of node ``n`` (0-based); the monotonic time of the signal."""
        return self.nodes[n].kill(signal.SIGKILL)

    def restart(self, n: int) -> None:
        """Node ``n`` started again on its folder; returns once the cluster is whole."""
        self.nodes[n].start()
        self._whole()

    def stop(self) -> None:
        """Every node stopped (SIGTERM, as tdengine-stop does)."""
        for node in self.nodes:
            node.stop()

    def discard(self) -> None:
        """Every node ended at once, when the data is thrown away anyway (a test's end)."""
        for node in self.nodes:
            node.discard()
