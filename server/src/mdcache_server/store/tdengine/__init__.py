"""The TDengine 3.x store: ``taos://`` (native, taospy) and ``taosws://`` (WebSocket, taos-ws-py).

Neither driver is imported until a connection of its kind is opened, so this
package imports anywhere, with or without libtaos.so.
"""

from mdcache_server.store.tdengine.options import TDengineOptions, parse_url
from mdcache_server.store.tdengine.store import (
    TDengineConnection,
    TDengineStore,
    drop_database,
    drop_topic,
)

__all__ = [
    "TDengineConnection",
    "TDengineOptions",
    "TDengineStore",
    "drop_database",
    "drop_topic",
    "parse_url",
]
