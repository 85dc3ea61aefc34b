"""Prometheus' own binaries for the tests of deploy/prometheus: found, or a clear skip.

``make prometheus-deps`` installs them (the Debian package `prometheus`) when run as root
with apt-get. Elsewhere a test that needs them is skipped and says why, except under CI
(``CI=true``), where a missing binary fails the test: CI must run them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"


def binary(name: str) -> str:
    """The path of ``name`` (``prometheus`` or ``promtool``); skips, or fails under CI."""
    path = shutil.which(name)
    if path is not None:
        return path
    reason = (
        f"{name} is not installed: `make prometheus-deps` installs it as root "
        "(apt-get install prometheus)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, so the test fails rather than skips")
    pytest.skip(reason)
