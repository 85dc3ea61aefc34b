"""The operator's kit of deploy/: Prometheus rules checked and unit-tested with promtool, then
a real Prometheus scraping a real ``mdcache serve``: every recording rule and every query of
the Grafana dashboard answers series, and the outage alerts go pending."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.ports import free_port
from mdcache_client import AsyncClient, Client, MdcacheError, Record, Series

from .monitoring import GRAFANA_DIR, PROMETHEUS_DIR, binary
from .process import ServerProcess

RULES = PROMETHEUS_DIR / "mdcache-rules.yml"
RULE_TESTS = PROMETHEUS_DIR / "mdcache-rules.test.yml"
DASHBOARD = GRAFANA_DIR / "dashboards" / "mdcache.json"
ROWS = ["Traffic and latency", "Hits", "Store and pool", "Hot tier", "Maintenance", "Replicas"]
# Metrics that dashboard queries and alerts use but another change adds to the server
# (issue 14: the background jobs' failures). A query of one is checked once it is exported.
NOT_YET_EXPORTED = {"mdcache_background_failures_total"}


def alerts() -> list[str]:
    return re.findall(r"^\s+- alert: (\w+)$", RULES.read_text(), re.MULTILINE)


def records() -> list[str]:
    return re.findall(r"^\s+- record: (\S+)$", RULES.read_text(), re.MULTILINE)


def dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]


def test_the_rules_and_the_config_pass_promtool_check() -> None:
    promtool = binary("promtool")
    checked = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alerts()) + len(records())} rules found" in checked.stdout
    config = PROMETHEUS_DIR / "prometheus.yml"
    checked = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    tested = subprocess.run(
        [binary("promtool"), "test", "rules", str(RULE_TESTS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # Each evaluation of the unit tests expects alerts (exp_alerts) or expects none.
    firing: set[str] = set()
    quiet: set[str] = set()
    for item in re.split(r"\n\s+- eval_time: ", RULE_TESTS.read_text())[1:]:
        item = item.split("\n  - name: ")[0]
        name = re.search(r"alertname: (\w+)", item)
        assert name is not None, item
        (firing if "exp_alerts:" in item else quiet).add(name[1])
    assert firing == quiet == set(alerts())


def test_every_alert_says_what_is_wrong_and_what_to_do() -> None:
    text = RULES.read_text()
    blocks = re.split(r"\n      - alert: ", text)[1:]
    assert len(blocks) == len(alerts()) >= 12
    for block in blocks:
        name = block.split("\n", 1)[0]
        assert "severity:" in block, name
        assert "summary:" in block, name
        assert "action: >-" in block, name


def test_the_dashboard_has_a_row_per_concern_on_the_provisioned_datasource() -> None:
    board = json.loads(DASHBOARD.read_text())
    rows = [panel["title"] for panel in board["panels"] if panel["type"] == "row"]
    assert rows == ROWS
    provisioned = (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text()
    uid = re.search(r"uid: (\S+)", provisioned)
    assert uid is not None
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": uid[1]}, panel["title"]
        assert panel["targets"], panel["title"]
        assert panel.get("description"), panel["title"]
    provider = (GRAFANA_DIR / "provisioning" / "dashboards" / "mdcache.yml").read_text()
    assert "path: /etc/grafana/dashboards" in provider


def test_a_missing_binary_is_skipped_but_fails_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="promtool is not installed"):
        binary("promtool")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true, so the test fails"):
        binary("promtool")


def test_compose_wires_the_metrics_prometheus_and_grafana_together() -> None:
    compose = (PROMETHEUS_DIR.parent.parent / "docker-compose.yml").read_text()
    listen = re.search(r"MDCACHE_METRICS_LISTEN: \S+:(\d+)", compose)
    target = re.search(
        r"targets: \['mdcache:(\d+)'\]", (PROMETHEUS_DIR / "prometheus.yml").read_text()
    )
    assert listen is not None
    assert target is not None
    assert listen[1] == target[1]
    assert "./deploy/prometheus:/etc/prometheus:ro" in compose
    assert "--config.file=/etc/prometheus/prometheus.yml" in compose
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in compose
    assert "./deploy/grafana/dashboards:/etc/grafana/dashboards:ro" in compose
    assert compose.count("      - monitoring\n") == 2  # both only in the profile


# The end-to-end test ---------------------------------------------------------------------


class Prometheus:
    """A real ``prometheus`` scraping one target every second, with the repository's rules."""

    def __init__(self, workdir: Path, target: str) -> None:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "mdcache", "static_configs": [{"targets": [target]}]}],
        }
        path = workdir / "prometheus.yml"
        path.write_text(json.dumps(config))  # JSON is YAML
        self.port = free_port()
        self.log = (workdir / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={path}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.get("/api/v1/query", query=expr)
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, Path(self.log.name).read_text()
            try:
                if self.query('up{job="mdcache"} == 1'):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(
            "prometheus did not scrape mdcache:\n" + Path(self.log.name).read_text()
        )

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


@pytest.fixture
def prometheus_scraping_mdcache(tmp_path: Path) -> Iterator[tuple[Prometheus, ServerProcess, Path]]:
    binary("prometheus")
    db = tmp_path / "cache.sqlite3"
    server = ServerProcess(
        f"--store=sqlite:///{db}?busy_timeout_ms=300",
        "--metrics-listen=127.0.0.1:0",
        "--workers=1",
        "--max-pending=1",
        "--hot-tier-bytes=2000",
    )
    prometheus: Prometheus | None = None
    try:
        server.wait_serving()
        metrics_port = int(server.wait_event("metrics")["port"])
        prometheus = Prometheus(tmp_path, f"127.0.0.1:{metrics_port}")
        prometheus.wait_ready()
        yield prometheus, server, db
    finally:
        if prometheus is not None:
            prometheus.close()
        server.kill()


def traffic(target: str, stop: threading.Event, quiet: threading.Event) -> None:
    """Writes, hits, misses (some of them evicting from the small hot tier), a bad call and a
    Purge, about five times a second, but not while ``quiet`` is set."""
    bars = [Record(1_262_563_200_000 + i, '{"close": 107.4}') for i in range(5)]
    with Client(target, timeout=10, max_attempts=1) as client:
        n = 0
        while not stop.is_set():
            if quiet.is_set():
                stop.wait(0.05)
                continue
            n += 1
            series = Series(f"S{n % 4}", "kline", "1d")
            try:
                client.write(series, bars)
                client.read(series)
                client.read(Series("NEVER", "kline", "1d"))
                if n % 5 == 0:
                    client.purge(symbol="NEVER")
                    client.read(Series("", "kline", "1d"))  # INVALID_ARGUMENT
            except MdcacheError:
                pass  # an outage of the test's own making
            stop.wait(0.2)


async def outage(target: str, db: Path) -> list[str]:
    """Another process holds the SQLite write lock: a Write waits for it and fails
    UNAVAILABLE, a cold Read takes the one queue place, and a Stats is refused."""
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        async with AsyncClient(target, timeout=10, max_attempts=1) as client:
            write = asyncio.create_task(client.write(Series("X", "kline", "1d"), [Record(1, "1")]))
            await asyncio.sleep(0.05)
            read = asyncio.create_task(client.read(Series("Y", "kline", "1d")))
            await asyncio.sleep(0.05)
            results = await asyncio.gather(write, read, client.stats(), return_exceptions=True)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    return [r.code.name if isinstance(r, MdcacheError) else "OK" for r in results]


def test_prometheus_scrapes_mdcache_and_the_rules_and_the_dashboard_answer(
    prometheus_scraping_mdcache: tuple[Prometheus, ServerProcess, Path],
) -> None:
    prometheus, server, db = prometheus_scraping_mdcache
    stop, quiet = threading.Event(), threading.Event()
    driver = threading.Thread(target=traffic, args=(server.target, stop, quiet))
    driver.start()
    try:
        for _ in range(3):  # three outages a few scrapes apart: their counters move
            time.sleep(1.5)
            quiet.set()
            time.sleep(0.3)  # the traffic's calls in flight end
            outcomes = asyncio.run(outage(server.target, db))
            quiet.clear()
            # (a background store call, e.g. the health probe, may take the queue place)
            assert outcomes[0] == "UNAVAILABLE"
            assert outcomes[2] == "RESOURCE_EXHAUSTED"

        def answered(expr: str) -> list[dict[str, Any]]:
            deadline = time.monotonic() + 15
            while not (found := prometheus.query(expr)) and time.monotonic() < deadline:
                time.sleep(0.25)
            return found

        for record in records():
            found = answered(record)
            assert found, f"the recording rule {record} has no series"
        assert float(answered("mdcache:calls_refused:rate5m > 0")[0]["value"][1]) > 0
        assert float(answered("mdcache:calls_unavailable:ratio_rate5m > 0")[0]["value"][1]) > 0
        ratio = float(answered("mdcache:series_reads_hit_ratio:rate5m")[0]["value"][1])
        assert 0 < ratio < 1  # the writes' series hit, NEVER misses
        assert answered("mdcache:store_reconnects:increase10m > 0")
        assert answered('mdcache:call_duration_seconds:p99_5m{method="Read"} > 0')
        # The outage alerts see it (they fire only after their `for`, minutes).
        pending = answered('ALERTS{alertname="MdcacheCallsRefused"}')
        assert pending[0]["metric"]["alertstate"] == "pending"

        exported = set(prometheus.get("/api/v1/label/__name__/values")["data"])
        for title, expr in dashboard_queries():
            used = set(re.findall(r"\b(mdcache_[a-z_]+|mdcache:[a-z0-9_:]+)", expr))
            missing = {name for name in used if name not in exported}
            if missing:
                assert missing <= NOT_YET_EXPORTED, f"{title}: {expr} uses unknown {missing}"
                continue
            assert answered(expr), f"the dashboard panel {title!r} has no series: {expr}"
    finally:
        stop.set()
        driver.join(30)
