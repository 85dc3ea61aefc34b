"""The one error root of the server.

Every class, with the gRPC status ``service/status.py`` answers it with (a class not in
that table takes its nearest ancestor's)::

    MdcacheError                 root; anything else unexpected    -> INTERNAL (logged)
    ├── InvalidArgument          bad input; names the field         -> INVALID_ARGUMENT
    ├── Overloaded               the worker queue is full           -> RESOURCE_EXHAUSTED
    │   └── Lagging              a subscriber fell behind its
    │                            stream's buffer: the stream is cut -> RESOURCE_EXHAUSTED
    ├── Stopping                 the server is stopping: open
    │                            streams end                        -> UNAVAILABLE
    ├── ResumeLost               a Subscribe cannot resume where
    │                            asked                              -> FAILED_PRECONDITION
    ├── ConfigError              bad configuration at start-up      (exit status 2)
    └── StoreError               the store failed                   -> INTERNAL
        ├── TableMissing         (store/tdengine/failures.py) a table that does not
        │                        exist: for a series, a miss; never leaves the store
        └── StoreUnavailable     the store cannot be reached        -> UNAVAILABLE
            ├── StoreDown        no store server answers at all: the worker pool fails
            │   │                calls at once for a while (``pool.py``)
            │   └── Unreachable  (store/tdengine/failures.py) libtaos found no server
            └── ConnectionLost   (store/tdengine/failures.py) this connection is broken;
                └── Unreachable  a new one may work (the store reconnects and retries)

Stores raise these from driver errors where the driver is called; the service
maps them to gRPC statuses in one table (``service/status.py``).
"""

from __future__ import annotations


class MdcacheError(Exception):
    """Root of every error the server raises on purpose."""


class InvalidArgument(MdcacheError):
    """A request field is invalid; ``field`` names it (``series[2].symbol``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class Overloaded(MdcacheError):
    """More calls are waiting for a worker than the queue admits."""


class Lagging(Overloaded):
    """A subscriber fell further behind than its stream's buffer: the stream is cut."""


class Stopping(MdcacheError):
    """The server is stopping: open streams end, for their clients to go elsewhere."""


class ResumeLost(MdcacheError):
    """A stream cannot resume where asked: another process, or changes no longer held."""


class ConfigError(MdcacheError):
    """The configuration is invalid; raised before the server starts."""


class StoreError(MdcacheError):
    """The store failed in a way the caller cannot fix."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or did not answer in time."""


class StoreDown(StoreUnavailable):
    """No server of the store answered: further calls now would only wait as long again."""
