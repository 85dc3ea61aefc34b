"""The commands of docs/operations/commands.md run as printed against a real server process."""

from __future__ import annotations

import re
from pathlib import Path

from .commands import mdcache
from .process import ServerProcess

ROOT = Path(__file__).parent.parent
PAGE = (ROOT / "docs" / "operations" / "commands.md").read_text()


def readme_commands() -> list[list[str]]:
    """The ``mdcache`` commands of the page's bash blocks, but ``serve``."""
    blocks = re.findall(r"```bash\n(.*?)```", PAGE, flags=re.DOTALL)
    lines = [line.split() for block in blocks for line in block.splitlines()]
    return [line[1:] for line in lines if line[:1] == ["mdcache"] and line[1] != "serve"]


def test_every_operating_command_works_as_printed(tmp_path: Path) -> None:
    commands = readme_commands()
    assert [c[0] for c in commands] == ["verify", "load", "monitor", "stats", "purge"]
    server = ServerProcess("--data-dir", str(tmp_path))
    try:
        server.wait_serving()
        env = {"MDCACHE_TARGET": server.target, "MDCACHE_DATA_DIR": str(tmp_path)}
        for command in commands:
            result = mdcache(*command, env=env, cwd=ROOT)
            assert result.returncode == 0, (command, result.stdout, result.stderr)
        assert result.stdout == (
            "purged 22 records stamped before 2019-02-01 00:00:00 UTC (symbol 000001.SH)\n"
        )
    finally:
        server.kill()
