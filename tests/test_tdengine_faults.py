"""Durability and outages on a real TDengine: the promises SQLite keeps, kept here too.

- ``mdcache serve`` killed under a write load: every acknowledged record is in TDengine.
- ``taosd`` itself killed under that load and started again on its folder: every record
  acknowledged before the kill is there (WAL_LEVEL 2, WAL_FSYNC_PERIOD 0).
- ``taosd`` stopped while serving: calls answer UNAVAILABLE within their deadline, health
  turns NOT_SERVING; ``taosd`` back: the service recovers by itself.
- ``mdcache serve`` started before ``taosd`` waits for it within ``--startup-timeout``.
- A subscriber on one replica gets every write through another across a ``taosd`` restart.

Records are read back with taospy directly, not through mdcache.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.poll import wait_until
from mdcache_client import Client, Record, Series, UnavailableError

from .conftest import tdengine_test_url
from .process import ServerProcess
from .taosd import Taosd
from .test_reliability import health, run_writers

pytestmark = [pytest.mark.tdengine, pytest.mark.timeout(240)]


def stored(url: str) -> dict[str, list[tuple[int, str]]]:
    """Every record of the URL's database, by symbol, read with taospy itself."""
    import taos

    from mdcache_server.store.tdengine import parse_url

    options = parse_url(url)
    conn = taos.connect(
        host=options.host, port=options.port, user=options.user, password=options.password
    )
    try:
        rows = conn.query(
            f"SELECT symbol, CAST(ts AS BIGINT), payload FROM {options.database}.records"  # noqa: S608
        ).fetch_all()
    finally:
        conn.close()
    found: dict[str, list[tuple[int, str]]] = {}
    for symbol, ts, payload in sorted(rows):
        found.setdefault(symbol, []).append((ts, payload))
    return found


def recovered(acked: list[list[tuple[int, str]]], found: dict[str, list[tuple[int, str]]]) -> int:
    kept = {name: set(rows) for name, rows in found.items()}
    return sum(1 for i, a in enumerate(acked) for rec in a if rec in kept.get(f"W{i}", set()))


def serve(url: str, *args: str) -> ServerProcess:
    return ServerProcess("--store", url, "--health-interval", "0.2", *args)


@pytest.fixture
def url() -> Iterator[str]:
    """A database of the test's own on the suite's TDengine server."""
    yield from tdengine_test_url()


@pytest.fixture
def taosd(tmp_path: Path) -> Iterator[Taosd]:
    """A taosd of the test's own, running; stopped afterwards whatever happened."""
    server = Taosd(tmp_path / "taosd")
    server.start()
    try:
        yield server
    finally:
        server.discard()


def test_nothing_acknowledged_is_lost_when_mdcache_is_killed_under_load(url: str) -> None:
    server = serve(url)
    try:
        server.wait_serving(60)
        acked, stop, threads = run_writers(server.target, 8)
        wait_until(lambda: sum(len(a) for a in acked) > 150, 60)  # under load
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(30)
        stop.set()
        for t in threads:
            t.join(10)
    finally:
        server.kill()
    acknowledged = sum(len(a) for a in acked)
    found = stored(url)
    assert acknowledged > 100, "the load was too light to show anything"
    assert recovered(acked, found) == acknowledged
    for i, a in enumerate(acked):  # byte for byte, and nothing but what was sent
        assert set(a) <= set(found[f"W{i}"])
        assert len(found[f"W{i}"]) <= len(a) + 1  # at most the one write cut by the kill


def test_nothing_acknowledged_is_lost_when_taosd_is_killed_under_load(taosd: Taosd) -> None:
    url = taosd.url()
    server = serve(url)
    try:
        server.wait_serving(60)
        acked, stop, threads = run_writers(server.target, 8)
        wait_until(lambda: sum(len(a) for a in acked) > 150, 60)  # under load
        taosd.kill(signal.SIGKILL)
        killed_at = sum(len(a) for a in acked)
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        server.kill()
    acknowledged = sum(len(a) for a in acked)
    assert acknowledged >= killed_at > 100, "the load was too light to show anything"
    taosd.start()  # on the same folder: the WAL is replayed
    found = stored(url)
    assert recovered(acked, found) == acknowledged


