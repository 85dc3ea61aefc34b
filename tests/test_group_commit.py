"""Group commit: concurrent Writes share commits, and each caller still answers for its own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mdcache_client import AsyncClient, Record, Series
from mdcache_server.app import Server
from mdcache_server.cache.writes import GroupWriter
from mdcache_server.errors import StoreError
from mdcache_server.model import Record as StoreRecord
from mdcache_server.model import SeriesKey
from mdcache_server.store.url import open_store

from .support import server_config, settled


async def test_concurrent_writes_share_commits_and_all_are_stored(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cache.sqlite3'}"
    server = Server(server_config(url), open_store(url))
    await server.start()
    await settled(server)
    try:
        async with AsyncClient(f"127.0.0.1:{server.port}") as client:

            async def writer(n: int) -> list[int]:
                series = Series(f"W{n}", "quote", "tick")
                return [
                    await client.write(series, [Record(1_700_000_000_000 + i, str(i))])
                    for i in range(20)
                ]

            answers = await asyncio.gather(*(writer(n) for n in range(16)))
            assert answers == [[1] * 20] * 16
            assert (await client.stats()).records == 320
            reads = await client.read_many([Series(f"W{n}", "quote", "tick") for n in range(16)])
            assert all(
                [r.payload for r in read.records] == [str(i) for i in range(20)] for read in reads
            )
        assert server.cache.writer.commits < 320
    finally:
        await server.stop(grace=1)


class FakeConn:
    """A connection whose write fails for one series: to see where the error goes."""

    def __init__(self, log: list[int]) -> None:
        self.log = log

    def write(self, batches: Sequence[tuple[SeriesKey, Sequence[StoreRecord]]]) -> int:
        self.log.append(len(batches))
        if any(key.symbol == "BAD" for key, _ in batches):
            raise StoreError("value rejected")
        return sum(len(r) for _, r in batches)


class FakePool:
    def __init__(self) -> None:
        self.log: list[int] = []
        self.gate = asyncio.Event()

    async def run(self, fn: Callable[[Any], Any], kind: str = "other") -> Any:
        await self.gate.wait()
        return fn(FakeConn(self.log))


async def test_a_failed_shared_commit_is_retried_alone_per_write() -> None:
    pool = FakePool()
    writer = GroupWriter(pool, max_records=1000)  # type: ignore[arg-type]
    good = [(SeriesKey("OK", "k", "1d"), [StoreRecord(1, "1")])]
    bad = [(SeriesKey("BAD", "k", "1d"), [StoreRecord(1, "1")])]
    first = asyncio.create_task(writer.write(good))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(writer.write(b)) for b in (good, bad, good)]
    pool.gate.set()
    assert await first == 1
    results = await asyncio.gather(*rest, return_exceptions=True)
    assert results[0] == 1
    assert isinstance(results[1], StoreError)
    assert results[2] == 1
    assert pool.log == [1, 3, 1, 1, 1]  # alone; the three together; then each alone
