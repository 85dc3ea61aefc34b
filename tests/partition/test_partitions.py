"""Partitions under load (issue 26): a three-node TDengine cluster (three mnodes, a REPLICA 3
database) and two ``mdcache serve`` replicas, each in a network namespace of its own
(tests/partition/netns.py); the workload (8 writers, 8 readers, 2 Subscribe streams) in the
root namespace; each fault applied under load, then healed; the checker over the history
(tests/partition/checker.py): 0 acknowledged records lost, 0 stale or wrong answers, failed
calls UNAVAILABLE or DEADLINE_EXCEEDED in time, each stream complete, once, in order; the
time from the heal to the first successful Write and Read through each replica reported.

One cluster for the four faults (module scope, about 35 s to make), on one xdist worker
(tests/conftest.py). docs/reliability-partitions.md says what each fault is and what a
client sees during it.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mdcache_client import Client, Series

from . import checker
from .history import History
from .netns import Topology, topology, unavailable
from .workload import Workload

# The README's promise (cache/coherence.py): a caller's own Writes at once, any other
# acknowledged Write within --read-freshness (1 s) plus the clocks' allowed skew (50 ms).
# The readers of the workload write nothing, so for them it is the bound.
PROMISE = checker.ReadYourWrites(1_050)
pytestmark = [pytest.mark.cluster, pytest.mark.partition_faults, pytest.mark.timeout(420)]

HOME = os.environ.get("MDCACHE_TEST_TDENGINE_HOME", "")
WARM, HOLD, SETTLE = 5.0, 12.0, 3.0  # seconds of load before the cut, cut, after the heal


@dataclass
class Site:
    topo: Topology
    url: str
    database: str

    @property
    def targets(self) -> dict[str, str]:
        return {r.name: r.target for r in self.topo.replicas}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    if not HOME:
        pytest.skip(
            "MDCACHE_TEST_TDENGINE_HOME is not set (a TDengine bundle with tdengine-start; "
            "scripts/with-tdengine sets it)"
        )
    from mdcache_server.store.tdengine import TDengineStore

    with topology(tmp_path_factory.mktemp("partitions"), Path(HOME)) as topo:
        topo.start_cluster()
        database = f"mdcache_part_{uuid.uuid4().hex[:8]}"
        url = topo.url(database, replica="3", vgroups="1")
        conn = TDengineStore.from_url(url).connect()
        try:
            conn.ensure_schema()
        finally:
            conn.close()
        topo.start_replicas(url)
        yield Site(topo, url, database)


def stored(site: Site, tag: str) -> dict[Series, dict[int, str]]:
    """Every record of the run's series in TDengine, read from the root namespace."""
    columns = "symbol, data_type, timeframe, CAST(ts AS BIGINT), payload"
    where = f"symbol LIKE '{tag}P%'"
    rows = site.topo.query(f"SELECT {columns} FROM {site.database}.records WHERE {where}")  # noqa: S608
    out: dict[Series, dict[int, str]] = {}
    for symbol, data_type, timeframe, ts, payload in rows:
        out.setdefault(Series(symbol, data_type, timeframe), {})[int(ts)] = payload
    return out


def serving_again(site: Site, workload: Workload, history: History, seconds: float = 60) -> None:
    """Waits until, after the heal, each replica acknowledged a Write and answered a Read."""
    started = time.monotonic()
    names = list(site.targets)
    while time.monotonic() - started < seconds:
        times = checker.recovery(history, names)
        if all(v is not None for row in times.values() for v in row.values()):
            return
        time.sleep(0.5)


def run(
    site: Site,
    request: pytest.FixtureRequest,
    tag: str,
    fault: Callable[[History], Callable[[], None]],
) -> dict[str, Any]:
    """The workload; after WARM s ``fault`` cuts (returning its heal), HOLD s later the
    heal; the checker over the history once every replica serves again."""
    site.topo.whole()
    site.topo.restart_replicas()
    assert not site.topo.crashes, f"before {tag}: {site.topo.crashes}"
    history = History()
    workload = Workload(tag, site.targets, history)
    workload.start()
    try:
        time.sleep(WARM)
        heal = fault(history)
        time.sleep(HOLD)
        heal()
        history.mark("heal", time.monotonic())
        time.sleep(SETTLE)
        serving_again(site, workload, history)
    finally:
        site.topo.heal()
        workload.stop()
        drained = workload.drain(20)  # also closes the streams and clients
    site.topo.whole()
    found = site.topo.wait_for(lambda: stored(site, tag))
    names = list(site.targets)
    report = {
        "fault": tag,
        **history.summary(),
        "recovery_s": checker.recovery(history, names),
        "drain_s": round(drained, 2),
    }
    violations = checker.check(history, found, PROMISE)
    crashed = [c for c in (r.crashed() for r in site.topo.replicas) if c]
    assert not crashed, f"{tag}: {crashed}"  # a replica that died under a fault
    report["violations"] = len(violations)
    text = json.dumps(report, indent=1, ensure_ascii=False)
    print(text)  # noqa: T201 (the figures the issue asks for, in the test's output)
    request.node.user_properties.append(("partition", text))
    request.node.add_report_section("call", "partition", text)
    if violations:
        dump = Path(site.topo.folder) / f"history-{tag}.jsonl"
        dump.write_text(history.dump())
        shown = "\n".join(f"{v.rule}: {v.detail}" for v in violations[:30])
        message = f"{len(violations)} violation(s) (history in {dump}):\n{shown}"
        raise AssertionError(message)
    return report


