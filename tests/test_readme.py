"""The README is the front door: short, its first Write and Read and its Python snippet run
as printed (and the snippet of docs/client.md, the same), and its links reach the docs."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mdcache_server.app import Server

from .test_grpcurl import grpcurl_commands, run

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"


def test_the_readme_is_short_and_names_the_two_commands() -> None:
    text = README.read_text()
    assert len(text.splitlines()) < 200
    assert "make serve" in text
    assert "make test" in text


def test_every_link_of_the_readme_reaches_a_file() -> None:
    """The docs site checks its own links (make docs); the README is outside it."""
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    local = [link for link in links if "://" not in link]
    assert len(local) > 10
    for link in local:
        assert (ROOT / link).exists(), f"README links to {link}, which is not there"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_the_first_write_and_read_answer_as_told(server: Server) -> None:
    write, read = grpcurl_commands(README)
    written, latest = await run(write, server.port), await run(read, server.port)
    assert written.returncode == 0, written.stderr
    answer = json.loads(written.stdout)
    assert answer["written"] == "2"
    assert re.fullmatch(r"1\.\d{13}\.[0-9a-f]{12}", answer.pop("session_token"))
    assert answer == {"written": "2"}
    assert latest.returncode == 0, latest.stderr
    [result] = json.loads(latest.stdout)["results"]
    assert (result["hit"], result["truncated"]) == (True, True)
    assert [r["ts_ms"] for r in result["records"]] == ["1262649600000"]  # 2010-01-05


@pytest.mark.parametrize("page", ["README.md", "docs/client.md"])
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_the_python_snippet_prints_what_the_page_says(server: Server, page: str) -> None:
    text = (ROOT / page).read_text()
    [snippet] = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    [printed] = re.findall(r"prints `([^`]*)`", text)
    code = snippet.replace("localhost:50051", f"127.0.0.1:{server.port}")
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == printed + "\n"
