"""The server: its parts composed from the config (:func:`compose`), started and stopped
in order."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import grpc
import structlog
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from mdcache_server import __version__
from mdcache_server.cache import capacity, usage, warming
from mdcache_server.cache.coherence import Coherence
from mdcache_server.cache.hot import HotTier
from mdcache_server.cache.maintenance import apply_retention, every
from mdcache_server.cache.policy import CachePolicy
from mdcache_server.cache.stats import HitStats
from mdcache_server.config import Config
from mdcache_server.errors import MdcacheError, StoreUnavailable
from mdcache_server.health import HealthReporter
from mdcache_server.live.delivery import Delivery, Direct, Relayed
from mdcache_server.live.hub import Hub
from mdcache_server.live.relay import Relay
from mdcache_server.metrics import Metrics, MetricsEndpoint
from mdcache_server.pool import WorkerPool
from mdcache_server.resample.rules import Resampling
from mdcache_server.service import methods
from mdcache_server.service.answers import Answers
from mdcache_server.service.auth import interceptors
from mdcache_server.service.servicer import MarketDataCacheServicer
from mdcache_server.store.base import Claim, Store, StoreConnection, Unclaimed
from mdcache_server.supervisor import Supervisor
from mdcache_server.transport import add_port, options
from mdcache_server.wire import codec

T = TypeVar("T")
log = structlog.get_logger(__name__)
ANSWERS_SHARE = 16  # remembered Read answers take up to 1/16 of the hot tier's bytes, on top


def _prepare(conn: StoreConnection) -> str:
    conn.ensure_schema()
    return conn.server_version()


def live_relay(config: Config, store: Store, hub: Hub) -> Relay | None:
    """The relay of every replica's writes to this server's subscribers, when on."""
    relay = config.subscribe_relay
    if relay == "off" or (relay == "auto" and not store.shared and config.processes < 2):
        return None
    feed = store.change_feed(hub.epoch)
    if feed is None:
        log.warning("subscribe_relay_unsupported", store=store.name)
        return None
    return Relay(feed, hub, config.subscribe_poll_ms / 1000)


@dataclass(frozen=True, slots=True)
class Parts:
    """The server's long-lived parts, built from the configuration by :func:`compose`.

    A test that needs a fault hands the server a part of its own (often the store)."""

    metrics: Metrics
    pool: WorkerPool
    cache: CachePolicy
    health: HealthReporter
    supervisor: Supervisor
    relay: Relay | None  # every replica's writes to the hub, when on (``live_relay``)
    servicer: MarketDataCacheServicer  # with the hub, and the Delivery that feeds it


def compose(config: Config, store: Store) -> Parts:
    """The composition root: every long-lived part of a server over ``store``."""
    metrics = Metrics()
    pool = WorkerPool(
        store,
        workers=config.workers or store.default_workers,  # 0: auto
        max_pending=config.max_pending,
        observe=metrics.store_call,
    )
    cache = CachePolicy(
        pool,
        hot=HotTier(
            capacity_bytes=config.hot_tier_bytes,
            max_age=config.hot_tier_max_age,
            max_series_records=config.hot_tier_max_series_records,
            encode=codec.fields_of,
        ),
        stats=HitStats(replica=config.replica_id),
        retention=config.retention,
        max_group_records=config.max_records_per_write,
    )
    metrics.watch(pool, hot_tier_bytes=lambda: cache.hot.bytes)
    health = HealthReporter(cache, config.health_interval)
    metrics.watch_operations(
        serving=lambda: health.serving,
        evictions=lambda: cache.hot.evictions,
        reconnects=lambda: pool.reconnects,
    )
    hub = Hub(buffer=config.subscribe_buffer)
    relay = live_relay(config, store, hub)
    delivery: Delivery = Direct(hub) if relay is None else Relayed(relay)
    if relay is not None and cache.hot.enabled:  # replicas: copies kept by the change feed
        coherence = Coherence(
            cache.hot,
            relay.mark,
            replica=hub.epoch,
            bound=config.read_freshness,
            skew=config.clock_skew,
            strict=config.read_consistency == "strict",
        )
        relay.follow_always(coherence)
        cache.follow(coherence, relay.note)
        metrics.watch_feed(
            lag=coherence.lag,
            marks=lambda: coherence.rounds,
            from_store=lambda: coherence.served_from_store,
        )
    servicer = MarketDataCacheServicer(
        cache,
        config.limits,
        metrics=metrics,
        slow_call_ms=config.slow_call_ms,
        answers=Answers(config.hot_tier_bytes // ANSWERS_SHARE),
        resampling=Resampling(config.calendars, config.markets, config.summed_fields),
        live=delivery,
    )
    return Parts(
        metrics=metrics,
        pool=pool,
        cache=cache,
        health=health,
        supervisor=Supervisor(count_failure=metrics.background_failure),
        relay=relay,
        servicer=servicer,
    )


class Server:
    """One mdcache server. ``await start()`` returns once it serves; ``await stop()`` drains it.

    It serves the parts it is handed (built by :func:`compose`, with one replaced to
    inject a fault); ``Server(config, store)`` composes them itself. It builds only its
    listeners: the gRPC server and the metrics endpoint."""

    def __init__(self, config: Config, store: Store, parts: Parts | None = None) -> None:
        parts = compose(config, store) if parts is None else parts
        if parts.pool.store is not store:
            raise ValueError("the parts were composed for another store")
        self.config = config
        self.store = store
        self.metrics = parts.metrics
        self.pool = parts.pool
        self.cache = parts.cache
        self.health = parts.health
        self.supervisor = parts.supervisor
        self.relay = parts.relay
        self.servicer = parts.servicer
        self.hub = parts.servicer.hub
        self.metrics_endpoint = MetricsEndpoint(self.metrics.registry, config.metrics_listen)
        self.grpc = grpc.aio.server(
            options=options(config),
            interceptors=interceptors(config.tokens),
            maximum_concurrent_rpcs=config.max_concurrent_calls,
        )
        methods.add_to_server(self.servicer, self.grpc)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, self.grpc)
        names = (
            methods.SERVICE,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, self.grpc)
        self.port = 0
        # Set once the start-up retention run has ended (applied or failed): a record
        # written after it is purged, if its rules expire it, only by the next run.
        self.retention_started = asyncio.Event()
        self.warmed = asyncio.Event()  # the start-up warming done (or given up)
        self.claim: Claim = Unclaimed()  # this server's place among the store's (start)

    async def _when_ready(self, deadline: float, step: Callable[[], Awaitable[T]]) -> T:
        """Runs a start-up step, retrying a store that is not ready until the start-up
        deadline (a cluster still electing leaders fails each step for seconds)."""
        delay, attempt = 0.25, 0
        while True:
            attempt += 1
            try:
                return await step()
            except StoreUnavailable as exc:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StoreUnavailable(
                        f"store not ready after {attempt} attempts in "
                        f"{self.config.startup_timeout:g}s: {exc}"
                    ) from exc
                log.warning("store_not_ready", attempt=attempt, error=str(exc), retry_in=delay)
                await asyncio.sleep(min(delay, remaining))
                delay = min(delay * 2, 5.0)

    async def _prepare_store(self, deadline: float | None = None) -> str:
        """Creates the schema, retrying a store that is not ready until the deadline."""
        if deadline is None:
            deadline = time.monotonic() + self.config.startup_timeout
        return await self._when_ready(deadline, lambda: self.pool.run(_prepare, "prepare"))

    async def start(self) -> int:
        deadline = time.monotonic() + self.config.startup_timeout
        # First: a server that follows no change feed must be the store's only one (a
        # conflict is a ConfigError, not retried; a folder not there yet is retried).
        self.claim = await self._when_ready(deadline, self._claim)
        try:
            return await self._start(deadline)
        except BaseException:
            self.claim.release()
            raise

    async def _claim(self) -> Claim:
        return self.store.claim(alone=self.relay is None)

    async def _start(self, deadline: float) -> int:
        version = await self._prepare_store(deadline)
        self.port = add_port(self.grpc, self.config)
        if self.port == 0:
            raise OSError(f"cannot listen on {self.config.listen}")
        self.cache.store_prepared(version, replica=f"{socket.gethostname()}:{self.port}")
        await self._when_ready(deadline, lambda: usage.load(self.cache))
        if self.cache.coherence is None:
            await self._when_ready(deadline, self._warm)
        self.metrics_endpoint.start()
        await self.grpc.start()
        await self.health.set(True)
        await self._start_background()
        log.info(
            "serving",
            listen=self.config.listen,
            port=self.port,
            store=self.store.name,
            store_version=version,
            replica=self.cache.stats.replica,
            workers=self.pool.workers,
            version=__version__,
            tls=self.config.tls_cert is not None,
            tokens=len(self.config.tokens),
        )
        return self.port

    async def _start_background(self) -> None:
        """Every background job, under the supervisor (which logs, counts and restarts)."""
        config, cache, jobs = self.config, self.cache, self.supervisor
        jobs.add("health-probe", self.health.run, on_failure=self.health.cannot_probe)
        jobs.add(
            "usage-flush",
            lambda: every(config.usage_flush_interval, "usage", lambda: usage.flush(cache)),
        )
        jobs.add("retention", self._retention)
        if config.max_records:
            # Without transactions one replica at a time checks (``cache/capacity.py``).
            leadership = (
                None
                if self.store.atomic_evictions
                else capacity.Leadership(lifetime_ms=int(3000 * config.capacity_interval) + 1000)
            )
            check = lambda: capacity.enforce(cache, config.max_records, leadership)  # noqa: E731
            jobs.add("capacity", lambda: every(config.capacity_interval, "capacity", check))
        relay = self.relay
        if relay is not None:
            jobs.add("subscribe-relay", relay.run)
        if cache.coherence is not None:
            jobs.add("warming", self._warm_when_following)
        await jobs.start()

    async def _warm(self) -> None:
        try:
            await warming.warm(self.cache, self.config.warm_seconds)
        finally:
            self.warmed.set()

    async def _warm_when_following(self) -> None:
        """Replicas: copies filled before the change feed follows could miss a change made
        in between (the feed starts at the end of the log), so warming waits for it (up to
        the warming time; then the first Reads fill the tier)."""
        coherence = self.cache.coherence
        assert coherence is not None
        waited = 0.0
        while not coherence.following and waited < self.config.warm_seconds:
            await asyncio.sleep(0.05)
            waited += 0.05
        try:
            if coherence.following:
                await warming.warm(self.cache, max(self.config.warm_seconds - waited, 0.0))
        except MdcacheError as exc:
            log.warning("warming_failed", error=str(exc))
        finally:
            self.warmed.set()
        await asyncio.Event().wait()  # a job runs until the server stops

    async def _retention(self) -> None:
        """Applies the retention rules at start-up, then on their interval."""
        try:
            await apply_retention(self.cache)
        except MdcacheError as exc:
            log.warning("maintenance_failed", job="retention", error=str(exc))
        finally:
            self.retention_started.set()
        await every(
            self.config.retention_interval, "retention", lambda: apply_retention(self.cache)
        )

    async def stop(self, grace: float | None = None, *, exiting: bool = False) -> None:
        """Health NOT_SERVING, no new calls, in-flight calls get ``grace`` seconds, then close
        (``exiting``: the process ends next)."""
        grace = self.config.grace_seconds if grace is None else grace
        log.info("stopping", grace_seconds=grace)
        await self.health.shutting_down()
        self.hub.stop()  # open Subscribe streams end UNAVAILABLE: clients go elsewhere
        await self.grpc.stop(grace)
        await self.supervisor.stop()
        await self.cache.close()
        try:
            await usage.flush(self.cache)
        except MdcacheError as exc:
            log.warning("usage_flush_failed", error=str(exc))
        await asyncio.to_thread(self.pool.close)
        await asyncio.to_thread(self.metrics_endpoint.close)
        if self.relay is not None:
            await asyncio.to_thread(partial(self.relay.close, exiting=exiting))
        self.claim.release()
        log.info("stopped")


async def serve(config: Config, store: Store) -> None:
    """Runs a server until SIGTERM or SIGINT, then drains it."""
    server = Server(config, store, compose(config, store))
    try:
        await server.start()
    except BaseException:
        await asyncio.to_thread(server.pool.close)
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(exiting=True)
