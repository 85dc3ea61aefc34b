"""The ``mdcache`` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence

import structlog

from mdcache_server import __version__, logs
from mdcache_server.app import serve
from mdcache_server.config import Config, add_arguments
from mdcache_server.errors import ConfigError, StoreUnavailable
from mdcache_server.ops import health, load, monitor, purge, stats, verify
from mdcache_server.ops.command import Command, UsageError
from mdcache_server.processes import Parent
from mdcache_server.store.url import open_store

OPERATIONS: tuple[Command, ...] = (
    verify.COMMAND,
    monitor.COMMAND,
    load.COMMAND,
    stats.COMMAND,
    purge.COMMAND,
    health.COMMAND,
)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mdcache", description="mdcache, a market-data cache.")
    top.add_argument("--version", action="version", version=f"mdcache {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "serve",
        help="run the gRPC server",
        description="Run the gRPC server until SIGTERM or SIGINT. Each setting is a flag and "
        "an environment variable: a flag wins over its variable, which wins over the default "
        "(docs/operations/configuration.md).",
    )
    add_arguments(run)
    for command in OPERATIONS:
        sub = commands.add_parser(
            command.name,
            help=command.help,
            description=command.description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(sub)
    return top


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point: ``mdcache serve --listen [::]:50051``. Returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    operation = next((c for c in OPERATIONS if c.name == args.command), None)
    if operation is not None:
        logs.configure("warning", "auto")
        try:
            return operation.run(args, environ, sys.stdout, sys.stderr)
        except UsageError as exc:
            sys.stderr.write(f"mdcache {operation.name}: {exc}\n")
            return 2
    try:
        config = Config.load(vars(args), environ)
        logs.configure(config.log_level, config.log_format)
        store = open_store(config.store_url)
    except ConfigError as exc:
        sys.stderr.write(f"mdcache: configuration error: {exc}\n")
        return 2
    log = structlog.get_logger("mdcache")
    if config.processes > 1:  # a parent of replicas on one port (``processes.py``)
        rest = list(argv)
        rest.remove("serve")
        try:
            return asyncio.run(Parent(config, rest).run())
        except OSError as exc:
            log.error("cannot_serve", error=str(exc))
            return 1
    try:
        asyncio.run(serve(config, store))
    except ConfigError as exc:  # found at start-up: another server on the same SQLite file
        sys.stderr.write(f"mdcache: configuration error: {exc}\n")
        return 2
    except StoreUnavailable as exc:
        log.error("store_unavailable", error=str(exc))
        return 1
    except OSError as exc:
        log.error("cannot_serve", error=str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
