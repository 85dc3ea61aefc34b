"""Runs the real ``mdcache`` command in a subprocess, as an operator would."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .process import MDCACHE


def mdcache(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``mdcache ARGS...`` with no MDCACHE_* variables but those given; waits for it."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MDCACHE_")}
    environ.update(env or {})
    return subprocess.run(
        [*MDCACHE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        cwd=cwd,
        check=False,
    )


async def amdcache(
    *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """:func:`mdcache` off the event loop, so that a server in this process can answer it."""
    return await asyncio.to_thread(mdcache, *args, env=env)


def json_out(result: subprocess.CompletedProcess[str]) -> Any:
    """The command's standard output as JSON (its standard error shown if it is not)."""
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise AssertionError(f"not JSON: {result.stdout!r}\nstderr: {result.stderr}") from None
