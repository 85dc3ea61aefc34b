"""mdcache in front of a three-node TDengine cluster, a REPLICA 3 database: a node killed
under a write load of 8 writers (the first of the URL, then another) loses no acknowledged
record and changes no answer; mdcache starts with the first node down; two mdcache
replicas on the cluster add up their counters. (The conformance suite runs on the cluster
too: tests/test_conformance.py, its ``tdengine-cluster`` store.)"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.poll import wait_until
from mdcache_client import Client, MdcacheError, Record, Series
from mdcache_server.store.tdengine import drop_database

from .process import ServerProcess
from .test_reliability import health
from .test_tdengine_faults import stored

pytestmark = [pytest.mark.tdengine, pytest.mark.cluster, pytest.mark.timeout(300)]


@pytest.fixture
def cluster(tdengine_cluster: Any) -> Any:
    tdengine_cluster.whole()  # every node up and ready, whatever the test before did
    return tdengine_cluster


@pytest.fixture
def url(cluster: Any) -> Iterator[str]:
    database = f"mdcache_failover_{uuid.uuid4().hex[:8]}"
    yield cluster.url(database, replica="3", vgroups="1")
    drop_database(cluster.url(database))


def serve(url: str, *args: str) -> ServerProcess:
    server = ServerProcess("--store", url, "--health-interval", "0.5", *args)
    server.wait_serving(90)
    return server


class Writers:
    """8 writers, one record a call each, going on through failed calls; every acknowledged
    record and the time of every failure kept."""

    def __init__(self, target: str, n: int = 8) -> None:
        self.acked: list[list[tuple[int, str, float]]] = [[] for _ in range(n)]
        self.failed: list[float] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._write, args=(target, i)) for i in range(n)]
        for t in self.threads:
            t.start()

    def _write(self, target: str, i: int) -> None:
        series = Series(f"W{i}", "quote", "tick")
        ts = 1_700_000_000_000
        with Client(target, timeout=10) as client:
            while not self.stop.is_set():
                ts += 1
                payload = json.dumps({"writer": i, "ts": ts})
                try:
                    client.write(series, [Record(ts, payload)])
                except MdcacheError:
                    self.failed.append(time.monotonic())
                    continue  # not acknowledged: the next record goes on
                self.acked[i].append((ts, payload, time.monotonic()))

    def halt(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def count(self, since: float = 0.0) -> int:
        return sum(1 for a in self.acked for *_, at in a if at >= since)

    def kept(self) -> list[list[tuple[int, str]]]:
        return [[(ts, p) for ts, p, _ in a] for a in self.acked]


def answers(target: str) -> list[list[tuple[int, str]]]:
    with Client(target, timeout=30) as client:
        return [
            [(r.ts_ms, r.payload) for r in client.read(Series(f"W{i}", "quote", "tick")).records]
            for i in range(8)
        ]


@pytest.mark.parametrize("victim", [0, 1], ids=["first-of-the-url", "another"])
def test_a_node_killed_under_load_loses_nothing_and_rejoins(
    cluster: Any, url: str, victim: int, record_property: Callable[[str, object], None]
) -> None:
    server = serve(url, "--hot-tier-bytes", "0")
    try:
        writers = Writers(server.target)
        wait_until(lambda: writers.count() > 80, 60)  # under load
        before = answers(server.target)
        assert sum(map(len, before)) > 50, "the load was too light to show anything"
        node = cluster.nodes[victim]
        node.kill(signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: writers.count(since=killed) > 0, 60)  # writes go on after the election
        first_after = min(at for a in writers.acked for *_, at in a if at > killed)
        time.sleep(2)
        writers.halt()
        failures = [t for t in writers.failed if t >= killed]
        record_property("seconds_to_first_write_after_kill", round(first_after - killed, 2))
        record_property("failed_writes_after_kill", len(failures))
        # Every answer has what it had before the kill (and what came after).
        after = answers(server.target)
        for old, new in zip(before, after, strict=True):
            assert set(old) <= set(new)
        acked = writers.kept()
        for a, n in zip(acked, after, strict=True):  # every acknowledged record is read back
            assert set(a) <= set(n)
        # The killed node, started again on its folder, rejoins; the service never stopped.
        node.start()
        cluster.whole()
        wait_until(lambda: health(server.target) == "SERVING", 30)
        with Client(server.target, timeout=30) as client:
            assert client.write(Series("W0", "quote", "tick"), [Record(1, "{}")]) == 1
        assert server.proc.poll() is None
    finally:
        server.kill()
    found = stored(url)  # and is in TDengine, read with taospy itself
    for i, a in enumerate(acked):
        assert set(a) <= set(found[f"W{i}"])


def test_mdcache_starts_while_the_first_node_is_down(cluster: Any, url: str) -> None:
    serve(url).kill()  # the database made while the cluster is whole (REPLICA 3 takes 3 nodes)
    cluster.nodes[0].kill(signal.SIGKILL)
    server = serve(url)  # waits for an election within --startup-timeout
    try:
        series = Series("600519", "kline", "1d")
        with Client(server.target, timeout=30) as client:
            assert client.write(series, [Record(1_700_000_000_000, '{"close": 1}')]) == 1
            assert len(client.read(series).records) == 1
        wait_until(lambda: health(server.target) == "SERVING", 30)
    finally:
        server.kill()
        cluster.whole()


def test_two_mdcache_replicas_on_the_cluster_add_up(cluster: Any, url: str) -> None:
    settings = ("--hot-tier-max-age", "0.5", "--usage-flush-interval", "0.2")
    a = serve(url, *settings, "--replica-id", "a")
    b = serve(url, *settings, "--replica-id", "b")
    try:
        series = Series("000001", "kline", "1d")
        bars = [Record(1_700_000_000_000 + i * 86_400_000, f'{{"i": {i}}}') for i in range(20)]
        with Client(a.target, timeout=30) as ca, Client(b.target, timeout=30) as cb:
            assert ca.write(series, bars) == 20
            wait_until(lambda: len(cb.read(series).records) == 20, 15)
            ca.read(series)
            ca.read(Series("NONE", "kline", "1d"))

            def added_up() -> bool:
                stats = cb.stats()
                return stats.replicas == 2 and stats.hits >= 2 and stats.misses >= 1

            wait_until(added_up, 10)
            assert ca.stats().records == cb.stats().records == 20
    finally:
        a.kill()
        b.kill()
