"""Prometheus metrics: one registry per server, served over HTTP when configured.

``Metrics`` is built with the server and passed to what it observes (the servicer
counts calls and series reads, the worker pool times store calls); gauges of the
pool and the hot tier are read when scraped. ``MetricsEndpoint`` serves the
registry on ``--metrics-listen`` (``/metrics``, the Prometheus text format).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from mdcache_server.config import split_host_port
from mdcache_server.pool import WorkerPool

log = structlog.get_logger(__name__)

# From half a millisecond (a hot-tier read) to ten seconds (a large write on a busy store).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """The server's metrics, in a registry of their own (never the global default one)."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.registry = CollectorRegistry()
        r = self.registry
        self.calls = Counter(
            "mdcache_calls",
            "gRPC calls answered, by method and status",
            ["method", "status"],
            registry=r,
        )
        self.call_seconds = Histogram(
            "mdcache_call_duration_seconds",
            "Time to answer a gRPC call, by method and status",
            ["method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.series_reads = Counter(
            "mdcache_series_reads",
            "Series read, by result: hit (records found) or miss",
            ["result"],
            registry=r,
        )
        self._hits = self.series_reads.labels("hit")
        self._misses = self.series_reads.labels("miss")
        self.store_seconds = Histogram(
            "mdcache_store_call_duration_seconds",
            "Time of a store call on the worker pool, waiting for a worker included",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def call(self, method: str, status: str, seconds: float) -> None:
        """One gRPC call answered."""
        children = self._children.get((method, status))
        if children is None:  # labels() costs a lock and a lookup: once per method and status
            children = (self.calls.labels(method, status), self.call_seconds.labels(method, status))
            self._children[(method, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def reads(self, hits: Sequence[bool]) -> None:
        """The series of one Read: each a hit (records found) or a miss."""
        found = sum(hits)
        self._hits.inc(found)
        self._misses.inc(len(hits) - found)

    def store_call(self, seconds: float) -> None:
        self.store_seconds.observe(seconds)

    def watch(self, pool: WorkerPool, hot_tier_bytes: Callable[[], int]) -> None:
        """Gauges read at scrape time: the worker pool's load and the hot tier's size."""
        r, workers = self.registry, pool.workers
        Gauge("mdcache_pool_workers", "Worker threads", registry=r).set(workers)
        Gauge("mdcache_pool_max_pending", "Store calls that may queue", registry=r).set(
            pool.max_pending
        )
        Gauge("mdcache_pool_in_flight", "Store calls running or queued", registry=r).set_function(
            lambda: pool.in_flight
        )
        Gauge(
            "mdcache_pool_queue_depth", "Store calls waiting for a worker", registry=r
        ).set_function(lambda: max(0, pool.in_flight - workers))
        Gauge(
            "mdcache_pool_saturation",
            "Store calls in flight per worker: 1 is every worker busy, above 1 calls queue",
            registry=r,
        ).set_function(lambda: pool.in_flight / workers)
        Gauge(
            "mdcache_hot_tier_bytes", "Bytes held by the in-memory hot tier", registry=r
        ).set_function(hot_tier_bytes)


class MetricsEndpoint:
    """The HTTP server of ``/metrics``, off when ``listen`` is empty."""

    def __init__(self, registry: CollectorRegistry, listen: str) -> None:
        self.registry = registry
        self.listen = listen
        self.port = 0
        self._http: WSGIServer | None = None

    def start(self) -> int:
        """Starts serving on a thread of its own; returns the port (0 when off)."""
        if not self.listen:
            return 0
        host, port = split_host_port(self.listen)
        self._http, _ = start_http_server(port, host, registry=self.registry)
        self.port = self._http.server_port
        log.info("metrics", listen=self.listen, port=self.port, path="/metrics")
        return self.port

    def close(self) -> None:
        """Stops serving (blocks up to half a second: the server's poll interval)."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
