"""The README's resampled Read runs as printed (``mdcache load``, then grpcurl) and answers
what the README shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mdcache_server.app import Server

from .commands import amdcache
from .test_grpcurl import run

ROOT = Path(__file__).parent.parent
SECTION = (ROOT / "README.md").read_text().split("## Resampled reads", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_the_readme_example_answers_as_shown(server: Server) -> None:
    commands, shown = re.findall(r"```(?:sh)?\n(.*?)```", SECTION, flags=re.DOTALL)
    load, grpcurl = commands.split("\n", 1)
    assert load.startswith("mdcache load ")
    env = {"MDCACHE_TARGET": f"127.0.0.1:{server.port}"}
    files = [str(ROOT / arg) for arg in load.split()[2:]]
    loaded = await amdcache("load", *files, env=env)
    assert loaded.returncode == 0, loaded.stderr
    answer = await run(grpcurl.strip(), server.port)
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout) == json.loads(shown)
