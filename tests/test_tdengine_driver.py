"""The TDengine store through its real drivers, where no server is needed: what an outage
and a missing driver look like to a user."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time

import pytest

from harness.ports import free_port
from mdcache_server.app import Server
from mdcache_server.errors import StoreUnavailable
from mdcache_server.store.url import open_store

from .support import server_config


@pytest.mark.skipif(importlib.util.find_spec("taosws") is None, reason="taos-ws-py not installed")
async def test_an_unreachable_tdengine_fails_start_up_with_unavailable() -> None:
    url = f"taosws://root:taosdata@127.0.0.1:{free_port()}/mdcache?conn_retries=0"
    server = Server(server_config(url, startup_timeout="1"), open_store(url))
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=r"store not ready after \d+ attempts.*0xE001"):
        await server.start()
    assert time.monotonic() - started < 15
    server.pool.close()


MISSING_DRIVER = """
from mdcache_server.errors import ConfigError
from mdcache_server.store.url import open_store
try:
    open_store("taos://root:taosdata@127.0.0.1:1/mdcache").connect()
except ConfigError as exc:
    print("CONFIG", exc)
except Exception as exc:
    print("OTHER", type(exc).__name__, exc)
"""


def test_the_native_driver_missing_says_what_to_install() -> None:
    """In a process that cannot load libtaos.so (no library path to the bundle's)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    proc = subprocess.run(
        [sys.executable, "-c", MISSING_DRIVER], env=env, capture_output=True, text=True, timeout=60
    )
    if proc.stdout.startswith("OTHER"):
        pytest.skip(f"libtaos.so loads here without a library path: {proc.stdout.strip()}")
    assert proc.stdout.startswith("CONFIG"), proc.stdout + proc.stderr
    assert re.search(r"libtaos.so.*pip install 'mdcache\[tdengine\]'", proc.stdout)
