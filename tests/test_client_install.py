"""The client installs from its wheel into a fresh virtual environment and works there alone.

This is the slowest test of the suite (about 10 s here with pip's cache warm, up to about
30 s on a cold cache): it builds the wheel (pip fetches hatchling for the isolated build),
makes a venv without pip, and installs the wheel with its dependencies from the package
index. It runs in ``make test``, marked ``install``: ``pytest -m "not install"`` skips it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from mdcache_server.app import Server

CLIENT = Path(__file__).parent.parent / "client"

USE = """
import asyncio, importlib.metadata as md, importlib.util, json, re, sys
from mdcache_client import AsyncClient, Client, Record, Series, Source, Window

def name(text):
    return re.split(r"[ ;<>=!~\\[(]", text, maxsplit=1)[0].lower().replace("_", "-")

needed, todo = set(), ["mdcache-client"]
while todo:  # mdcache-client and what it requires, transitively
    dist = todo.pop()
    if dist not in needed:
        needed.add(dist)
        todo += [name(r) for r in md.requires(dist) or [] if "extra ==" not in r]

bars = Series("600519", "kline", "1d")
with Client(sys.argv[1]) as cache:
    written = cache.write(bars, [Record.of(1704067200000, {"close": 1688.0})])
    hit = cache.read(bars).hit

async def load(series, window):
    return [Record.of(1704153600000, {"close": 1702.5})]

try:  # the DataFrame functions, without their extras
    from mdcache_client import to_pandas
    to_pandas([])
except ImportError as exc:
    frames_error = str(exc)

async def cache_aside():
    async with AsyncClient(sys.argv[1]) as cache:
        return await cache.get_or_load(bars, Window(1704153600000, 1704153600000), load)

print(json.dumps({
    "written": written,
    "hit": hit,
    "source": asyncio.run(cache_aside()).source.value,
    "installed": sorted(name(d.metadata["Name"]) for d in md.distributions()),
    "needed": sorted(needed),
    "server": importlib.util.find_spec("mdcache_server") is not None,
    "frames": frames_error,
    "typed": importlib.util.find_spec("mdcache_client").submodule_search_locations[0],
}))
"""


def run(*command: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=150
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def install_fresh(tmp_path: Path, target: str) -> dict[str, Any]:
    """Builds the wheel, installs it in a new venv, runs USE there against ``target``."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    run(
        *pip,
        "wheel",
        "--quiet",
        "--no-deps",
        "--wheel-dir",
        tmp_path / "dist",
        CLIENT,
        cwd=tmp_path,
    )
    [wheel] = (tmp_path / "dist").glob("mdcache_client-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"mdcache_client/py.typed", "mdcache/v1/cache_pb2.pyi"} <= set(names)
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    run(*pip, "--python", venv / "bin" / "python", "install", "--quiet", wheel, cwd=tmp_path)
    out = run(venv / "bin" / "python", "-I", "-c", USE, target, cwd=tmp_path)
    result: dict[str, Any] = json.loads(out)
    return result


@pytest.mark.install
@pytest.mark.timeout(300)
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_installs_and_works_in_a_fresh_venv(server: Server, tmp_path: Path) -> None:
    found = await asyncio.to_thread(install_fresh, tmp_path, f"127.0.0.1:{server.port}")
    assert (found["written"], found["hit"], found["source"]) == (1, True, "loader")
    installed = set(found["installed"])
    assert {"mdcache-client", "grpcio", "protobuf"} <= installed
    assert installed <= set(found["needed"])
    assert found["server"] is False
    assert found["frames"] == (
        "mdcache_client.to_pandas needs pandas: pip install 'mdcache-client[pandas]'"
    )
    assert (Path(found["typed"]) / "py.typed").is_file()
