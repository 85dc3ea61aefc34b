"""A taosd of a test's own, and the three-node cluster, from the TDengine bundle that
scripts/with-tdengine found (``MDCACHE_TEST_TDENGINE_HOME``); a test skips without one.

The nodes themselves are ``harness.taosd``'s (shared with the benchmark); this module only
finds the bundle, and stays for the tests that import ``Taosd``, ``Cluster`` and
``free_port`` from here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import taosd
from harness.ports import free_port

__all__ = ["HOME", "Cluster", "Taosd", "bundle", "free_port"]

HOME = os.environ.get("MDCACHE_TEST_TDENGINE_HOME", "")


def bundle() -> Path:
    """The TDengine bundle; the test skips when there is none."""
    if not HOME:
        pytest.skip(
            "MDCACHE_TEST_TDENGINE_HOME is not set (a TDengine bundle with tdengine-start; "
            "scripts/with-tdengine sets it): no taosd of the test's own"
        )
    return Path(HOME)


class Taosd(taosd.Taosd):
    """``harness.taosd.Taosd`` of the test's bundle."""

    def __init__(self, folder: Path, port: int | None = None, extra_cfg: str = "") -> None:
        super().__init__(bundle(), folder, port, extra_cfg)


class Cluster(taosd.Cluster):
    """``harness.taosd.Cluster`` of the test's bundle."""

    def __init__(self, folder: Path) -> None:
        super().__init__(bundle(), folder)

    _query = taosd.Cluster.query  # its name before harness.taosd
