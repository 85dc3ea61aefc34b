"""What an operator's subcommand is: its name, help, flags and the function that runs it."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TextIO

DEFAULT_TARGET = "127.0.0.1:50051"
TARGET_ENV = "MDCACHE_TARGET"


@dataclass(frozen=True, slots=True)
class Command:
    """``run(args, environ, out, err)`` returns the exit status; ``out`` gets the report."""

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Mapping[str, str], TextIO, TextIO], int]


def add_target(parser: argparse.ArgumentParser) -> None:
    """``--target HOST:PORT``, the server to talk to."""
    parser.add_argument(
        "--target",
        default=None,
        metavar="HOST:PORT",
        help=f"the server [env {TARGET_ENV}, default {DEFAULT_TARGET}]",
    )


def target(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    """The flag, else the environment, else the default."""
    given: str | None = args.target
    return given or environ.get(TARGET_ENV) or DEFAULT_TARGET


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="write JSON for scripts")
