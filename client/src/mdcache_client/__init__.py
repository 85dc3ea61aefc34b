"""Client of mdcache, the market-data cache service.

>>> from mdcache_client import Client, Record, Series          # doctest: +SKIP
>>> with Client("localhost:50051") as cache:
...     cache.write(Series("600519", "kline", "1d"), [Record.of(1700000000000, {"close": 1.5})])
...     print(cache.read(Series("600519", "kline", "1d"), newest_first=True, limit=1))

``AsyncClient`` has the same methods for asyncio. The contract's generated code is
``mdcache.v1.cache_pb2`` and ``mdcache.v1.cache_pb2_grpc``.
"""

from mdcache_client._aio import AsyncClient
from mdcache_client._errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    MdcacheError,
    ResourceExhaustedError,
    UnavailableError,
)
from mdcache_client._sync import Client
from mdcache_client._types import HotTierStats, MethodCalls, ReadResult, Record, Series, Stats

__all__ = [
    "AsyncClient",
    "Client",
    "DeadlineExceededError",
    "HotTierStats",
    "InvalidArgumentError",
    "MdcacheError",
    "MethodCalls",
    "ReadResult",
    "Record",
    "ResourceExhaustedError",
    "Series",
    "Stats",
    "UnavailableError",
]
__version__ = "0.1.0"
