"""Helpers shared by the tests."""

from __future__ import annotations

from mdcache_server.config import Config


def server_config(store_url: str, **settings: str) -> Config:
    """A test server's configuration: a free port on loopback, the given store."""
    flags = {"listen": "127.0.0.1:0", "store_url": store_url, "grace_seconds": "5", **settings}
    return Config.load(flags, environ={})
