"""The harness's clean-up: what a run that died left behind (named with its pid) is removed
at the next run's start, and nothing of a run still going."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from .netns import PREFIX, ip, remove_leftovers, unavailable

pytestmark = [pytest.mark.partition_faults]


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has ended (as a crashed run's)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def namespaces() -> Iterator[list[str]]:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    made: list[str] = []
    yield made
    for name in made:  # whatever the test did
        ip("netns", "del", name, check=False)
        ip("link", "del", name, check=False)


def names() -> str:
    return ip("netns", "list").stdout + ip("-o", "link", "show").stdout


def test_leftovers_of_a_dead_run_are_removed_and_a_live_runs_kept(
    namespaces: list[str], dead_pid: int
) -> None:
    dead_ns, dead_link = f"{PREFIX}{dead_pid}-td1", f"{PREFIX}{dead_pid}A"
    live_ns = f"{PREFIX}{os.getpid()}-keep"
    namespaces += [dead_ns, dead_link, live_ns]
    ip("netns", "add", dead_ns)
    ip("link", "add", dead_link, "type", "bridge")
    ip("netns", "add", live_ns)
    removed = remove_leftovers()
    assert dead_ns in removed
    assert dead_link in removed
    assert dead_ns not in names()
    assert dead_link not in names()
    assert live_ns in names()  # this run's: still going
    assert live_ns not in removed
    assert remove_leftovers(owner=os.getpid()) == [live_ns]
