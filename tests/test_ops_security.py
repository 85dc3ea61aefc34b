"""The operator's commands against a server with TLS and bearer tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mdcache_server.app import Server
from mdcache_server.store.url import open_store

from .certs import self_signed
from .commands import amdcache, json_out
from .support import server_config

WRITER, READER = "w-0123456789abcdef", "r-0123456789abcdef"


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[tuple[Server, dict[str, str]]]:
    """A server with TLS and tokens, and the environment that reaches it (no token)."""
    cert, key = self_signed().save(tmp_path, "server")
    url = f"sqlite:///{tmp_path / 'cache.sqlite3'}"
    config = server_config(
        url, tls_cert=str(cert), tls_key=str(key), tokens=f"{WRITER}:write,{READER}:read"
    )
    srv = Server(config, open_store(url))
    await srv.start()
    env = {
        "MDCACHE_TARGET": f"127.0.0.1:{srv.port}",
        "MDCACHE_TLS_CA": str(cert),
        "MDCACHE_STORE_URL": url,
    }
    try:
        yield srv, env
    finally:
        await srv.stop(grace=1)


async def test_verify_passes_with_tls_and_a_write_token(
    guarded: tuple[Server, dict[str, str]],
) -> None:
    _, env = guarded
    result = await amdcache("verify", "--json", env={**env, "MDCACHE_TOKEN": WRITER})
    report = json_out(result)
    assert result.returncode == 0, report
    assert {c["status"] for c in report["checks"]} == {"ok"}


async def test_verify_without_a_token_says_that_one_is_needed(
    guarded: tuple[Server, dict[str, str]],
) -> None:
    _, env = guarded
    report = json_out(await amdcache("verify", "--json", env=env))
    checks = {c["name"]: c for c in report["checks"]}
    assert report["failed"] == ["canary", "retention"]
    assert checks["health"]["status"] == checks["reflection"]["status"] == "ok"  # left open
    assert checks["canary"]["detail"].startswith("UNAUTHENTICATED")
    assert "--token / MDCACHE_TOKEN" in checks["canary"]["hint"]

    reader = json_out(await amdcache("verify", "--json", "--token", READER, env=env))
    assert reader["failed"] == ["canary"]  # a read token may ask for Stats, not write
    assert "PERMISSION_DENIED" in reader["checks"][5]["detail"]


async def test_stats_and_purge_take_the_token_and_ca(
    guarded: tuple[Server, dict[str, str]],
) -> None:
    _, env = guarded
    stats = await amdcache("stats", "--json", env={**env, "MDCACHE_TOKEN": READER})
    assert stats.returncode == 0, stats.stderr
    assert json_out(stats)["records"] == 0
    purge = await amdcache("purge", "--older-than-days", "1", "--token", WRITER, env=env)
    assert purge.stdout == "purged 0 records older than 1 day\n"
    plain = await amdcache("stats", "--target", env["MDCACHE_TARGET"], "--timeout", "1")
    assert plain.returncode == 1  # no TLS: the handshake fails


async def test_a_missing_certificate_file_is_a_usage_error(tmp_path: Path) -> None:
    result = await amdcache("stats", "--tls-ca", str(tmp_path / "none.pem"))
    assert result.returncode == 2
    assert (
        result.stderr
        == f"mdcache stats: --tls-ca {tmp_path / 'none.pem'}: No such file or directory\n"
    )
    half = await amdcache("stats", "--tls-client-cert", str(tmp_path / "c.pem"))
    assert half.returncode == 2
    assert "--tls-client-cert and --tls-client-key go together" in half.stderr


async def test_health_over_tls_needs_the_ca_and_no_token(
    guarded: tuple[Server, dict[str, str]],
) -> None:
    srv, env = guarded
    ok = await amdcache("health", env=env)
    assert (ok.returncode, ok.stdout.strip()) == (0, f"127.0.0.1:{srv.port}: SERVING")
    service = await amdcache("health", "--service", "mdcache.v1.MarketDataCache", env=env)
    assert service.returncode == 0
    plain = {k: v for k, v in env.items() if k != "MDCACHE_TLS_CA"}
    refused = await amdcache("health", "--timeout", "2", env=plain)
    assert refused.returncode == 1
    assert "UNAVAILABLE" in refused.stdout
