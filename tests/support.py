"""Helpers shared by the tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mdcache_client import AsyncClient
from mdcache_server.app import Server
from mdcache_server.config import Config
from mdcache_server.store.url import open_store


def server_config(store_url: str, **settings: str) -> Config:
    """A test server's configuration: a free port on loopback, the given store."""
    flags = {"listen": "127.0.0.1:0", "store_url": store_url, "grace_seconds": "5", **settings}
    return Config.load(flags, environ={})


async def settled(server: Server) -> None:
    """Waits for the server's start-up retention run, which runs beside its first calls: a
    test's records of 2023 are older than the default rules keep (``*=7``), and a run that
    lists the series after the test wrote them purges them (seen under load in CI)."""
    await asyncio.wait_for(server.retention_started.wait(), 30)
    await asyncio.wait_for(server.warmed.wait(), 60)
    coherence = server.cache.coherence
    if coherence is not None:  # replicas: held copies answer once the change feed follows
        deadline = asyncio.get_running_loop().time() + 30
        while not coherence.following:
            assert asyncio.get_running_loop().time() < deadline, "the change feed never followed"
            await asyncio.sleep(0.02)
        await caught_up(server)  # and its first mark came back: a watermark to answer by


async def caught_up(server: Server) -> None:
    """Waits until the server's change feed has merged every Write acknowledged before the
    call (a strict round, ``cache/coherence.py``); at once for a server with no feed. A
    copy filled while the feed still owed it a Write may answer only once the feed gives
    it (settled), so a test about what held copies answer waits for this after its Writes:
    on a loaded machine the feed can lag a fill by more than a Read's round trip."""
    coherence = server.cache.coherence
    if coherence is None:
        return
    deadline = asyncio.get_running_loop().time() + 30
    while not await coherence.current(None, strict=True):
        assert asyncio.get_running_loop().time() < deadline, "the change feed never caught up"
        await asyncio.sleep(0.02)  # not following (no round to wait for): the loop goes on


@asynccontextmanager
async def running(store_url: str, **settings: str) -> AsyncIterator[tuple[Server, AsyncClient]]:
    """A real server on the store, and a client of it; stopped on the way out."""
    server = Server(server_config(store_url, **settings), open_store(store_url))
    await server.start()
    try:
        await settled(server)
        async with AsyncClient(f"127.0.0.1:{server.port}") as client:
            yield server, client
    finally:
        await server.stop(grace=1)


@asynccontextmanager
async def replicas(store_url: str, n: int, **settings: str) -> AsyncIterator[list[str]]:
    """``n`` real servers on one store (each its own port); their targets. Stopped after."""
    servers = [
        Server(server_config(store_url, **settings), open_store(store_url)) for _ in range(n)
    ]
    try:
        for server in servers:
            await server.start()
        for server in servers:
            await settled(server)
        yield [f"127.0.0.1:{server.port}" for server in servers]
    finally:
        for server in servers:
            if server.port:
                await server.stop(grace=1)
