"""The TDengine server the benchmark measures: ``--tdengine-url``, or one started here.

Without a URL, a ``taosd`` of the TDengine bundle (``MDCACHE_TDENGINE_HOME``, by default
``../shared/tdengine`` beside the checkout) is started on a free port with a fresh data
folder in the work directory, and stopped at the end. Each server of the benchmark gets a
database of its own on it, created by mdcache with its defaults (``PRECISION 'ms'``,
``WAL_LEVEL 2 WAL_FSYNC_PERIOD 0``: every acknowledged write fsynced).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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


def version(base: str) -> str:
    """The server's version, through taospy."""
    import taos

    parts = urlsplit(base)
    conn = taos.connect(
        host=parts.hostname,
        port=parts.port or 6030,
        user=parts.username or "root",
        password=parts.password or "taosdata",
    )
    try:
        return str(conn.query("SELECT SERVER_VERSION()").fetch_all()[0][0])
    finally:
        conn.close()
