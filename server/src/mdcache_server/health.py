"""gRPC health, driven by a periodic store probe (the stock asyncio health servicer)."""

from __future__ import annotations

import asyncio

import structlog
from grpc_health.v1 import health
from grpc_health.v1 import health_pb2 as health_pb

from mdcache.v1 import cache_pb2 as pb
from mdcache_server.cache.policy import CachePolicy
from mdcache_server.errors import MdcacheError

SERVICE_NAMES = ("", pb.DESCRIPTOR.services_by_name["MarketDataCache"].full_name)
log = structlog.get_logger(__name__)


class HealthReporter:
    """Sets SERVING while the store answers its probe, NOT_SERVING while it does not."""

    def __init__(self, cache: CachePolicy, interval: float) -> None:
        self.servicer = health.aio.HealthServicer()
        self.cache = cache
        self.interval = interval
        self.serving: bool | None = None

    async def set(self, serving: bool) -> None:
        status = (
            health_pb.HealthCheckResponse.SERVING
            if serving
            else health_pb.HealthCheckResponse.NOT_SERVING
        )
        for name in SERVICE_NAMES:
            await self.servicer.set(name, status)
        if serving != self.serving:
            log.info("health", serving=serving)
        self.serving = serving

    async def probe_once(self) -> None:
        try:
            await self.cache.probe()
        except MdcacheError as exc:
            if self.serving is not False:
                log.warning("store_probe_failed", error=str(exc))
            await self.set(False)
        else:
            await self.set(True)

    async def cannot_probe(self, error: BaseException) -> None:
        """The probe itself failed (not the store): nobody can say the store serves."""
        await self.set(False)

    async def run(self) -> None:
        """Probes every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            await self.probe_once()

    async def shutting_down(self) -> None:
        await self.servicer.enter_graceful_shutdown()
