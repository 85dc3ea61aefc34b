"""A real ``mdcache serve`` process on a free port, for tests of the process as a whole
(``harness.process.ServerProcess``, shared with the benchmark)."""

from __future__ import annotations

from harness.process import MDCACHE, ServerProcess

__all__ = ["MDCACHE", "ServerProcess"]