def test_a_stopped_taosd_is_unavailable_in_time_and_the_service_recovers_by_itself(
    taosd: Taosd,
) -> None:
    series = Series("600519", "kline", "1d")
    bars = [Record(1_700_000_000_000 + i * 86_400_000, f'{{"close": {i}}}') for i in range(10)]
    server = serve(taosd.url(), "--hot-tier-bytes", "0")
    try:
        server.wait_serving(60)
        with Client(server.target, timeout=4) as client:
            assert client.write(series, bars) == 10
            taosd.stop()
            for call in (lambda: client.read(series), lambda: client.write(series, bars)):
                started = time.monotonic()
                with pytest.raises(UnavailableError):
                    call()
                assert time.monotonic() - started < 4  # UNAVAILABLE, not DEADLINE_EXCEEDED
            wait_until(lambda: health(server.target) == "NOT_SERVING", 20)
            taosd.start()
            wait_until(lambda: health(server.target) == "SERVING", 30)
            assert [r.ts_ms for r in client.read(series).records] == [b.ts_ms for b in bars]
            assert client.write(series, bars[:1]) == 1
        assert server.proc.poll() is None  # the same process throughout
    finally:
        server.kill()


def test_a_server_started_before_taosd_waits_for_it(tmp_path: Path) -> None:
    taosd = Taosd(tmp_path / "taosd")
    server = serve(taosd.url(), "--startup-timeout", "120")
    try:
        server.wait_event("store_not_ready", 30)
        taosd.start()
        server.wait_serving(90)
        with Client(server.target, timeout=10) as client:
            series = Series("AAPL", "kline", "1d")
            assert client.write(series, [Record(1_700_000_000_000, '{"close": 1}')]) == 1
            assert len(client.read(series).records) == 1
    finally:
        server.kill()
        taosd.discard()


def test_a_server_gives_up_on_a_missing_taosd_after_its_startup_timeout(tmp_path: Path) -> None:
    taosd = Taosd(tmp_path / "taosd")  # never started
    server = serve(taosd.url(), "--startup-timeout", "3")
    try:
        assert server.proc.wait(60) != 0
    finally:
        server.kill()
    assert any("store not ready" in line for line in server.lines)


def test_a_subscriber_gets_every_write_of_another_replica_across_a_taosd_restart(
    taosd: Taosd,
) -> None:
    """Written through one replica, subscribed through another; ``taosd`` stopped and
    started in between: every record reaches the subscriber once, in order (the TDengine
    consumer goes on from where it was, or the client replays from the store)."""
    series = Series("600519", "quote", "tick")
    bars = [Record(1_700_000_000_000 + i, f'{{"price": {1688 + i}}}') for i in range(10)]
    writer, reader = serve(taosd.url()), serve(taosd.url())
    got: list[Record] = []
    following = threading.Event()

    def subscribe() -> None:
        with Client(reader.target, timeout=10) as client, client.subscribe([series]) as sub:
            following.set()
            for change in sub:
                got.append(change.record)
                if len(got) >= len(bars):
                    return

    try:
        writer.wait_serving(60)
        reader.wait_serving(60)
        subscriber = threading.Thread(target=subscribe, daemon=True)
        subscriber.start()
        assert following.wait(30)
        with Client(writer.target, timeout=4) as client:
            for bar in bars[:5]:
                assert client.write(series, [bar]) == 1
            wait_until(lambda: len(got) == 5, 20)
            taosd.stop()
            time.sleep(2)
            taosd.start()
            wait_until(lambda: health(writer.target) == "SERVING", 30)
            for bar in bars[5:]:
                for _ in range(50):  # the first writes may meet vnodes still starting
                    try:
                        assert client.write(series, [bar]) == 1
                        break
                    except UnavailableError:
                        time.sleep(0.2)
        subscriber.join(60)
        assert got == bars
        assert writer.proc.poll() is None
        assert reader.proc.poll() is None  # the same processes throughout
    finally:
        writer.kill()
        reader.kill()
