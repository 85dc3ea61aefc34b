"""The ``mdcache`` process as an operator runs it: start-up, health, signals, exit status."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.poll import wait_until
from mdcache_client import Client, Record, Series

from .market_data import sse_minutes_20190201
from .process import MDCACHE, ServerProcess
from .test_metrics import scrape, value


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_serves_on_the_default_sqlite_file_under_the_data_dir(data_dir: Path) -> None:
    server = ServerProcess("--data-dir", str(data_dir))
    try:
        server.wait_serving()
        serving = server.wait_event("serving")
        assert serving["store"] == "sqlite"
        assert (data_dir / "mdcache.sqlite3").is_file()
        check = subprocess.run(
            [*MDCACHE, "health", "--target", server.target],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert (check.returncode, check.stdout.strip()) == (0, f"{server.target}: SERVING")
    finally:
        server.kill()


def test_environment_configures_the_server(tmp_path: Path) -> None:
    db = tmp_path / "elsewhere" / "cache.db"
    server = ServerProcess(env={"MDCACHE_STORE_URL": f"sqlite:///{db}", "MDCACHE_WORKERS": "2"})
    try:
        server.wait_serving()
        assert server.wait_event("serving")["workers"] == 2
        assert db.is_file()
    finally:
        server.kill()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_in_flight_calls_then_exits_0(data_dir: Path, sig: int) -> None:
    """A Write blocked on a lock when the signal comes still completes, and is durable."""
    quiet = ("--health-interval", "3600", "--usage-flush-interval", "3600")  # no other call
    metrics = ("--metrics-listen", "127.0.0.1:0")
    server = ServerProcess("--data-dir", str(data_dir), "--grace", "20", *quiet, *metrics)
    series, bars = sse_minutes_20190201()
    try:
        server.wait_serving()
        channel = grpc.insecure_channel(server.target)
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING

        blocker = sqlite3.connect(data_dir / "mdcache.sqlite3", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the server's Write waits for this lock
        written: list[int] = []
        with Client(server.target, timeout=30) as client:
            writer = threading.Thread(target=lambda: written.append(client.write(series, bars)))
            writer.start()
            port = int(server.wait_event("metrics")["port"])
            in_flight = lambda: value(scrape(port), "mdcache_pool_in_flight")  # noqa: E731
            wait_until(lambda: in_flight() >= 1, 10)  # the Write waits for the lock
            server.proc.send_signal(sig)
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()  # an open Watch stream would hold the drain for the whole grace
            with pytest.raises(grpc.RpcError) as refused:  # new calls are refused
                health_pb2_grpc.HealthStub(grpc.insecure_channel(server.target)).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            blocker.execute("ROLLBACK")
            writer.join(30)
        assert written == [len(bars)]
        started = time.monotonic()
        assert server.proc.wait(30) == 0
        assert time.monotonic() - started < 10  # drained as soon as the Write was done
        assert server.wait_event("stopped")
        channel.close()
    finally:
        server.kill()

    rows = sqlite3.connect(data_dir / "mdcache.sqlite3").execute("SELECT COUNT(*) FROM records")
    assert rows.fetchone()[0] == len(bars)


def test_restarted_process_serves_what_it_acknowledged(data_dir: Path) -> None:
    series = Series("600519", "kline", "1d")
    first = ServerProcess("--data-dir", str(data_dir))
    try:
        first.wait_serving()
        with Client(first.target) as client:
            client.write(series, [Record(1_262_563_200_000, '{"close": 107.4}')])
        assert first.terminate() == 0
    finally:
        first.kill()
    second = ServerProcess("--data-dir", str(data_dir))
    try:
        second.wait_serving()
        with Client(second.target) as client:
            assert client.read(series).records == [Record(1_262_563_200_000, '{"close": 107.4}')]
    finally:
        second.kill()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--workers", "0"], {}, "--workers='0': must be a positive integer"),
        ([], {"MDCACHE_LOG_LEVEL": "loud"}, "MDCACHE_LOG_LEVEL='loud': must be one of"),
        (["--store", "redis://localhost"], {}, "unsupported scheme 'redis'"),
        (["--store", "sqlite://"], {}, "sqlite URL needs a file path"),
        (
            ["--processes", "2", "--subscribe-relay", "off"],
            {},
            "--subscribe-relay off with --processes above 1",
        ),
    ],
)
def test_bad_configuration_exits_2_naming_the_setting(
    args: list[str], env: dict[str, str], message: str
) -> None:
    server = ServerProcess(*args, env=env)
    assert server.proc.wait(30) == 2
    server.kill()
    assert message in "".join(server.lines)


def test_health_command_fails_when_no_server_answers() -> None:
    check = subprocess.run(
        [*MDCACHE, "health", "--target", "127.0.0.1:9", "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert check.returncode == 1
    assert "UNAVAILABLE" in check.stdout


def _call_events(server: ServerProcess) -> list[dict[str, object]]:
    return [e for e in server.events if e.get("event") == "rpc"]


@pytest.mark.parametrize(
    ("args", "logged_ok_level"),
    [
        ((), None),  # default: a fast successful call is not logged at info
        (("--slow-call-ms", "0"), "info"),  # every call is "slow": all at info
        (("--log-level", "debug"), "debug"),  # every call, at debug
    ],
)
def test_calls_are_logged_by_outcome_and_duration(
    data_dir: Path, args: tuple[str, ...], logged_ok_level: str | None
) -> None:
    """Failed calls are always logged (warning); successful ones by the slow-call threshold."""
    server = ServerProcess("--data-dir", str(data_dir), *args)
    try:
        server.wait_serving()
        with Client(server.target) as client:
            client.write(Series("600519.SH", "kline", "1d"), [Record(1_700_000_000_000, "{}")])
            client.stats()
            for _ in range(2):  # the second failure's event comes after every other one
                with pytest.raises(Exception, match="symbol"):
                    client.read(Series("", "kline", "1d"))
        deadline = time.monotonic() + 10
        while sum(e["status"] != "OK" for e in _call_events(server)) < 2:
            assert time.monotonic() < deadline, _call_events(server)
            time.sleep(0.05)
        by_status = {(e["method"], e["status"]): e for e in _call_events(server)}
        failed = by_status[("Read", "INVALID_ARGUMENT")]
        assert failed["level"] == "warning"
        assert "symbol" in str(failed["error"])
        ok = [e for e in _call_events(server) if e["status"] == "OK"]
        if logged_ok_level is None:
            assert ok == []
        else:
            assert {(e["method"], e["level"]) for e in ok} == {
                ("Write", logged_ok_level),
                ("Stats", logged_ok_level),
            }
            assert by_status[("Write", "OK")]["rows"] == 1
    finally:
        server.kill()
