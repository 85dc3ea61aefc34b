"""Stores: the small interface the cache talks to, one module per backend."""

from mdcache_server.store.base import Store, StoreConnection
from mdcache_server.store.url import open_store

__all__ = ["Store", "StoreConnection", "open_store"]
