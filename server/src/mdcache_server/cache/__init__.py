"""Cache policy: what happens around each store call (hit statistics)."""

from mdcache_server.cache.policy import CachePolicy
from mdcache_server.cache.stats import HitStats

__all__ = ["CachePolicy", "HitStats"]
