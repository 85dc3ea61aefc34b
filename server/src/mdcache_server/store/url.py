"""Chooses a store from its URL; a backend's driver is imported only when its scheme is used."""

from __future__ import annotations

from urllib.parse import urlsplit

from mdcache_server.errors import ConfigError
from mdcache_server.store.base import Store


def open_store(url: str) -> Store:
    """Returns the store a URL names.

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` (as in SQLAlchemy);
    ``taos://user:password@host:6030/db`` (TDengine, native) or
    ``taosws://user:password@host:6041/db`` (TDengine, WebSocket).
    """
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from mdcache_server.store.sqlite import SqliteStore

        return SqliteStore.from_url(url)
    if scheme in ("taos", "taosws"):
        from mdcache_server.store.tdengine import TDengineStore

        return TDengineStore.from_url(url)
    raise ConfigError(
        f"store URL: unsupported scheme {scheme!r}; use sqlite://, taos:// or taosws://"
    )
