"""The clients' side of resampled reads: ``read(resample=...)`` on Client and AsyncClient,
and ``get_or_load`` of a coarser timeframe answered from the finer series."""

from __future__ import annotations

import asyncio

from mdcache_client import AsyncClient, Client, Record, Series, Source, Window
from mdcache_server.app import Server

from .market_data import sse_minutes_20190201

MINUTES, DAY = sse_minutes_20190201()
HOURLY = Series("000001.SH", "kline", "60m")
HOUR = 3_600_000
# 2019-02-01, 09:30 to 15:00 China time; the 60-minute bars end 10:30 .. 15:00
SESSION = Window(DAY[0].ts_ms - 60_000, DAY[-1].ts_ms)


class Upstream:
    """The slow upstream's 60-minute bars: counts its calls."""

    def __init__(self, records: list[Record]) -> None:
        self.records = records
        self.calls = 0

    async def load(self, series: Series, window: Window) -> list[Record]:
        self.calls += 1
        return self.records


async def test_the_blocking_client_reads_resampled_bars(
    server: Server, client: AsyncClient
) -> None:
    await client.write(MINUTES, DAY)

    def read() -> tuple[object, object]:
        with Client(f"127.0.0.1:{server.port}") as sync:
            newest = sync.read(MINUTES, resample="15m", limit=2, newest_first=True)
            stats = sync.stats()
            return newest, stats

    newest, stats = await asyncio.to_thread(read)
    expected = await client.read(MINUTES, resample="15m")
    assert newest.records == expected.records[::-1][:2]  # type: ignore[attr-defined]
    assert newest.series == Series("000001.SH", "kline", "15m")  # type: ignore[attr-defined]
    assert newest.source == MINUTES  # type: ignore[attr-defined]
    assert newest.truncated  # type: ignore[attr-defined]
    assert stats.resampled_reads == 1  # type: ignore[attr-defined]


async def test_get_or_load_answers_a_coarser_timeframe_from_the_finer_series(
    client: AsyncClient,
) -> None:
    await client.write(MINUTES, DAY)
    upstream = Upstream([])
    result = await client.get_or_load(
        HOURLY, SESSION, upstream.load, tolerance_ms=HOUR, resample_from="1m"
    )
    assert result.source is Source.CACHE
    assert upstream.calls == 0
    assert result.series == HOURLY
    assert result.records == (await client.read(MINUTES, resample="60m")).records
    assert len(result.records) == 4


async def test_get_or_load_loads_the_coarser_series_when_the_finer_one_is_not_held(
    client: AsyncClient,
) -> None:
    bars = await _hourly_bars(client)
    upstream = Upstream(bars)
    first = await client.get_or_load(
        HOURLY, SESSION, upstream.load, tolerance_ms=HOUR, resample_from="1m"
    )
    assert first.source is Source.LOADER
    assert upstream.calls == 1
    again = await client.get_or_load(
        HOURLY, SESSION, upstream.load, tolerance_ms=HOUR, resample_from="1m"
    )
    assert again.source is Source.CACHE  # from the 60-minute series written back
    assert upstream.calls == 1
    assert again.records == bars
    assert not (await client.read(MINUTES)).hit


async def _hourly_bars(client: AsyncClient) -> list[Record]:
    """The day's 60-minute bars, made by a server from its minutes and then forgotten."""
    await client.write(MINUTES, DAY)
    bars = list((await client.read(MINUTES, resample="60m")).records)
    await client.purge(before_ms=DAY[-1].ts_ms + 1, symbol="000001.SH")
    return bars
