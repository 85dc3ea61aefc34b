"""``mdcache serve --processes 3``: replicas on one port under one parent, on every store."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from mdcache_client import Client, MdcacheError, Record, Series, Stats

from .process import ServerProcess

CHILDREN = 3
MINUTE = 60_000
START = 1_700_000_000_000
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]  # SO_REUSEPORT spreads connections


def serving(server: ServerProcess, count: int, timeout: float = 90) -> list[str]:
    """Waits until ``count`` children (since the start) serve; returns their replica names."""
    deadline = time.monotonic() + timeout
    while True:
        names = [e["replica"] for e in list(server.events) if e.get("event") == "serving"]
        if len(names) >= count:
            return names
        if time.monotonic() > deadline:
            server.kill()
            raise AssertionError("children did not start:\n" + "".join(server.lines))
        time.sleep(0.05)


@contextmanager
def parent(store_url: str, *args: str) -> Iterator[ServerProcess]:
    server = ServerProcess("--store", store_url, "--processes", str(CHILDREN), *args)
    try:
        serving(server, CHILDREN)
        yield server
    finally:
        if server.proc.poll() is None:
            server.terminate(signal.SIGTERM, timeout=30)  # the children drain and end
        server.kill()


@contextmanager
def clients(server: ServerProcess, n: int) -> Iterator[list[Client]]:
    """``n`` clients, each on a connection of its own (so spread over the children)."""
    with ExitStack() as stack:
        yield [
            stack.enter_context(Client(server.target, timeout=10, options=OWN_CONNECTION))
            for _ in range(n)
        ]


def counted(group: list[Client], reads: int, replicas: int = 0, timeout: float = 20) -> Stats:
    """Waits until each client's Stats count ``reads`` hits and misses (summed over the
    children's flushed counters) and ``replicas`` replicas; returns the first client's."""
    deadline = time.monotonic() + timeout
    while True:
        every = [client.stats() for client in group]
        if all(s.hits + s.misses >= reads and s.replicas >= replicas for s in every):
            return every[0]
        if time.monotonic() > deadline:
            return every[0]  # the caller's assertions say what is missing
        time.sleep(0.05)


def bars(n: int, first: int = 0) -> list[Record]:
    return [Record(START + (first + i) * MINUTE, json.dumps({"close": i})) for i in range(n)]


def test_writes_show_through_every_child_and_counters_add_up(store_url: str) -> None:
    series = Series("600519.SH", "kline", "1m")
    with parent(store_url, "--usage-flush-interval", "0.2") as server, clients(server, 8) as group:
        group[0].write(series, bars(20))
        reads = 0
        for step, writer in enumerate(group):
            record = bars(1, 20 + step)[0]
            writer.write(series, [record])
            for reader in group:
                latest = reader.read(series, newest_first=True, limit=1, consistency="strict")
                assert latest.records == [record]  # strict: every acknowledged Write
                reads += 1
        stats = counted(group[:1], reads, replicas=CHILDREN)  # every child flushed
        assert stats.replicas == CHILDREN  # every child read something
        assert stats.hits + stats.misses >= reads  # each child's reads, summed


def test_sigterm_to_the_parent_drains_every_child(store_url: str) -> None:
    with parent(store_url) as server:
        assert server.terminate(signal.SIGTERM, timeout=30) == 0
        stopped = [e for e in server.events if e.get("event") == "child_stopped"]
        assert sorted(e["child"] for e in stopped) == list(range(CHILDREN))
        assert all(e["code"] == 0 for e in stopped)
        assert sum(e.get("event") == "stopped" for e in server.events) == CHILDREN


def test_a_killed_child_is_restarted_and_no_acknowledged_write_is_lost(store_url: str) -> None:
    series = Series("000001.SZ", "kline", "1m")
    with parent(store_url) as server, clients(server, 4) as group:
        acknowledged: list[Record] = []
        done = threading.Event()

        def write(client: Client, first: int) -> None:
            for i in range(first, 1_000_000, len(group)):
                if done.is_set():
                    return
                record = bars(1, i)[0]
                try:
                    client.write(series, [record])
                except MdcacheError:  # the child behind it died: not acknowledged
                    continue
                acknowledged.append(record)

        writers = [threading.Thread(target=write, args=(c, i)) for i, c in enumerate(group)]
        for thread in writers:
            thread.start()
        time.sleep(0.5)
        child = next(e for e in server.events if e.get("event") == "child_started")
        os.kill(child["pid"], signal.SIGKILL)
        serving(server, CHILDREN + 1)  # started again
        time.sleep(0.5)
        done.set()
        for thread in writers:
            thread.join(10)
        assert server.wait_event("child_restarted")["child"] == child["child"]
        with Client(server.target, timeout=10, options=OWN_CONNECTION) as reader:
            stored = {r.ts_ms for r in reader.read(series).records}
        assert acknowledged
        assert {r.ts_ms for r in acknowledged} <= stored


def test_children_evict_exactly_the_never_read_series(store_url: str) -> None:
    """Fault 1 of issue 15 with ``--processes 3``: every child checks capacity at the same
    moments; together they evict the one series never read, and nothing else."""
    settings = ("--max-records", "1500", "--capacity-interval", "0.5")
    with (
        parent(store_url, *settings, "--usage-flush-interval", "0.3") as server,
        clients(server, 6) as group,
    ):
        read_a, read_b, never = (Series(s, "kline", "1m") for s in ("A.SH", "B.SH", "C.SH"))
        group[0].write_many({read_a: bars(600), read_b: bars(600)})
        for _ in range(3):
            for i, client in enumerate(group):
                client.read((read_a, read_b)[i % 2], limit=10)
        flushed = counted(group, 18)  # the reads flushed by their children, seen by those asked
        time.sleep(0.6)  # and by any child not asked, at its next flush (every 0.3 s)
        assert flushed.hits + flushed.misses >= 18
        group[0].write(never, bars(600))  # 1,800 records: over the bound by 300
        deadline = time.monotonic() + 20
        while group[0].stats().records > 1500:
            assert time.monotonic() < deadline, "nothing evicted"
            time.sleep(0.1)
        time.sleep(1.2)  # two more rounds of checks by every child
        assert group[0].stats().records == 1200
        evictions = [e for e in server.events if e.get("event") == "capacity_evicted"]
        assert [(e["series"], e["records"], e["first"]) for e in evictions] == [
            (1, 600, "C.SH/kline/1m")
        ]
        assert not group[1].read(never).hit
