"""docs/client-dataframes.md: each example runs as printed, and prints what follows it."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mdcache_server.app import Server

DOC = Path(__file__).parent.parent / "docs" / "client-dataframes.md"


def examples() -> list[tuple[str, str]]:
    """Each python block and the text block after it."""
    text = DOC.read_text()
    found = re.findall(r"```python\n(.*?)```.*?```text\n(.*?)```", text, flags=re.DOTALL)
    return [(code, printed) for code, printed in found]


def test_the_doc_has_its_examples() -> None:
    assert len(examples()) == 3
    assert DOC.read_text().count("```python") == 3


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("number", [0, 1, 2])
async def test_an_example_runs_as_printed(server: Server, number: int) -> None:
    code, printed = examples()[number]
    assert "localhost:50051" in code
    code = code.replace("localhost:50051", f"127.0.0.1:{server.port}")
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == printed
