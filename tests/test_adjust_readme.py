"""The adjusted Read of docs/concepts/adjusted.md runs as printed (``mdcache load`` of bars
and factors, then grpcurl) and answers what the page shows; the factors loaded so turn
Yahoo's Close into its Adj Close to the cent on every day of the year."""

from __future__ import annotations

import asyncio
import csv
import json
import re
from pathlib import Path

import pytest

from mdcache_client import AsyncClient, Series
from mdcache_server.app import Server
from mdcache_server.ops.csvformats import AdjFactor, BadRow, detect

from .commands import amdcache
from .test_grpcurl import run

ROOT = Path(__file__).parent.parent
PAGE = (ROOT / "docs" / "concepts" / "adjusted.md").read_text()


def blocks() -> list[tuple[str, str]]:
    """The page's code blocks: (language, text)."""
    return re.findall(r"```(\w*)\n(.*?)```", PAGE, flags=re.DOTALL)


def page_example() -> tuple[list[str], str, str]:
    (sh, commands), (_, shown), *_ = blocks()
    assert sh == "sh"
    load, grpcurl = commands.split("\n", 1)
    assert load.startswith("mdcache load ")
    args = [str(ROOT / a) if a.startswith("tests/") else a for a in load.split()[2:]]
    return args, grpcurl.strip(), shown


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_the_page_example_answers_as_shown(server: Server, client: AsyncClient) -> None:
    args, grpcurl, shown = page_example()
    env = {"MDCACHE_TARGET": f"127.0.0.1:{server.port}"}
    loaded = await amdcache("load", *args, env=env)
    assert loaded.returncode == 0, loaded.stderr
    assert "AAPL/adj_factor/1d" in loaded.stdout
    answer = await run(grpcurl, server.port)
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout) == json.loads(shown)
    # every day of 2017, backward-adjusted by the loaded factors: Yahoo's Adj Close
    with (ROOT / "tests/data/aapl_daily_2017.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    days = await client.read(Series("AAPL", "kline", "1d"), adjust="backward")
    assert len(days.records) == len(rows) == 251
    off = [
        (row["Date"], r.json()["Close"], row["Adj Close"])
        for r, row in zip(days.records, rows, strict=True)
        if abs(r.json()["Close"] - float(row["Adj Close"])) > 0.005
    ]
    assert not off
    (code,) = [text for language, text in blocks() if language == "python"]
    code = code.replace("localhost:50051", f"127.0.0.1:{server.port}")
    printed: list[str] = []  # what the example prints (the server logs to stdout too)
    scope = {"print": lambda *values: printed.append(" ".join(map(str, values)))}
    await asyncio.to_thread(exec, code, scope)
    shown_value = re.search(r"# (\S+):", code)
    assert shown_value is not None
    assert printed == [shown_value[1]]


def test_factor_files_of_tushare_and_by_date() -> None:
    tushare = detect(Path("f.csv"), ["", "ts_code", "trade_date", "adj_factor"])
    assert isinstance(tushare, AdjFactor)
    series, record = tushare.bar(["0", "600519.SH", "20200106", "96.2"])
    assert series == Series("600519.SH", "adj_factor", "1d")
    assert record.ts_ms == 1578294000000  # 2020-01-06 15:00 China time, as tushare's bars
    assert json.loads(record.payload) == {
        "ts_code": "600519.SH",
        "trade_date": "20200106",
        "adj_factor": 96.2,
    }
    dated = detect(Path("SPY_factors.csv"), ["date", "adj_factor"])
    series, record = dated.bar(["2020-01-06", "1.5"])
    assert series == Series("SPY", "adj_factor", "1d")
    assert record.ts_ms == 1578268800000  # 00:00 UTC, as Yahoo's bars
    with pytest.raises(BadRow, match="adj_factor: 0 is not a positive factor"):
        dated.bar(["2020-01-06", "0"])
