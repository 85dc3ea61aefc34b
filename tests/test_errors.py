"""Failures answer UNAVAILABLE, RESOURCE_EXHAUSTED or INTERNAL as they should; never UNKNOWN."""

from __future__ import annotations

import asyncio
import importlib
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from mdcache_client import (
    AsyncClient,
    MdcacheError,
    Record,
    ResourceExhaustedError,
    Series,
    UnavailableError,
)
from mdcache_server import errors
from mdcache_server.app import Server
from mdcache_server.service.servicer import INTERNAL_MESSAGE
from mdcache_server.service.status import status_for
from mdcache_server.store.url import open_store

from .faults import FaultyStore
from .support import server_config, settled

SERIES = Series("600519", "kline", "1d")
RECORDS = [Record(1_262_563_200_000, '{"close": 107.4}')]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cache.sqlite3"


QUIET = {"health_interval": "3600", "usage_flush_interval": "3600"}  # no background call


async def started(url: str, **settings: str) -> Server:
    """A server whose store calls are the test's own (once its start-up run is over)."""
    server = Server(server_config(url, **{**QUIET, **settings}), open_store(url))
    await server.start()
    await settled(server)
    return server


async def in_flight(server: Server, calls: int) -> None:
    """Waits until ``calls`` store calls run or wait for a worker."""
    deadline = time.monotonic() + 10
    while server.pool.in_flight < calls:
        assert time.monotonic() < deadline, f"{server.pool.in_flight} calls in flight"
        await asyncio.sleep(0.01)


@pytest.fixture
async def locked_server(db: Path) -> AsyncIterator[Server]:
    server = await started(f"sqlite:///{db}?busy_timeout_ms=300", workers="1", max_pending="1")
    try:
        yield server
    finally:
        await server.stop(grace=1)


def lock(db: Path) -> sqlite3.Connection:
    """Another process's write lock on the file, held until ROLLBACK."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


async def test_a_locked_store_is_unavailable_then_recovers(locked_server: Server, db: Path) -> None:
    async with AsyncClient(f"127.0.0.1:{locked_server.port}") as client:
        holder = lock(db)
        with pytest.raises(UnavailableError, match="database is locked"):
            await client.write(SERIES, RECORDS)
        assert not (await client.read(SERIES)).hit  # nothing half-written; reads still work
        holder.execute("ROLLBACK")
        assert await client.write(SERIES, RECORDS) == 1
        assert (await client.read(SERIES)).records == RECORDS


async def test_past_the_queue_calls_are_refused_at_once(db: Path) -> None:
    server = await started(f"sqlite:///{db}?busy_timeout_ms=10000", workers="1", max_pending="1")
    try:
        async with AsyncClient(f"127.0.0.1:{server.port}") as client:
            holder = lock(db)
            running = asyncio.create_task(client.write(SERIES, RECORDS))  # the one worker
            await in_flight(server, 1)
            queued = asyncio.create_task(client.read(SERIES))  # the one queue place
            await in_flight(server, 2)
            with pytest.raises(ResourceExhaustedError, match="1 workers \\+ 1 queued"):
                await client.stats()
            holder.execute("ROLLBACK")  # within the 10 s the Write waits for the lock
            assert await running == 1
            assert (await queued).records == RECORDS
            assert (await client.stats()).records == 1
    finally:
        await server.stop(grace=1)


async def test_an_unexpected_error_is_internal_with_a_short_message(db: Path) -> None:
    url = f"sqlite:///{db}"
    store = FaultyStore(open_store(url), failing={"read", "read_answer"}, error=ZeroDivisionError)
    server = Server(server_config(url), store.as_store())  # a part of the test's: the store
    await server.start()
    try:
        store.broken.set()
        async with AsyncClient(f"127.0.0.1:{server.port}") as client:
            with pytest.raises(MdcacheError) as caught:
                await client.read(SERIES)
        assert caught.value.code is grpc.StatusCode.INTERNAL
        assert caught.value.details == INTERNAL_MESSAGE
    finally:
        await server.stop(grace=1)


async def test_a_store_that_never_comes_up_fails_start_up_after_the_deadline(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    url = f"sqlite:///{tmp_path / 'a-file' / 'cache.sqlite3'}"
    server = Server(server_config(url, startup_timeout="0.5"), open_store(url))
    with pytest.raises(errors.StoreUnavailable, match=r"store not ready after \d+ attempts"):
        await server.start()
    await asyncio.to_thread(server.pool.close)


def subclasses(cls: type[errors.MdcacheError]) -> Iterator[type[errors.MdcacheError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


def test_every_error_class_has_a_status_other_than_unknown() -> None:
    """Every error class there is, found by walking the root: a new one fails this test
    until its status is settled (in ``service/status.py``) and written here."""
    importlib.import_module("mdcache_server.store.tdengine")  # the store's own errors too
    classes = [cls.__new__(cls) for cls in subclasses(errors.MdcacheError)]
    statuses = {type(e).__name__: status_for(e).name for e in classes}
    assert statuses == {
        "InvalidArgument": "INVALID_ARGUMENT",
        "Overloaded": "RESOURCE_EXHAUSTED",
        "StoreError": "INTERNAL",
        "StoreUnavailable": "UNAVAILABLE",
        "ConfigError": "INTERNAL",
        "TableMissing": "INTERNAL",  # TDengine's, handled inside its store
        "ConnectionLost": "UNAVAILABLE",
        "StoreDown": "UNAVAILABLE",
        "Unreachable": "UNAVAILABLE",  # TDengine's: no server answered
        "Lagging": "RESOURCE_EXHAUSTED",  # a subscriber too far behind
        "ResumeLost": "FAILED_PRECONDITION",  # a stream's resume point no longer held
        "Stopping": "UNAVAILABLE",  # streams ended by a server stopping
        "Unadjustable": "FAILED_PRECONDITION",  # adjusted bars without any factor record
    }


async def test_past_the_concurrent_calls_bound_calls_are_refused(db: Path) -> None:
    server = await started(f"sqlite:///{db}?busy_timeout_ms=10000", max_concurrent_calls="2")
    try:
        async with AsyncClient(f"127.0.0.1:{server.port}") as client:
            holder = lock(db)
            writes = [asyncio.create_task(client.write(SERIES, RECORDS)) for _ in range(2)]
            await in_flight(server, 1)  # one Write waits for the lock, the other for it
            deadline = time.monotonic() + 10
            while True:  # refused once both Writes are in progress
                try:
                    await client.stats()
                except ResourceExhaustedError:
                    break
                assert time.monotonic() < deadline, "a third call was never refused"
                await asyncio.sleep(0.02)
            holder.execute("ROLLBACK")
            assert await asyncio.gather(*writes) == [1, 1]
            assert (await client.stats()).records == 1
    finally:
        await server.stop(grace=1)