def test_leader_cut_from_the_other_nodes(site: Site, request: pytest.FixtureRequest) -> None:
    """(1) The node holding the database's vnode leader cut from the other two nodes (a
    minority partition: blackhole routes both ways); replicas and clients still reach it.
    (Before main's super table topic, 4af3ef6, both replicas' feeds stayed silent after the
    heal in 5 runs of 5: docs/reliability-partitions.md.)"""

    def fault(history: History) -> Callable[[], None]:
        leader = site.topo.leader_node(site.database)
        others = [n for n in site.topo.nodes if n is not leader]
        cut = site.topo.cut_between(
            [(leader.ns, leader.address)], [(n.ns, n.address) for n in others]
        )
        history.mark("cut", time.monotonic(), f"{leader.name} from the other nodes")
        return cut.heal

    run(site, request, "F1", fault)


def test_replica_cut_from_tdengine(site: Site, request: pytest.FixtureRequest) -> None:
    """(2) One replica's link to TDengine down (bridge B); its clients' link (bridge A) up."""

    def fault(history: History) -> Callable[[], None]:
        cut = site.topo.cut_from_store(site.topo.replicas[0])
        history.mark("cut", time.monotonic(), "r1 from every TDengine node")
        return cut.heal

    run(site, request, "F2", fault)


def test_replica_cut_from_the_feed_leader(site: Site, request: pytest.FixtureRequest) -> None:
    """(3) The change feed is TDengine's TMQ, over the same links as the store: there is no
    feed between replicas to cut alone. The closest honest fault: one replica cut from the
    node holding the vnode leader (whose WAL its TMQ consumer reads, and where its Writes go),
    while it still reaches the other two nodes (the mnodes there) and its clients."""

    def fault(history: History) -> Callable[[], None]:
        leader = site.topo.leader_node(site.database)
        replica = site.topo.replicas[1]
        cut = site.topo.cut_between(
            [(replica.ns, f"{site.topo.net_b}.12")], [(leader.ns, leader.address)]
        )
        history.mark("cut", time.monotonic(), f"r2 from {leader.name}")
        return cut.heal

    run(site, request, "F3", fault)


def test_node_cut_killed_restarted_while_cut(site: Site, request: pytest.FixtureRequest) -> None:
    """(4) The leader's node cut (its link down), killed, started again while still cut,
    then its link brought back up. (Until 2026-12-07 a stream gave 1 to 6 records twice,
    about 12 s after the restart: libtaos had sent a Write's submit again to the vgroup's
    new leader, and both were applied; the hub now leaves a same-value repeat out.)"""

    def fault(history: History) -> Callable[[], None]:
        node = site.topo.leader_node(site.database)
        cut = site.topo.isolate(node)
        history.mark("cut", time.monotonic(), f"{node.name} link down")
        time.sleep(3)
        node.kill()
        history.mark("kill", time.monotonic(), node.name)
        time.sleep(2)
        starting = node.start_background()
        history.mark("restart", time.monotonic(), f"{node.name} (still cut)")

        def heal() -> None:
            cut.heal()
            assert node.alive(), f"{node.name} restarted while cut did not keep running"
            out, _ = starting.communicate(timeout=180)  # returns once the node answers
            assert starting.returncode == 0, f"{node.name} restarted while cut: {out}"

        return heal

    run(site, request, "F4", fault)


def test_clients_reach_replicas_only_through_the_bridge(site: Site) -> None:
    """The harness itself: the replicas serve on their bridge-A addresses, the root
    namespace reaches them there, and nothing listens for them on loopback."""
    for name, target in site.targets.items():
        assert target.startswith(site.topo.net_a), (name, target)
        with Client(target, timeout=10) as client:
            client.stats()
