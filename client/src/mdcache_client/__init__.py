"""Client of mdcache, the market-data cache service.

>>> from mdcache_client import Client, Record, Series          # doctest: +SKIP
>>> with Client("localhost:50051") as cache:
...     cache.write(Series("600519", "kline", "1d"), [Record.of(1700000000000, {"close": 1.5})])
...     print(cache.read(Series("600519", "kline", "1d"), newest_first=True, limit=1))

``AsyncClient`` has the same methods for asyncio; ``get_or_load`` is the cache-aside
call. The contract's generated code is ``mdcache.v1.cache_pb2`` and
``mdcache.v1.cache_pb2_grpc``. Logs go to the stdlib logger ``mdcache_client``.
"""

from mdcache_client._aio import AsyncClient
from mdcache_client._errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    MdcacheError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from mdcache_client._live import StreamedRecord
from mdcache_client._live_aio import AsyncSubscription
from mdcache_client._live_sync import Subscription
from mdcache_client._sync import Client
from mdcache_client._topup import ranges_loader
from mdcache_client._types import (
    AsyncLoader,
    AsyncRangesLoader,
    HotTierStats,
    Loader,
    LoadResult,
    MethodCalls,
    RangesLoader,
    ReadResult,
    Record,
    Series,
    Source,
    Stats,
    Window,
)

Change = StreamedRecord
"""Deprecated: the former name of :class:`StreamedRecord` (the same class)."""

__all__ = [
    "AsyncClient",
    "AsyncLoader",
    "AsyncRangesLoader",
    "AsyncSubscription",
    "Change",
    "Client",
    "DeadlineExceededError",
    "HotTierStats",
    "InvalidArgumentError",
    "LoadResult",
    "Loader",
    "MdcacheError",
    "MethodCalls",
    "PermissionDeniedError",
    "RangesLoader",
    "ReadResult",
    "Record",
    "ResourceExhaustedError",
    "Series",
    "Source",
    "Stats",
    "StreamedRecord",
    "Subscription",
    "UnauthenticatedError",
    "UnavailableError",
    "Window",
    "ranges_loader",
]
__version__ = "0.1.0"
