"""Background work that fails unexpectedly is logged, counted and restarted; never silent."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.poll import eventually
from mdcache_client import AsyncClient, Record, Series
from mdcache_server.app import Server, compose
from mdcache_server.store.url import open_store
from mdcache_server.supervisor import Supervisor

from .faults import FaultyStore
from .support import server_config
from .test_metrics import scrape, value

SERIES = Series("600519", "kline", "1d")
RECORDS = [Record(1_262_563_200_000, '{"close": 107.4}')]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def until(check: Callable[[], object], seconds: float = 10) -> None:
    await eventually(check, seconds, interval=0.02)


def stored_hits(url: str) -> int:
    """The hits stored by the server's usage flushes, read on a connection of our own."""
    conn = open_store(url).connect()
    try:
        return sum(u.hits for u in conn.load_usage())
    finally:
        conn.close()


def failures(server: Server, job: str) -> float:
    samples = scrape(server.metrics_endpoint.port)
    return value(samples, "mdcache_background_failures_total", job=job)


async def test_a_job_that_raises_is_logged_counted_restarted_and_the_server_serves(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'cache.sqlite3'}"
    store = FaultyStore(open_store(url), failing={"save_usage", "probe"}, error=RuntimeError)
    config = server_config(
        url,
        usage_flush_interval="0.05",
        health_interval="0.05",
        metrics_listen="127.0.0.1:0",
    )
    parts = compose(config, store.as_store())
    # Parts of the test's own: a store with faults, and restarts at most 0.2 s apart.
    quick = Supervisor(
        count_failure=parts.metrics.background_failure, first_delay=0.05, max_delay=0.2
    )
    server = Server(config, store.as_store(), dataclasses.replace(parts, supervisor=quick))
    with structlog.testing.capture_logs() as events:
        await server.start()
        try:
            async with (
                AsyncClient(f"127.0.0.1:{server.port}") as client,
                grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
            ):
                health = health_pb2_grpc.HealthStub(channel)

                async def status() -> int:
                    answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
                    return int(answer.status)

                assert await status() == SERVING
                store.broken.set()
                await until(lambda: server.supervisor.failures.get("usage-flush", 0) >= 2)
                await until(lambda: server.supervisor.failures.get("health-probe", 0) >= 2)
                assert await status() == NOT_SERVING  # the probe cannot run: not SERVING
                # The rest of the server serves meanwhile.
                assert await client.write(SERIES, RECORDS) == 1
                assert (await client.read(SERIES)).records == RECORDS
                assert failures(server, "usage-flush") >= 2
                assert failures(server, "health-probe") >= 2

                store.broken.clear()
                await until(lambda: server.health.serving is True)
                assert await status() == SERVING
                # The flush job runs again: the read made while it failed reaches the store.
                deadline = time.monotonic() + 10
                while await asyncio.to_thread(stored_hits, url) != 1:
                    assert time.monotonic() < deadline, "the usage flush never came back"
                    await asyncio.sleep(0.05)
                before = server.supervisor.failures["usage-flush"]
                await asyncio.sleep(0.3)  # several flush intervals, none failing
                assert server.supervisor.failures["usage-flush"] == before
        finally:
            await server.stop(grace=1)
    failed = [e for e in events if e["event"] == "background_job_failed"]
    assert {e["job"] for e in failed} == {"usage-flush", "health-probe"}
    for event in failed:
        assert event["log_level"] == "error"
        assert isinstance(event["exc_info"], RuntimeError)
        assert "a fault of the test" in event["error"]
    restarted = {e["job"] for e in events if e["event"] == "background_job_restarted"}
    assert restarted == {"usage-flush", "health-probe"}


async def test_stopping_cancels_every_job_and_logs_what_one_raised_on_the_way() -> None:
    started = asyncio.Event()

    async def stubborn() -> None:
        try:
            started.set()
            await asyncio.sleep(3600)
        finally:
            raise RuntimeError("raised while cancelled")

    supervisor = Supervisor()
    supervisor.add("stubborn", stubborn)
    with structlog.testing.capture_logs() as events:
        await supervisor.start()
        await started.wait()
        await supervisor.stop()
    [failed] = [e for e in events if e["event"] == "background_job_failed"]
    assert failed["job"] == "stubborn"
    assert isinstance(failed["exc_info"], RuntimeError)
    assert not any(e["event"] == "background_job_restarted" for e in events)
