"""Redis as a comparison: one sorted set per series, scored by timestamp, member the payload.

A window is ``ZRANGEBYSCORE key start end WITHSCORES LIMIT 0 n``; the latest record is
``ZREVRANGEBYSCORE key +inf -inf WITHSCORES LIMIT 0 1``. redis-py's asyncio client with
hiredis parsing, one connection per concurrent caller (its pool grows to the concurrency).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.utils import HIREDIS_AVAILABLE

from mdcache_client import Record, Series

RedisCall = Callable[[int], Awaitable[object]]


def client(port: int) -> aioredis.Redis:
    return aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=30)


def key(series: Series) -> str:
    return f"{series.symbol}|{series.data_type}|{series.timeframe}"


async def ingest(r: aioredis.Redis, batch: dict[Series, list[Record]]) -> int:
    """One batch in one pipeline round trip (ZADD per series)."""
    pipe = r.pipeline(transaction=False)
    for series, records in batch.items():
        pipe.zadd(key(series), {rec.payload: rec.ts_ms or 0 for rec in records})
    await pipe.execute()
    return sum(len(records) for records in batch.values())


def latest(r: aioredis.Redis, series: Series) -> RedisCall:
    name = key(series)

    async def call(_: int) -> object:
        return await r.zrevrangebyscore(name, "+inf", "-inf", start=0, num=1, withscores=True)

    return call


def window(r: aioredis.Redis, series: Series, start_ms: int, end_ms: int, limit: int) -> RedisCall:
    name = key(series)

    async def call(_: int) -> object:
        return await r.zrangebyscore(name, start_ms, end_ms, start=0, num=limit, withscores=True)

    return call


def parser() -> str:
    return "hiredis" if HIREDIS_AVAILABLE else "pure-Python (hiredis missing)"
