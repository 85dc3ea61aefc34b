"""client/README.md's example for the market-data service runs as printed, and prints that."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mdcache_server.app import Server

README = Path(__file__).parent.parent / "client" / "README.md"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_the_example_runs_as_printed(server: Server) -> None:
    text = README.read_text()
    example = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)[0]
    printed = re.findall(r"```text\n(.*?)```", text, flags=re.DOTALL)[0]
    assert len(example.strip().splitlines()) <= 30
    code = example.replace("localhost:50051", f"127.0.0.1:{server.port}")
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == printed
