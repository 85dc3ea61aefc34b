"""The client package: both flavours against a real server, typed results, errors, deadlines."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import grpc
import pytest

from mdcache_client import (
    AsyncClient,
    Client,
    DeadlineExceededError,
    InvalidArgumentError,
    Record,
    Series,
    UnavailableError,
)
from mdcache_server.app import Server

from .market_data import aapl_daily_2017

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def blocking_session(target: str) -> tuple[int, list[float], int, int]:
    series, bars = aapl_daily_2017()
    with Client(target, timeout=10) as client:
        written = client.write(series, bars)
        closes = [r.json()["Close"] for r in client.read(series, limit=3).records]
        deleted = client.purge(before_ms=bars[10].ts_ms, symbol="AAPL")
        records = client.stats().records
    return written, closes, deleted, records


async def test_blocking_client_has_the_same_api(server: Server) -> None:
    written, closes, deleted, records = await asyncio.to_thread(
        blocking_session, f"127.0.0.1:{server.port}"
    )
    assert (written, deleted, records) == (251, 10, 241)
    assert closes == [116.150002, 116.019997, 116.610001]


async def test_record_helpers_encode_and_decode_json(server: Server, client: AsyncClient) -> None:
    series = Series("600519", "fund_flow", "1d")
    await client.write(series, [Record.of(1_700_000_000_000, {"净流入": 1.5e8, "big": 2**70})])
    result = await client.read(series)
    assert result.records[0].payload == '{"净流入":150000000.0,"big":1180591620717411303424}'
    assert result.values() == [{"净流入": 1.5e8, "big": 2**70}]


async def test_errors_keep_code_and_details(client: AsyncClient) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await client.read(Series("", "kline", "1d"))
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details == "series[0].symbol: must not be empty"


async def test_every_call_has_a_deadline(server: Server) -> None:
    series, bars = aapl_daily_2017()
    async with AsyncClient(f"127.0.0.1:{server.port}", timeout=0.001) as client:
        with pytest.raises(DeadlineExceededError):
            await client.write(series, bars * 100)  # takes longer than a millisecond


async def test_no_server_is_unavailable(server: Server) -> None:
    async with AsyncClient("127.0.0.1:9", timeout=2) as client:
        with pytest.raises(UnavailableError):
            await client.stats()


async def test_the_client_never_imports_the_server(server: Server) -> None:
    code = "import sys, mdcache_client; assert not [m for m in sys.modules if 'mdcache_s' in m]"
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
