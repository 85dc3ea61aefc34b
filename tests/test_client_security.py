"""The client's TLS and bearer-token options against a real server with TLS and tokens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from mdcache_client import (
    AsyncClient,
    Client,
    PermissionDeniedError,
    Record,
    Series,
    UnauthenticatedError,
    UnavailableError,
)
from mdcache_server.app import Server
from mdcache_server.store.url import open_store

from .certs import Pair, self_signed
from .support import server_config

SERIES = Series("600519", "kline", "1d")
BAR = Record.of(1_700_000_000_000, {"close": 1688.0})
TOKENS = "w-0123456789abcdef:write,r-0123456789abcdef:read"
WRITER, READER = "w-0123456789abcdef", "r-0123456789abcdef"
Serve = Callable[..., Awaitable[str]]


@pytest.fixture(scope="module")
def server_pair() -> Pair:
    return self_signed()


@pytest.fixture
async def serve(tmp_path: Path, server_pair: Pair) -> AsyncIterator[Serve]:
    """Starts a real server with the given settings; ``tls=True`` adds the server's pair."""
    servers: list[Server] = []

    async def start(*, tls: bool = False, **settings: str) -> str:
        if tls:
            cert, key = server_pair.save(tmp_path, "server")
            settings.update(tls_cert=str(cert), tls_key=str(key))
        url = f"sqlite:///{tmp_path / f'cache{len(servers)}.sqlite3'}"
        srv = Server(server_config(url, **settings), open_store(url))
        await srv.start()
        servers.append(srv)
        return f"127.0.0.1:{srv.port}"

    try:
        yield start
    finally:
        for srv in servers:
            await srv.stop(grace=1)


def blocking_round_trip(target: str, **options: Any) -> int:
    with Client(target, timeout=5, **options) as client:
        client.write(SERIES, [BAR])
        return len(client.read(SERIES).records)


async def test_tls_with_the_servers_certificate_as_root(serve: Serve, server_pair: Pair) -> None:
    target = await serve(tls=True)
    async with AsyncClient(target, timeout=5, root_certificates=server_pair.cert) as client:
        assert await client.write(SERIES, [BAR]) == 1
        assert (await client.read(SERIES)).records == [BAR]
    roots = {"root_certificates": server_pair.cert}
    assert await asyncio.to_thread(blocking_round_trip, target, **roots) == 1


async def test_tls_refuses_an_unknown_certificate_and_plaintext(serve: Serve) -> None:
    target = await serve(tls=True)
    stranger = self_signed("someone else")
    async with AsyncClient(target, timeout=2, root_certificates=stranger.cert) as client:
        with pytest.raises(UnavailableError):
            await client.stats()
    async with AsyncClient(target, timeout=2) as client:  # plaintext to a TLS port
        with pytest.raises(UnavailableError):
            await client.stats()


async def test_mutual_tls(serve: Serve, server_pair: Pair, tmp_path: Path) -> None:
    mine = self_signed("market-data service")
    client_ca, _ = mine.save(tmp_path, "client")
    target = await serve(tls=True, tls_client_ca=str(client_ca))
    identity = (mine.cert, mine.key)
    roots = server_pair.cert
    async with AsyncClient(
        target, timeout=5, root_certificates=roots, client_certificate=identity
    ) as client:
        assert await client.write(SERIES, [BAR]) == 1
    async with AsyncClient(target, timeout=2, root_certificates=roots) as client:
        with pytest.raises(UnavailableError):  # no client certificate: the handshake fails
            await client.stats()


async def check_roles(target: str, **tls: Any) -> None:
    """What each token may do, through the asyncio client."""
    async with AsyncClient(target, timeout=5, **tls) as anonymous:
        with pytest.raises(UnauthenticatedError) as caught:
            await anonymous.read(SERIES)
        assert caught.value.code is grpc.StatusCode.UNAUTHENTICATED
        assert caught.value.details == "a valid bearer token is required"
    async with AsyncClient(target, timeout=5, token="w-not-a-token", **tls) as stranger:
        with pytest.raises(UnauthenticatedError):
            await stranger.stats()
    async with AsyncClient(target, timeout=5, token=WRITER, **tls) as writer:
        assert await writer.write(SERIES, [BAR]) == 1
        assert await writer.purge(before_ms=0) == 0
    async with AsyncClient(target, timeout=5, token=READER, **tls) as reader:
        assert (await reader.read(SERIES)).records == [BAR]
        assert (await reader.stats()).records == 1
        with pytest.raises(PermissionDeniedError, match="a read token may not call Write"):
            await reader.write(SERIES, [BAR])
        with pytest.raises(PermissionDeniedError, match="a read token may not call Purge"):
            await reader.purge()
        with pytest.raises(PermissionDeniedError, match="a read token may not reset Stats"):
            await reader.stats(reset=True)
        assert (await reader.stats()).hits == 1  # the refused reset changed nothing


def blocking_roles(target: str, **tls: Any) -> None:
    with Client(target, timeout=5, token=READER, **tls) as reader:
        assert reader.read(SERIES).hit
        with pytest.raises(PermissionDeniedError):
            reader.write(SERIES, [BAR])
    with Client(target, timeout=5, **tls) as anonymous, pytest.raises(UnauthenticatedError):
        anonymous.stats()
    assert blocking_round_trip(target, token=WRITER, **tls) == 1


async def test_bearer_tokens_in_call_metadata_over_plaintext(serve: Serve) -> None:
    target = await serve(tokens=TOKENS)
    await check_roles(target)
    await asyncio.to_thread(blocking_roles, target)


async def test_bearer_tokens_as_call_credentials_over_tls(serve: Serve, server_pair: Pair) -> None:
    target = await serve(tls=True, tokens=TOKENS)
    roots = {"root_certificates": server_pair.cert}
    await check_roles(target, **roots)
    await asyncio.to_thread(blocking_roles, target, **roots)


async def test_a_token_with_a_channel_of_ones_own(serve: Serve) -> None:
    target = await serve(tokens=TOKENS)
    channel = grpc.aio.insecure_channel(target)
    async with AsyncClient(target, channel=channel, token=WRITER) as client:
        assert await client.write(SERIES, [BAR]) == 1
