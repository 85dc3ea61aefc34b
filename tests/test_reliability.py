"""Faults against a real server process: a full disk, SIGKILL under load, SIGTERM under load,
a flood of calls. Nothing acknowledged is lost; failures are clean statuses; it recovers."""

from __future__ import annotations

import json
import resource
import signal
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.poll import wait_until
from mdcache.v1 import cache_pb2 as pb
from mdcache_client import Client, MdcacheError, Record, Series, UnavailableError

from .market_data import sse_daily_2019
from .process import ServerProcess


def health(target: str) -> str:
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        except grpc.RpcError as exc:
            return str(exc.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess("--data-dir", str(tmp_path), "--health-interval", "0.2")
    try:
        process.wait_serving()
        yield process
    finally:
        process.kill()


def test_a_full_disk_is_unavailable_and_not_serving_then_recovers(server: ServerProcess) -> None:
    series, bars = sse_daily_2019()
    with Client(server.target, timeout=5) as client:
        client.write(series, bars[:100])
        # The server may now write no byte past the first of any file: a disk fuller than full
        # (even the WAL index cannot be written, so new connections fail too).
        unlimited = resource.RLIM_INFINITY
        resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (1, unlimited))
        with pytest.raises(UnavailableError, match=r"disk|full|I/O"):
            client.write(series, bars[100:])
        wait_until(lambda: health(server.target) == "NOT_SERVING")
        resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (unlimited, unlimited))
        recovered = wait_until(lambda: health(server.target) == "SERVING")
        assert recovered < 5
        assert client.write(series, bars[100:]) == len(bars) - 100
        assert [r.ts_ms for r in client.read(series).records] == [b.ts_ms for b in bars]


def writer(target: str, name: str, acked: list[tuple[int, str]], stop: threading.Event) -> None:
    """Writes one record a call until stopped; keeps every acknowledged one."""
    series = Series(name, "quote", "tick")
    ts = 1_700_000_000_000
    with Client(target, timeout=5) as client:
        while not stop.is_set():
            ts += 1
            payload = json.dumps({"writer": name, "ts": ts})
            try:
                client.write(series, [Record(ts, payload)])
            except MdcacheError:
                return  # the server went away: this write was never acknowledged
            acked.append((ts, payload))


def run_writers(
    target: str, n: int
) -> tuple[list[list[tuple[int, str]]], threading.Event, list[threading.Thread]]:
    acked: list[list[tuple[int, str]]] = [[] for _ in range(n)]
    stop = threading.Event()
    threads = [
        threading.Thread(target=writer, args=(target, f"W{i}", acked[i], stop)) for i in range(n)
    ]
    for t in threads:
        t.start()
    return acked, stop, threads


def stored(db: Path) -> dict[str, list[tuple[int, str]]]:
    """What the file holds, read with sqlite3 and the generated code, not the server's."""
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT s.symbol, r.ts, r.record FROM records r JOIN series s ON s.id = r.series_id "
        "ORDER BY s.symbol, r.ts"
    ).fetchall()
    conn.close()
    found: dict[str, list[tuple[int, str]]] = {}
    for symbol, ts, record in rows:
        (kept,) = pb.SeriesResult.FromString(record).records  # kept as it is sent
        assert kept.ts_ms == ts
        found.setdefault(symbol, []).append((ts, kept.payload))
    return found


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_nothing_acknowledged_is_lost_when_killed_under_load(
    tmp_path: Path, sig: int, record_property: Callable[[str, object], None]
) -> None:
    server = ServerProcess("--data-dir", str(tmp_path))
    try:
        server.wait_serving()
        acked, stop, threads = run_writers(server.target, 8)
        wait_until(lambda: sum(len(a) for a in acked) > 150, 60)  # under load
        server.proc.send_signal(sig)
        exit_status = server.proc.wait(30)
        stop.set()
        for t in threads:
            t.join(10)
    finally:
        server.kill()
    if sig == signal.SIGTERM:
        assert exit_status == 0
    acknowledged = sum(len(a) for a in acked)
    found = stored(tmp_path / "mdcache.sqlite3")
    recovered = sum(1 for i, a in enumerate(acked) for rec in a if rec in found.get(f"W{i}", ()))
    record_property("acknowledged", acknowledged)
    record_property("recovered", recovered)
    assert acknowledged > 100, "the load was too light to show anything"
    assert recovered == acknowledged, f"{acknowledged} acknowledged, {recovered} recovered"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_flood_is_refused_at_once_with_bounded_memory_then_served(tmp_path: Path) -> None:
    server = ServerProcess(
        "--data-dir",
        str(tmp_path),
        "--workers",
        "2",
        "--max-pending",
        "4",
        "--hot-tier-bytes",
        "0",
    )
    try:
        server.wait_serving()
        series, bars = sse_daily_2019()
        with Client(server.target, timeout=30) as client:
            client.write(series, bars)
        before = rss_kib(server.proc.pid)
        outcomes: list[str] = []
        refused: list[float] = []  # seconds each refusal took
        lock = threading.Lock()

        def flood() -> None:
            with Client(server.target, timeout=30) as client:
                for _ in range(25):
                    started = time.monotonic()
                    try:
                        client.read(series)
                        outcome = "ok"
                    except MdcacheError as exc:
                        outcome = exc.code.name
                    with lock:
                        outcomes.append(outcome)
                        if outcome == "RESOURCE_EXHAUSTED":
                            refused.append(time.monotonic() - started)

        threads = [threading.Thread(target=flood) for _ in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        grown = rss_kib(server.proc.pid) - before
        assert len(outcomes) == 1000
        assert set(outcomes) <= {"ok", "RESOURCE_EXHAUSTED"}
        assert outcomes.count("RESOURCE_EXHAUSTED") > 0
        assert statistics.median(refused) < 1  # refused at once, not queued
        assert max(refused) < 5
        assert outcomes.count("ok") > 0
        assert grown < 100 * 1024, f"RSS grew {grown} KiB"
        assert health(server.target) == "SERVING"
        with Client(server.target) as client:
            assert len(client.read(series).records) == len(bars)
    finally:
        server.kill()
