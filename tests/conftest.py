"""Fixtures: a real server on port 0 over each store, driven through the real client."""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from mdcache_client import AsyncClient
from mdcache_server.app import Server
from mdcache_server.store.url import open_store

from .support import server_config, settled

TDENGINE_URL = os.environ.get("MDCACHE_TEST_TDENGINE_URL", "")
# Set by scripts/with-tdengine when it started a server (CI does): a TDengine test that
# skips is then a failure, not a quiet gap.
REQUIRE_TDENGINE = os.environ.get("MDCACHE_TEST_REQUIRE_TDENGINE") == "1"
NO_TDENGINE = (
    "MDCACHE_TEST_TDENGINE_URL is not set (e.g. "
    "taos://root:taosdata@localhost:6030/mdcache_test): TDengine store not tested"
)
STORES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "tdengine",
        id="tdengine",
        marks=[
            pytest.mark.tdengine,
            pytest.mark.skipif(not TDENGINE_URL, reason=NO_TDENGINE),
        ],
    ),
]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under xdist (``make test``), the tests on the three-node cluster run on one worker,
    which starts the cluster once, and the partition tests on one (theirs in namespaces);
    every other test goes wherever a worker is free. (The
    ``xdist_group`` mark does not group under pytest 9: xdist renames node ids.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ClusterTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if "partition/test_partitions.py" in nodeid:
                return "partitions"  # their own cluster in namespaces (tests/partition)
            cluster = "tdengine-cluster" in nodeid or "test_tdengine_cluster.py" in nodeid
            return "cluster" if cluster else nodeid

    return ClusterTogether(config, log)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, Any]:
    report = yield
    if REQUIRE_TDENGINE and report.skipped and item.get_closest_marker("tdengine"):
        report.outcome = "failed"
        report.longrepr = f"a TDengine test skipped where TDengine is required: {report.longrepr}"
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The partition tests' figures (tests/partition/report.py), shown when they ran."""
    from .partition.report import summary_lines

    lines = summary_lines(terminalreporter.stats)
    if lines:
        terminalreporter.section("partitions: time from heal to first success")
        for line in lines:
            terminalreporter.write_line(line)


# Databases whose topic a consumer still followed when their test ended (a server's
# Subscribe relay leaves TDengine's consumer group in about 4 s, in the background):
# dropped while the next tests run, two at most pending (each holds vnodes, which a small
# server has few of). In a process of their own, with a libtaos of its own: a DROP
# DATABASE on a thread of the test process, while the next test's server polled its own
# topic, once crashed that libtaos (a segfault in one of its threads, the pytest worker
# lost with it).
DROPPING = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
FOLLOWED: list[Future[None]] = []


def tdengine_test_url() -> Iterator[str]:
    """A database of its own under MDCACHE_TEST_TDENGINE_URL, dropped afterwards."""
    from mdcache_server.errors import StoreError
    from mdcache_server.store.tdengine import drop_database

    if not TDENGINE_URL:
        pytest.skip(NO_TDENGINE)
    parts = urlsplit(TDENGINE_URL)
    base = parts.path.strip("/") or "mdcache_test"
    url = parts._replace(path=f"/{base}_{uuid.uuid4().hex[:12]}").geturl()
    try:
        yield url
    finally:
        try:
            drop_database(url, wait=0)
        except StoreError as exc:
            if "subscribed" not in str(exc):
                raise
            while len(FOLLOWED) >= 2:
                FOLLOWED.pop(0).result()
            FOLLOWED.append(DROPPING.submit(drop_database, url, wait=30))


@pytest.fixture
def taos_conn(url: str) -> Iterator[Any]:
    """taospy itself, on the server of the module's ``url`` fixture (a TDengine store's):
    what a test writes or alters behind the store's back."""
    import taos

    from mdcache_server.store.tdengine import parse_url

    options = parse_url(url)
    conn = taos.connect(
        host=options.host, port=options.port, user=options.user, password=options.password
    )
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture(scope="session", autouse=True)
def drop_followed_databases() -> Iterator[None]:
    yield
    while FOLLOWED:
        FOLLOWED.pop(0).result()
    DROPPING.shutdown()


@pytest.fixture(scope="session")
def tdengine_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Three taosd of the bundle forming one cluster, for the whole session (started only
    when a test asks for it); stopped at the end."""
    from .taosd import Cluster

    cluster = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.discard()


@pytest.fixture(scope="session")
def cluster_database(tdengine_cluster: Any) -> Iterator[str]:
    """A REPLICA 3 database on the cluster, made once (about 6 s), for the session."""
    from mdcache_server.store.tdengine import TDengineStore, drop_database

    url = tdengine_cluster.url(f"mdcache_cluster_{uuid.uuid4().hex[:8]}", replica="3")
    conn = TDengineStore.from_url(url).connect()
    try:
        conn.ensure_schema()
    finally:
        conn.close()
    try:
        yield url
    finally:
        drop_database(url)


def emptied(url: str) -> str:
    """The cluster's database as a new one: every super table dropped (with every series,
    counter and version), made again by the server's own ensure_schema."""
    from mdcache_server.store.tdengine import drop_topic, parse_url
    from mdcache_server.store.tdengine.connector import open_session

    drop_topic(url)  # which holds the super tables (a Subscribe relay made it)
    options = parse_url(url)
    session = open_session(options)
    try:
        for (name,) in session.query(f"SHOW {options.database}.STABLES"):
            session.execute(f"DROP STABLE IF EXISTS {options.database}.`{name}`")
    finally:
        session.close()
    return url


# The stores above, and a REPLICA 3 database on a three-node cluster (the conformance suite).
CLUSTER = pytest.param(
    "tdengine-cluster",
    id="tdengine-cluster",
    marks=[pytest.mark.tdengine, pytest.mark.cluster],
)


def store_url_of(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'cache.sqlite3'}"
    elif kind == "tdengine":
        yield from tdengine_test_url()
    else:
        yield emptied(request.getfixturevalue("cluster_database"))


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty store of each kind."""
    yield from store_url_of(request.param, request, tmp_path)


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
        await settled(srv)
        yield srv
    finally:
        await srv.stop(grace=1)


@pytest.fixture
async def client(server: Server) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(f"127.0.0.1:{server.port}", timeout=10) as c:
        yield c
