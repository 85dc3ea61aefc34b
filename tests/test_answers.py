"""Remembered Read answers: the same question about unchanged held series, answered again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from mdcache_client import AsyncClient, Record
from mdcache_server.app import Server
from mdcache_server.model import SeriesKey, SeriesRead
from mdcache_server.service.answers import ENTRY_OVERHEAD, Answers

from .market_data import aapl_daily_2017, sse_daily_2019
from .support import running

KEY = SeriesKey("600519.SH", "kline", "1d")


def held(serial: int) -> list[SeriesRead]:
    return [SeriesRead([], truncated=False, held=(serial, 0))]


def test_answers_are_bounded_in_bytes_least_recently_used_out() -> None:
    answers = Answers(64 * 1000)  # entries up to 1,000 bytes
    body = b"x" * (500 - ENTRY_OVERHEAD)
    for n in range(200):
        answers.remember(b"%03d" % n + body[3:], body, [KEY], held(n + 1), 0)
    assert answers.bytes <= answers.capacity_bytes
    assert len(answers) == answers.capacity_bytes // (len(body) * 2 + ENTRY_OVERHEAD)
    assert answers.get(b"000" + body[3:]) is None  # the oldest went first
    assert answers.get(b"199" + body[3:]) is not None


def test_only_answers_of_held_copies_and_small_enough_are_kept() -> None:
    answers = Answers(64 * 1000)
    answers.remember(b"store", b"a", [KEY], [SeriesRead([], truncated=False)], 0)
    answers.remember(b"unheld", b"a", [KEY], held(0), 0)  # a copy the tier refused
    answers.remember(b"large", b"a" * 1000, [KEY], held(1), 0)
    answers.remember(b"kept", b"a", [KEY], held(2), 0)
    assert [answers.get(r) is not None for r in (b"store", b"unheld", b"large", b"kept")] == [
        False,
        False,
        False,
        True,
    ]
    assert Answers(0).get(b"kept") is None


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Server, AsyncClient]]:
    async with running(f"sqlite:///{tmp_path / 'cache.sqlite3'}", hot_tier_max_age="600") as got:
        yield got


async def test_a_repeated_read_is_answered_again_and_counted(
    served: tuple[Server, AsyncClient],
) -> None:
    server, client = served
    series, bars = sse_daily_2019()
    await client.write(series, bars)
    first = await client.read(series, newest_first=True, limit=5)
    assert len(server.servicer.answers) == 1
    for _ in range(3):
        again = await client.read(series, newest_first=True, limit=5)
        assert again.records == first.records
        assert again.truncated
    stats = await client.stats()
    assert (stats.hits, stats.misses, stats.hot_tier.hits) == (4, 0, 3)
    assert dict(stats.hot_symbols) == {series.symbol: 4}
    assert len(server.servicer.answers) == 1  # the same request, one answer


async def test_writes_and_purges_change_the_answer(served: tuple[Server, AsyncClient]) -> None:
    _, client = served
    series, bars = sse_daily_2019()
    apple, apple_bars = aapl_daily_2017()
    await client.write_many({series: bars[:100], apple: apple_bars})
    assert len((await client.read(series)).records) == 100
    await client.write(series, [*bars[100:], Record(bars[0].ts_ms, '{"fixed": 1}')])
    after_write = await client.read(series)
    assert len(after_write.records) == len(bars)
    assert after_write.records[0].payload == '{"fixed": 1}'
    await client.read(apple)
    assert await client.purge(before_ms=bars[10].ts_ms, symbol=series.symbol) == 10
    assert len((await client.read(series)).records) == len(bars) - 10
    assert len((await client.read(apple)).records) == len(apple_bars)


async def test_clock_relative_reads_are_never_remembered(
    served: tuple[Server, AsyncClient],
) -> None:
    server, client = served
    series, bars = sse_daily_2019()
    await client.write(series, bars)
    await client.read(series, last_days=30)
    assert len(server.servicer.answers) == 0


async def test_bytes_that_are_no_read_request_are_invalid_argument(
    served: tuple[Server, AsyncClient],
) -> None:
    server, _ = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        read = channel.unary_unary("/mdcache.v1.MarketDataCache/Read")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await read(b"\xff\xff\xff", timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "request" in (caught.value.details() or "")
