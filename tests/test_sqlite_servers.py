"""Servers of one SQLite file: one that follows no change feed is the file's only server.

Such a server (``--subscribe-relay off``, or ``auto`` with one process, the default)
keeps copies in its hot tier that only its own Writes change. A second server writing
the same file would leave them stale, unseen by anyone: it must not start, and must say
which setting to change. Servers that follow the feed may share the file.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from harness.poll import wait_until
from mdcache_client import Client
from mdcache_server.errors import ConfigError
from mdcache_server.store.sqlite import SqliteStore

from .market_data import sse_minutes_20190201
from .process import ServerProcess
from .support import running


def _serve(db: Path, *args: str) -> ServerProcess:
    return ServerProcess("--store", f"sqlite:///{db}", *args)


def _refused(server: ServerProcess) -> str:
    assert server.proc.wait(30) == 2, server.tail()
    server.kill()
    return "".join(server.lines)


def test_a_second_server_on_a_file_served_alone_does_not_start(tmp_path: Path) -> None:
    db = tmp_path / "cache.sqlite3"
    series, bars = sse_minutes_20190201()
    bars = bars[:5]
    first = _serve(db)
    try:
        first.wait_serving()
        with Client(first.target) as client:
            client.write(series, bars)
            assert len(client.read(series).records) == 5  # now held by the first server

        said = _refused(_serve(db))  # auto, one process: alone too
        assert "another mdcache server serves" in said
        assert "--subscribe-relay on" in said
        said = _refused(_serve(db, "--subscribe-relay", "on"))
        assert "without following its change feed" in said
        assert "restart it with --subscribe-relay on" in said

        with Client(first.target) as client:  # the first goes on, its records whole
            assert list(client.read(series).records) == bars
    finally:
        first.kill()


def test_a_server_alone_does_not_join_servers_following_the_feed(tmp_path: Path) -> None:
    db = tmp_path / "cache.sqlite3"
    following = [_serve(db, "--subscribe-relay", "on") for _ in range(2)]
    try:
        for server in following:
            server.wait_serving()  # two followers share the file
        said = _refused(_serve(db, "--subscribe-relay", "off"))
        assert "other mdcache servers serve" in said
        assert "following its change feed" in said
        assert "--subscribe-relay on" in said
    finally:
        for server in following:
            server.kill()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_the_file_is_free_again_once_its_server_is_gone(tmp_path: Path, sig: int) -> None:
    """However the server ends (drained, or killed: the kernel drops its lock)."""
    db = tmp_path / "cache.sqlite3"
    first = _serve(db)
    first.wait_serving()
    first.proc.send_signal(sig)
    first.proc.wait(30)
    first.kill()
    second = _serve(db)
    try:
        second.wait_serving()
        serving = second.wait_event("serving")
        assert serving["store"] == "sqlite"
    finally:
        second.kill()


def test_processes_share_the_file_and_the_lock_says_so(tmp_path: Path) -> None:
    """``--processes 2``: its children follow the feed (auto turns it on for them)."""
    db = tmp_path / "cache.sqlite3"
    parent = _serve(db, "--processes", "2")
    try:
        wait_until(
            lambda: sum(1 for e in parent.events if e.get("event") == "serving") >= 2,
            60,
            "both children serving",
        )
        said = _refused(_serve(db))
        assert "other mdcache servers serve" in said
    finally:
        parent.kill()


async def test_a_server_that_failed_to_start_leaves_the_file_free(tmp_path: Path) -> None:
    """In one process (as tests and embedders run it): the claim conflicts like another
    process's, is released by a stop, and a refused start leaves nothing held."""
    url = f"sqlite:///{tmp_path / 'cache.sqlite3'}"
    async with running(url):
        with pytest.raises(ConfigError, match="another mdcache server serves"):
            async with running(url):
                pass
    async with running(url) as (_, client):  # the first has stopped: free again
        assert await client.stats() is not None


def test_the_claim_is_a_lock_beside_the_file(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "cache.sqlite3")
    shared = [store.claim(alone=False) for _ in range(2)]
    with pytest.raises(ConfigError):
        store.claim(alone=True)
    for claim in shared:
        claim.release()
    alone = store.claim(alone=True)
    assert (tmp_path / "cache.sqlite3-servers").is_file()
    with pytest.raises(ConfigError, match="without following its change feed"):
        store.claim(alone=False)
    alone.release()
    alone.release()  # once is enough; twice does no harm
    store.claim(alone=False).release()
