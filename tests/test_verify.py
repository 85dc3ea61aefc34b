"""``mdcache verify`` against a real server: it passes, and names the check that fails."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from harness.ports import free_port
from mdcache_client import AsyncClient
from mdcache_server.app import Server
from mdcache_server.ops.verify import redact
from mdcache_server.store.url import open_store

from .commands import amdcache, json_out, mdcache

CHECKS = [
    "store",
    "schema",
    "server",
    "health",
    "reflection",
    "canary",
    "server_store",
    "retention",
]


def store_with_schema(path: Path) -> str:
    url = f"sqlite:///{path}"
    conn = open_store(url).connect()
    conn.ensure_schema()
    conn.close()
    return url


async def test_a_healthy_deployment_passes_every_check(
    server: Server, client: AsyncClient, store_url: str
) -> None:
    target = f"127.0.0.1:{server.port}"
    result = await amdcache("verify", "--target", target, "--store", store_url, "--json")
    report = json_out(result)
    assert result.returncode == 0, result.stdout
    assert report["ok"] is True
    assert report["failed"] == []
    assert [c["name"] for c in report["checks"]] == CHECKS
    assert {c["status"] for c in report["checks"]} == {"ok"}
    assert all(c["seconds"] >= 0 for c in report["checks"])
    details = {c["name"]: c["detail"] for c in report["checks"]}
    assert details["health"] == "SERVING"
    assert details["reflection"] == "lists mdcache.v1.MarketDataCache"
    assert details["canary"].startswith("wrote, read back and purged __mdcache_canary__")
    assert details["retention"].startswith("kline kept, default 7 days")
    assert (await client.stats()).records == 0, "the canary was left behind"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_the_report_reads_as_a_table_with_times(server: Server, store_url: str) -> None:
    result = await amdcache("verify", "--target", f"127.0.0.1:{server.port}", "--store", store_url)
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert lines[0] == f"mdcache verify: server 127.0.0.1:{server.port}, store {store_url}"
    rows = [line.split() for line in lines[2:10]]
    assert [row[:2] for row in rows] == [["ok", name] for name in CHECKS]
    assert all(row[3] in ("ms", "s") for row in rows)
    assert lines[-1].startswith("all 8 checks passed in ")


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", ["under a regular file", "not a database"])
async def test_an_unreachable_store_fails_the_store_check(
    server: Server, tmp_path: Path, kind: str
) -> None:
    blocker = tmp_path / "a-file"
    if kind == "under a regular file":
        blocker.write_text("")
        url = f"sqlite:///{blocker / 'cache.sqlite3'}"
    else:
        blocker.write_bytes(b"this is not an SQLite database, " * 100)
        url = f"sqlite:///{blocker}"
    result = await amdcache("verify", "--target", f"127.0.0.1:{server.port}", "--store", url)
    assert result.returncode == 1
    assert "FAIL  store" in result.stdout
    hint = "the server creates it when it starts" if kind == "under a regular file" else "check"
    assert f"hint: {hint}" in result.stdout
    assert result.stdout.splitlines()[-1] == "FAILED: store (1 of 8 checks)"

    report = json_out(
        await amdcache("verify", "--target", f"127.0.0.1:{server.port}", "--store", url, "--json")
    )
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert report["failed"] == ["store"]
    assert status["schema"] == status["server_store"] == "skip"
    assert status["canary"] == status["health"] == "ok"


async def test_no_server_fails_the_server_check_and_skips_what_needs_it(tmp_path: Path) -> None:
    url = store_with_schema(tmp_path / "cache.sqlite3")
    target = f"127.0.0.1:{free_port()}"
    args = ("verify", "--target", target, "--store", url, "--timeout", "1")
    result = await amdcache(*args, "--json")
    report = json_out(result)
    assert result.returncode == 1
    assert report["failed"] == ["server"]
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["server"]["detail"] == f"nothing answers gRPC at {target} within 1 s"
    assert "start `mdcache serve`" in checks["server"]["hint"]
    assert [n for n, c in checks.items() if c["status"] == "skip"] == [
        "health",
        "reflection",
        "canary",
        "server_store",
        "retention",
    ]
    assert checks["store"]["status"] == checks["schema"]["status"] == "ok"


async def test_a_store_without_tables_fails_the_schema_check(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    sqlite3.connect(path).close()
    path.touch()
    target = f"127.0.0.1:{free_port()}"
    args = ("verify", "--target", target, "--store", f"sqlite:///{path}", "--timeout", "1")
    report = json_out(await amdcache(*args, "--json"))
    checks = {c["name"]: c for c in report["checks"]}
    assert report["failed"] == ["schema", "server"]
    assert "no such table" in checks["schema"]["detail"]
    assert "start `mdcache serve` on this store once" in checks["schema"]["hint"]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_another_store_than_the_servers_fails_server_store(
    server: Server, tmp_path: Path
) -> None:
    other = store_with_schema(tmp_path / "other.sqlite3")
    target = f"127.0.0.1:{server.port}"
    result = await amdcache("verify", "--target", target, "--store", other, "--json")
    report = json_out(result)
    assert result.returncode == 1
    assert report["failed"] == ["server_store"]
    check = next(c for c in report["checks"] if c["name"] == "server_store")
    assert check["detail"] == f"the canary written through {target} is not in {other}"


def test_the_store_comes_from_the_environment(tmp_path: Path) -> None:
    env = {"MDCACHE_DATA_DIR": str(tmp_path), "MDCACHE_TARGET": f"127.0.0.1:{free_port()}"}
    result = mdcache("verify", "--timeout", "0.5", "--json", env=env)
    report = json_out(result)
    assert result.returncode == 1
    assert report["store"] == f"sqlite:///{tmp_path}/mdcache.sqlite3"
    assert report["target"] == env["MDCACHE_TARGET"]
    store = report["checks"][0]
    assert store["detail"] == f"no SQLite database file at {tmp_path}/mdcache.sqlite3"
    assert not (tmp_path / "mdcache.sqlite3").exists(), "verify created a database"


def test_reports_never_show_a_store_password() -> None:
    assert redact("taosws://root:s3cret@db:6041/mdcache") == "taosws://root:***@db:6041/mdcache"
    assert redact("sqlite:////var/lib/mdcache.sqlite3") == "sqlite:////var/lib/mdcache.sqlite3"
