"""The resampled Read of docs/concepts/resampling.md runs as printed (``mdcache load``, then
grpcurl) and answers what the page shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mdcache_server.app import Server

from .commands import amdcache
from .test_grpcurl import run

ROOT = Path(__file__).parent.parent
PAGE = (ROOT / "docs" / "concepts" / "resampling.md").read_text()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_the_page_example_answers_as_shown(server: Server) -> None:
    commands, shown = re.findall(r"```(?:sh)?\n(.*?)```", PAGE, flags=re.DOTALL)
    load, grpcurl = commands.split("\n", 1)
    assert load.startswith("mdcache load ")
    env = {"MDCACHE_TARGET": f"127.0.0.1:{server.port}"}
    files = [str(ROOT / arg) for arg in load.split()[2:]]
    loaded = await amdcache("load", *files, env=env)
    assert loaded.returncode == 0, loaded.stderr
    answer = await run(grpcurl.strip(), server.port)
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout) == json.loads(shown)
