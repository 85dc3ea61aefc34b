"""The client's transport: deadlines, retries, keepalive and round-robin, against real servers."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from mdcache.v1 import cache_pb2 as pb
from mdcache.v1 import cache_pb2_grpc as pb_grpc
from mdcache_client import (
    AsyncClient,
    Client,
    DeadlineExceededError,
    InvalidArgumentError,
    Series,
    UnavailableError,
)
from mdcache_server.app import Server
from mdcache_server.store.url import open_store

from .support import server_config

SQLITE = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


class Flaky(pb_grpc.MarketDataCacheServicer):
    """A stand-in server that counts attempts: Stats fails UNAVAILABLE ``failures`` times,
    Read is always INVALID_ARGUMENT, Purge never answers in time."""

    def __init__(self) -> None:
        self.failures = 0
        self.attempts: Counter[str] = Counter()

    async def Stats(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        self.attempts["Stats"] += 1
        if self.attempts["Stats"] <= self.failures:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "store is restarting")
        return pb.StatsResponse(records=42)

    async def Read(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        self.attempts["Read"] += 1
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "series[0].symbol: bad")

    async def Purge(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        self.attempts["Purge"] += 1
        await asyncio.sleep(10)
        return pb.PurgeResponse()


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[Flaky, str]]:
    servicer = Flaky()
    server = grpc.aio.server()
    pb_grpc.add_MarketDataCacheServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


def blocking(target: str, call: Callable[[Client], Any], **options: Any) -> Any:
    with Client(target, **options) as client:
        return call(client)


@pytest.mark.parametrize("flavour", ["asyncio", "blocking"])
async def test_unavailable_is_retried(flaky: tuple[Flaky, str], flavour: str) -> None:
    servicer, target = flaky
    servicer.failures = 2
    if flavour == "asyncio":
        async with AsyncClient(target, timeout=5) as client:
            stats = await client.stats()
    else:
        stats = await asyncio.to_thread(blocking, target, lambda c: c.stats(), timeout=5)
    assert (stats.records, servicer.attempts["Stats"]) == (42, 3)  # 2 failures, then success


async def test_retries_stop_after_max_attempts(flaky: tuple[Flaky, str]) -> None:
    servicer, target = flaky
    servicer.failures = 100
    async with AsyncClient(target, timeout=5) as client:
        with pytest.raises(UnavailableError, match="store is restarting"):
            await client.stats()
    assert servicer.attempts["Stats"] == 4  # the default max_attempts
    async with AsyncClient(target, timeout=5, max_attempts=1) as client:
        with pytest.raises(UnavailableError):
            await client.stats()
    assert servicer.attempts["Stats"] == 5  # one more: no retry


async def test_invalid_argument_is_not_retried_by_a_stand_in(flaky: tuple[Flaky, str]) -> None:
    servicer, target = flaky
    async with AsyncClient(target, timeout=5) as client:
        with pytest.raises(InvalidArgumentError):
            await client.read(Series("x", "kline", "1d"))
    assert servicer.attempts["Read"] == 1


@SQLITE
async def test_invalid_argument_is_not_retried(server: Server, client: AsyncClient) -> None:
    with pytest.raises(InvalidArgumentError):
        await client.read(Series("", "kline", "1d"))
    target = f"127.0.0.1:{server.port}"
    with pytest.raises(InvalidArgumentError):
        await asyncio.to_thread(blocking, target, lambda c: c.read(Series("", "kline", "1d")))
    reads = (await client.stats()).calls["Read"]
    assert (reads.calls, reads.errors) == (2, 2)  # counted by the server: one attempt each


async def test_every_call_has_a_default_deadline(flaky: tuple[Flaky, str]) -> None:
    servicer, target = flaky
    started = time.monotonic()
    async with AsyncClient(target, timeout=0.3) as client:
        with pytest.raises(DeadlineExceededError):
            await client.purge()
    with pytest.raises(DeadlineExceededError):
        await asyncio.to_thread(blocking, target, lambda c: c.purge(), timeout=0.3)
    assert time.monotonic() - started < 3
    assert servicer.attempts["Purge"] == 2


async def stays_ready(client: AsyncClient, seconds: float) -> bool:
    """Whether the client's connection stays READY, unchanged, for ``seconds``."""
    channel = client.channel
    assert channel.get_state() is grpc.ChannelConnectivity.READY
    try:
        await asyncio.wait_for(
            channel.wait_for_state_change(grpc.ChannelConnectivity.READY), seconds
        )
    except TimeoutError:
        return True
    return False  # a GOAWAY closed the connection (round-robin connects again at once)


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Starts real servers over SQLite files of their own; stops them all."""
    servers: list[Server] = []

    async def start(**settings: str) -> Server:
        url = f"sqlite:///{tmp_path / f'replica{len(servers)}.sqlite3'}"
        srv = Server(server_config(url, **settings), open_store(url))
        await srv.start()
        servers.append(srv)
        return srv

    try:
        yield start
    finally:
        for srv in servers:
            await srv.stop(grace=1)


async def test_keepalive_pings_on_an_idle_connection_are_accepted(serve: Any) -> None:
    srv = await serve(keepalive_min_interval="0.5")
    async with AsyncClient(f"127.0.0.1:{srv.port}", keepalive=1.0) as client:
        await client.stats()
        # 4 pings in 4 idle seconds; a server that refused them would GOAWAY at the third.
        assert await stays_ready(client, 4.0)
        assert (await client.stats()).records == 0


async def test_keepalive_pings_more_often_than_accepted_are_refused(serve: Any) -> None:
    srv = await serve()  # accepts a ping every 10 s at most, by default
    async with AsyncClient(f"127.0.0.1:{srv.port}", keepalive=1.0) as client:
        await client.stats()
        # The third early ping gets GOAWAY "too_many_pings", which closes the connection.
        assert not await stays_ready(client, 4.5)


async def read_calls(srv: Server) -> int:
    async with AsyncClient(f"127.0.0.1:{srv.port}") as client:
        reads = (await client.stats()).calls.get("Read")
    return reads.calls if reads else 0


async def test_round_robin_spreads_calls_over_replicas(serve: Any) -> None:
    a, b = await serve(), await serve()
    series = Series("600519", "kline", "1d")
    async with AsyncClient(f"ipv4:127.0.0.1:{a.port},127.0.0.1:{b.port}") as client:
        for _ in range(100):  # until both connections are up: then strictly in turn
            await client.read(series)
            if await read_calls(a) and await read_calls(b):
                break
        before = (await read_calls(a), await read_calls(b))
        for _ in range(10):
            await client.read(series)
    after = (await read_calls(a), await read_calls(b))
    assert (after[0] - before[0], after[1] - before[1]) == (5, 5)


async def test_dns_targets(serve: Any) -> None:
    srv = await serve()
    async with AsyncClient(f"dns:///localhost:{srv.port}") as client:
        assert (await client.stats()).records == 0
