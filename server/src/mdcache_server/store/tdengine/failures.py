"""TDengine error codes, and what each means to the store.

::

    StoreError              a value or statement TDengine rejects        -> INTERNAL
    ├── TableMissing        0x2662/0x2603: a series never written        -> a miss, not an error
    └── StoreUnavailable    the server is starting, down or overloaded   -> UNAVAILABLE
        └── ConnectionLost  this connection broke: reconnect, and retry the call once if
            │               it is idempotent
            └── Unreachable no server answers at all (0x000B): a retry at once would
                            only wait as long again

Codes are compared on their low 16 bits: taospy's ``errno`` is the raw negative
``0x8000xxxx``, and taos-ws-py puts ``[0xXXXX]`` at the start of its messages.
"""

from __future__ import annotations

import re
from typing import Final

from mdcache_server.errors import StoreDown, StoreError, StoreUnavailable

TABLE_MISSING: Final = frozenset({0x2662, 0x2603})
UNREACHABLE: Final = 0x000B  # RPC_NETWORK_UNAVAIL: unable to establish connection
BROKEN: Final = frozenset(
    {
        0x0018,  # RPC_BROKEN_LINK: conn is broken
        0x0021,  # RPC_SOMENODE_BROKEN_LINK
        0x0026,  # RPC_MODULE_QUIT: client instance already exited
        0x010A,  # REF_NOT_EXIST "Ref is not there": a connect as a cut node rejoined
        0x020B,  # TSC_INVALID_CONNECTION
        0x0213,  # TSC_DISCONNECTED: disconnected from server
        0xE001,  # taos-ws: WebSocket/IO error on the client side
    }
)
TRANSIENT: Final = frozenset(
    {
        0x0015,  # RPC_FQDN_ERROR: unable to resolve FQDN (compose starting up)
        0x0019,  # RPC_TIMEOUT: conn read timeout
        0x0020,  # RPC_SOMENODE_NOT_CONNECTED: vnode/qnode/mnode(s) out of service
        0x0022,  # RPC_MAX_SESSIONS
        0x0023,  # RPC_NETWORK_ERROR
        0x0024,  # RPC_NETWORK_BUSY
        0x0125,  # NEED_RETRY: retry needed
        0x0126,  # OUT_OF_RPC_MEMORY_QUEUE
        0x012B,  # NO_DISKSPACE: out of disk space (as a full SQLite disk)
        0x0130,  # APP_IS_STARTING: database is starting up
        0x0131,  # APP_IS_STOPPING: database is closing down
        0x032C,  # MND_OBJ_CREATING: replicas starting together create the same table
        0x0334,  # MND: out of dnodes (a fresh server, for some seconds)
        0x0386,  # MND_DB_IN_DROPPING
        0x03D3,  # MND_TRANS_CONFLICT: another schema change (a topic, a drop) in progress
        0x0396,  # MND_DB_IN_CREATING
        0x040A,  # MNODE_NOT_FOUND: the management node moves (a cluster electing)
        0x0503,  # VND_INVALID_VGROUP_ID "Vnode is closed or removed": a vnode moving
        0x0529,  # VND_STOPPED: a vnode stopping (its dnode going down)
        0x0531,  # VND_QUERY_BUSY
        0x0903,  # SYN_TIMEOUT: a replicated write not confirmed in time
        0x090C,  # SYN_NOT_LEADER: "Sync leader is unreachable", during an election
        0x0911,  # SYN_PROPOSE_NOT_READY
        0x0914,  # SYN_RESTORING: a new leader still replaying its log
        0x0916,  # SYN_BUFFER_FULL
        0x0917,  # SYN_WRITE_STALL
        0x0918,  # SYN_NEGOTIATION_WIN_FULL
    }
)
WS_CODE: Final = re.compile(r"\s*\[0x([0-9A-Fa-f]{4,8})\]")


class TableMissing(StoreError):
    """The table does not exist: for a series, a miss."""


class ConnectionLost(StoreUnavailable):
    """This connection is broken; a new one may work."""


class Unreachable(ConnectionLost, StoreDown):
    """No server answered (libtaos gave up after its maxRetryWaitTime)."""


def code_of(text: str) -> int | None:
    """The code taos-ws-py puts first in a message: ``[0x2662] ...`` is 0x2662."""
    match = WS_CODE.match(text)
    return int(match.group(1), 16) & 0xFFFF if match else None


def classify(code: int | None, *, connection_error: bool, message: str = "") -> type[StoreError]:
    """The error for a driver error with this code (low 16 bits; ``None`` when it has none).

    ``connection_error`` is the driver's own ConnectionError class: without a code, or
    with a client-side one, it means the connection is gone. 0x2662 ("Fail to get table
    info") is a missing table only when its message says so: during a cluster's election it
    carries "Sync leader is unreachable", and read as a miss it would answer an outage with
    an empty series.
    """
    if code in TABLE_MISSING:
        if code == 0x2662 and message and "not exist" not in message.lower():
            return StoreUnavailable
        return TableMissing
    if code == UNREACHABLE:
        return Unreachable
    if code in BROKEN:
        return ConnectionLost
    if code in TRANSIENT:
        return StoreUnavailable
    if connection_error and (code is None or code >= 0xE000):
        return ConnectionLost
    return StoreError


def translate(
    action: str, exc: BaseException, code: int | None, *, connection_error: bool
) -> StoreError:
    """The store error to raise ``from exc``, with the action and TDengine's own message."""
    cls = classify(code, connection_error=connection_error, message=str(exc))
    return cls(f"tdengine {action}: {exc}")
