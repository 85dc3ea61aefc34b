"""The TDengine server the benchmark measures: ``--tdengine-url``, or one started here.

Without a URL, a ``taosd`` of the TDengine bundle (``MDCACHE_TDENGINE_HOME``, by default
``../shared/tdengine`` beside the checkout) is started on a free port with a fresh data
folder in the work directory, and stopped at the end. Each server of the benchmark gets a
database of its own on it, created by mdcache with its defaults (``PRECISION 'ms'``,
``WAL_LEVEL 2 WAL_FSYNC_PERIOD 0``: every acknowledged write fsynced).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.procs import free_port

DEFAULT_HOME = Path(__file__).resolve().parents[2] / "shared" / "tdengine"


def home() -> Path:
    return Path(os.environ.get("MDCACHE_TDENGINE_HOME", DEFAULT_HOME))


def available(url: str | None) -> str | None:
    """Why TDengine cannot be measured, or None when it can."""
    if url:
        return None
    if not (home() / "tdengine-start").is_file():
        return (
            f"no TDengine bundle at {home()} (set MDCACHE_TDENGINE_HOME, or give "
            "--tdengine-url taos://user:password@host:6030/db of a 3.x server)"
        )
    return None


@contextmanager
def server(workdir: Path, url: str | None) -> Iterator[str]:
    """The base URL (``taos://user:password@host:port``) of a running TDengine server."""
    if url:
        parts = urlsplit(url)
        yield f"{parts.scheme}://{parts.netloc}"
        return
    bundle = home()
    folder = workdir / "taosd"
    port = free_port()
    lib = str(bundle / "lib")
    os.environ["LD_LIBRARY_PATH"] = lib + (
        ":" + os.environ["LD_LIBRARY_PATH"] if os.environ.get("LD_LIBRARY_PATH") else ""
    )
    subprocess.run(
        [str(bundle / "tdengine-start"), str(folder), str(port)],
        check=True,
        capture_output=True,
        timeout=180,
    )
    try:
        yield f"taos://root:taosdata@localhost:{port}"
    finally:
        subprocess.run(
            [str(bundle / "tdengine-stop"), str(folder)],
            check=False,
            capture_output=True,
            timeout=120,
        )


def connect(base: str) -> Any:
    """taospy connected to the first endpoint of a base URL (``taos://user:password@host:port``)."""
    import taos

    parts = urlsplit(base.split(",")[0])
    return taos.connect(
        host=parts.hostname,
        port=parts.port or 6030,
        user=parts.username or "root",
        password=parts.password or "taosdata",
    )


def version(base: str) -> str:
    """The server's version, through taospy."""
    conn = connect(base)
    try:
        return str(conn.query("SELECT SERVER_VERSION()").fetch_all()[0][0])
    finally:
        conn.close()


def _connect(port: int) -> object:
    import taos

    return taos.connect(host="localhost", port=port, user="root", password="taosdata")  # noqa: S106 (the bundle's default)


class Cluster:
    """Three taosd of the bundle on one machine, one cluster with an mnode on each node."""

    def __init__(self, workdir: Path) -> None:
        self.home = home()
        self.folders = [workdir / f"dnode{n}" for n in (1, 2, 3)]
        self.ports = [free_port() for _ in self.folders]
        self.base = "taos://root:taosdata@" + ",".join(f"localhost:{p}" for p in self.ports)

    def _start(self, n: int) -> None:
        extra = "" if n == 0 else f"firstEp localhost:{self.ports[0]}"
        subprocess.run(
            [str(self.home / "tdengine-start"), str(self.folders[n]), str(self.ports[n])],
            check=True,
            capture_output=True,
            timeout=180,
            env={**os.environ, "TDENGINE_EXTRA_CFG": extra},
        )

    def _query(self, statement: str) -> list[tuple[object, ...]]:
        for port in self.ports:
            try:
                conn: Any = _connect(port)
            except Exception:  # noqa: BLE001, S112 (that node is down: the next)
                continue
            try:
                return list(conn.query(statement).fetch_all())
            finally:
                conn.close()
        raise RuntimeError("no node of the cluster answers")

    def _until(self, what: str, check: Any, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except Exception:  # noqa: BLE001, S110 (not yet: ask again)
                pass
            time.sleep(0.5)
        raise RuntimeError(f"cluster: {what} not within {seconds:g} s")

    def _ready(self) -> bool:
        rows = self._query("SELECT status FROM information_schema.ins_dnodes")
        mnodes = self._query("SELECT status FROM information_schema.ins_mnodes")
        return [r[0] for r in rows] == ["ready"] * 3 and [r[0] for r in mnodes] == ["ready"] * 3

    def start(self) -> None:
        for n in range(3):
            self._start(n)
        for port in self.ports[1:]:
            self._query(f'CREATE DNODE "localhost:{port}"')
        for dnode in (2, 3):
            self._until(
                f"an mnode on dnode {dnode}",
                lambda d=dnode: self._query(f"CREATE MNODE ON DNODE {d}") is not None,
            )
        self._until("3 dnodes and mnodes ready", self._ready)

    def kill(self, n: int) -> float:
        """SIGKILL of node ``n``; the monotonic time of the kill."""
        pid = int((self.folders[n] / "taosd.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        (self.folders[n] / "taosd.pid").unlink(missing_ok=True)
        return killed

    def restart(self, n: int) -> None:
        """Node ``n`` started again on its folder; returns once the cluster is whole."""
        self._start(n)
        self._until("3 dnodes and mnodes ready", self._ready)

    def stop(self) -> None:
        for folder in self.folders:
            subprocess.run(
                [str(self.home / "tdengine-stop"), str(folder)],
                check=False,
                capture_output=True,
                timeout=120,
            )


@contextmanager
def cluster(workdir: Path) -> Iterator[Cluster]:
    the = Cluster(workdir)
    try:
        the.start()
        yield the
    finally:
        the.stop()


def with_taos_library(module: str) -> None:
    """Runs ``python -m module`` again with TDengine's client library on the loader's path
    (libtaos is found through LD_LIBRARY_PATH, which the loader reads when a process starts)."""
    lib = home() / "lib"
    paths = os.environ.get("LD_LIBRARY_PATH", "").split(":")
    if (lib / "libtaos.so").exists() and str(lib) not in paths:
        env = dict(os.environ, LD_LIBRARY_PATH=":".join([str(lib), *filter(None, paths)]))
        os.execve(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]], env)  # noqa: S606
