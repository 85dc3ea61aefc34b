"""The TDengine server the benchmark measures: ``--tdengine-url``, or one started here.

Without a URL, a ``taosd`` of the TDengine bundle (``MDCACHE_TDENGINE_HOME``, by default
``../shared/tdengine`` beside the checkout) is started on a free port with a fresh data
folder in the work directory, and stopped at the end. Each server of the benchmark gets a
database of its own on it, created by mdcache with its defaults (``PRECISION 'ms'``,
``WAL_LEVEL 2 WAL_FSYNC_PERIOD 0``: every acknowledged write fsynced).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.taosd import Cluster, Taosd

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
    lib = str(bundle / "lib")
    os.environ["LD_LIBRARY_PATH"] = lib + (
        ":" + os.environ["LD_LIBRARY_PATH"] if os.environ.get("LD_LIBRARY_PATH") else ""
    )
    node = Taosd(bundle, workdir / "taosd")
    node.start()
    try:
        yield f"taos://root:taosdata@localhost:{node.port}"
    finally:
        node.stop()


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


@contextmanager
def cluster(workdir: Path) -> Iterator[Cluster]:
    """Three taosd of the bundle on one machine, one cluster with an mnode on each node;
    stopped on the way out."""
    the = Cluster(home(), workdir)
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
