"""Prometheus metrics: one registry per server, served over HTTP when configured.

``Metrics`` is built with the server and passed to what it observes (the servicer
counts calls and series reads, the worker pool times store calls); gauges of the
pool and the hot tier, and the counters the alerting rules of ``deploy/prometheus/``
watch (health, hot-tier evictions, store reconnects), are read when scraped.
``MetricsEndpoint`` serves the registry on ``--metrics-listen`` (``/metrics``, the
Prometheus text format).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from mdcache_server.config import split_host_port
from mdcache_server.pool import WorkerPool

log = structlog.get_logger(__name__)

# From half a millisecond (a hot-tier read) to ten seconds (a large write on a busy store).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BUCKET_NAMES = (*(repr(float(b)) for b in LATENCY_BUCKETS), "+Inf")  # as prometheus_client's


@dataclass(slots=True)
class CallTally:
    """Calls of one method and status: count, summed seconds and a latency histogram."""

    count: int = 0
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))


class _CallCollector(Collector):
    """The per-call counters, read when scraped: counted in plain integers on the event
    loop (a prometheus_client child takes a lock per update, about 2 µs a call)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        tallies = list(self.metrics.tallies.items())
        calls = CounterMetricFamily(
            "mdcache_calls",
            "gRPC calls answered, by method and status",
            labels=["method", "status"],
        )
        seconds = HistogramMetricFamily(
            "mdcache_call_duration_seconds",
            "Time to answer a gRPC call, by method and status",
            labels=["method", "status"],
        )
        for (method, status), tally in tallies:
            calls.add_metric([method, status], tally.count)
            cumulative, buckets = 0, []
            for bound, n in zip((*LATENCY_BUCKETS, float("inf")), tally.buckets, strict=True):
                cumulative += n
                buckets.append(
                    ("+Inf" if bound == float("inf") else repr(float(bound)), cumulative)
                )
            seconds.add_metric([method, status], buckets, tally.seconds)
        reads = CounterMetricFamily(
            "mdcache_series_reads",
            "Series read, by result: hit (records found) or miss",
            labels=["result"],
        )
        reads.add_metric(["hit"], self.metrics.series_hits)
        reads.add_metric(["miss"], self.metrics.series_misses)
        resampled = CounterMetricFamily(
            "mdcache_resampled_reads",
            "Series reads answered with bars resampled to a coarser timeframe",
            value=self.metrics.resampled_reads,
        )
        yield from (calls, seconds, reads, resampled)


class _OperationsCollector(Collector):
    """Health, hot-tier evictions and store reconnects, read when scraped."""

    def __init__(
        self,
        serving: Callable[[], bool | None],
        evictions: Callable[[], int],
        reconnects: Callable[[], int],
    ) -> None:
        self.serving = serving
        self.evictions = evictions
        self.reconnects = reconnects

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "mdcache_health_serving",
            "1 while gRPC health is SERVING (the store answers its probe), else 0",
            value=1 if self.serving() else 0,
        )
        yield CounterMetricFamily(
            "mdcache_hot_tier_evictions",
            "Series evicted from the hot tier to make room (least recently used first)",
            value=self.evictions(),
        )
        yield CounterMetricFamily(
            "mdcache_store_reconnects",
            "Store connections dropped after an outage, to be opened anew by the next call",
            value=self.reconnects(),
        )


class Metrics:
    """The server's metrics, in a registry of their own (never the global default one)."""

    def __init__(self) -> None:
        self.tallies: dict[tuple[str, str], CallTally] = {}
        self.series_hits = 0
        self.series_misses = 0
        self.resampled_reads = 0
        self.registry = CollectorRegistry()
        r = self.registry
        r.register(_CallCollector(self))
        self.store_seconds = Histogram(  # observed on worker threads: the locked kind
            "mdcache_store_call_duration_seconds",
            "Time of a store call on the worker pool, waiting for a worker included",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.store_calls = Counter(
            "mdcache_store_calls",
            "Store calls on the worker pool, by kind (read, fill, write, purge, ...): a run of "
            "hot Reads adds none",
            labelnames=["kind"],
            registry=r,
        )
        self.background_failures = Counter(
            "mdcache_background_failures",
            "Background jobs that failed unexpectedly (each is logged and restarted), by job",
            labelnames=["job"],
            registry=r,
        )

    def call(self, method: str, status: str, seconds: float) -> None:
        """One gRPC call answered (on the event loop thread)."""
        tally = self.tallies.get((method, status))
        if tally is None:
            tally = self.tallies[(method, status)] = CallTally()
        tally.count += 1
        tally.seconds += seconds
        tally.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def reads(self, hits: Sequence[bool]) -> None:
        """The series of one Read: each a hit (records found) or a miss."""
        found = sum(hits)
        self.series_hits += found
        self.series_misses += len(hits) - found

    def background_failure(self, job: str) -> None:
        """A background job failed unexpectedly (the supervisor restarts it)."""
        self.background_failures.labels(job=job).inc()

    def store_call(self, seconds: float, kind: str = "other") -> None:
        self.store_seconds.observe(seconds)
        self.store_calls.labels(kind).inc()

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

    def watch_operations(
        self,
        *,
        serving: Callable[[], bool | None],
        evictions: Callable[[], int],
        reconnects: Callable[[], int],
    ) -> None:
        """What the alerting rules watch, read at scrape time: health (SERVING or not),
        hot-tier evictions and store reconnects."""
        self.registry.register(_OperationsCollector(serving, evictions, reconnects))

    def watch_feed(
        self, *, lag: Callable[[], float], marks: Callable[[], int], from_store: Callable[[], int]
    ) -> None:
        """Replicas sharing a store (``cache/coherence.py``), read at scrape time."""
        r = self.registry
        Gauge(
            "mdcache_feed_lag_seconds",
            "Age of the change feed's watermark: held copies answer while it is within the "
            "freshness bound (+Inf until the first mark came back)",
            registry=r,
        ).set_function(lag)
        Gauge(
            "mdcache_feed_marks", "Marks taken in the change feed (rounds)", registry=r
        ).set_function(marks)
        Gauge(
            "mdcache_feed_reads_from_store",
            "Reads of the hot tier's series answered from the store: the feed was behind the "
            "bound, the session's token or a strict Read's round",
            registry=r,
        ).set_function(from_store)


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
