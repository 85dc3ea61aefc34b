"""The gRPC service: validates requests, calls the cache policy, maps errors to statuses."""

from mdcache_server.service.servicer import MarketDataCacheServicer

__all__ = ["MarketDataCacheServicer"]
