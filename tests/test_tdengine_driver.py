"""The TDengine store through its real drivers, where no server is needed: what an outage
and a missing driver look like to a user."""

from __future__ import annotations

import importlib.util
import socket
import time

import pytest

from mdcache_server.app import Server
from mdcache_server.errors import ConfigError, StoreUnavailable
from mdcache_server.store.url import open_store

from .support import server_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(importlib.util.find_spec("taosws") is None, reason="taos-ws-py not installed")
async def test_an_unreachable_tdengine_fails_start_up_with_unavailable() -> None:
    url = f"taosws://root:taosdata@127.0.0.1:{free_port()}/mdcache?conn_retries=0"
    server = Server(server_config(url, startup_timeout="1"), open_store(url))
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=r"store not ready after \d+ attempts.*0xE001"):
        await server.start()
    assert time.monotonic() - started < 15
    server.pool.close()


def test_the_native_driver_missing_says_what_to_install() -> None:
    if importlib.util.find_spec("taos") is not None:
        pytest.skip("taospy is installed here: whether libtaos.so loads depends on the machine")
    store = open_store("taos://root:taosdata@127.0.0.1:6030/mdcache")
    with pytest.raises(ConfigError, match=r"libtaos.so.*pip install 'mdcache\[tdengine\]'"):
        store.connect()
