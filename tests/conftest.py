"""Fixtures: a real server on port 0 over each store, driven through the real client."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from mdcache_client import AsyncClient
from mdcache_server.app import Server
from mdcache_server.store.url import open_store

from .support import server_config

TDENGINE_URL = os.environ.get("MDCACHE_TEST_TDENGINE_URL", "")
# Set by scripts/with-tdengine when it started a server (CI does): a TDengine test that
# skips is then a failure, not a quiet gap.
REQUIRE_TDENGINE = os.environ.get("MDCACHE_TEST_REQUIRE_TDENGINE") == "1"
STORES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "tdengine",
        id="tdengine",
        marks=[
            pytest.mark.tdengine,
            pytest.mark.skipif(
                not TDENGINE_URL,
                reason="MDCACHE_TEST_TDENGINE_URL is not set (e.g. "
                "taos://root:taosdata@localhost:6030/mdcache_test): TDengine store not tested",
            ),
        ],
    ),
]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, Any]:
    report = yield
    if REQUIRE_TDENGINE and report.skipped and item.get_closest_marker("tdengine"):
        report.outcome = "failed"
        report.longrepr = f"a TDengine test skipped where TDengine is required: {report.longrepr}"
    return report


def tdengine_test_url() -> Iterator[str]:
    """A database of its own under MDCACHE_TEST_TDENGINE_URL, dropped afterwards."""
    from mdcache_server.store.tdengine import drop_database

    parts = urlsplit(TDENGINE_URL)
    base = parts.path.strip("/") or "mdcache_test"
    url = parts._replace(path=f"/{base}_{uuid.uuid4().hex[:12]}").geturl()
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty store of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cache.sqlite3'}"
    else:
        yield from tdengine_test_url()


@pytest.fixture
def server_settings() -> dict[str, str]:
    """Settings of the ``server`` fixture besides the defaults (a module may override it)."""
    return {}


@pytest.fixture
async def server(store_url: str, server_settings: dict[str, str]) -> AsyncIterator[Server]:
    """A running server on a free port over an empty store; always stopped."""
    srv = Server(server_config(store_url, **server_settings), open_store(store_url))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop(grace=1)


@pytest.fixture
async def client(server: Server) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(f"127.0.0.1:{server.port}", timeout=10) as c:
        yield c
