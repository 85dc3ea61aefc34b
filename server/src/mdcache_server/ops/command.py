"""What an operator's subcommand is, and how it reaches the server (target, TLS, token)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from mdcache_client import Client
from mdcache_server.config import setting, split_host_port

# The server's own port on this host, as it listens by default.
DEFAULT_TARGET = f"127.0.0.1:{split_host_port(setting('listen').default)[1]}"


class UsageError(Exception):
    """A flag or setting the command cannot use; the command exits 2 with the message."""


@dataclass(frozen=True, slots=True)
class Command:
    """``run(args, environ, out, err)`` returns the exit status; ``out`` gets the report."""

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Mapping[str, str], TextIO, TextIO], int]


# (flag, metavar, variable, help) of the connection settings; a flag wins over its variable.
CONNECTION = (
    ("--target", "HOST:PORT", "MDCACHE_TARGET", f"the server (default {DEFAULT_TARGET})"),
    ("--token", "TOKEN", "MDCACHE_TOKEN", "bearer token (the variable keeps it out of ps)"),
    ("--tls-ca", "FILE", "MDCACHE_TLS_CA", "PEM certificates to trust: connect with TLS"),
    ("--tls-client-cert", "FILE", "MDCACHE_TLS_CLIENT_CERT", "PEM certificate, for mutual TLS"),
    ("--tls-client-key", "FILE", "MDCACHE_TLS_CLIENT_KEY", "PEM key of that certificate"),
)


def add_connection(parser: argparse.ArgumentParser) -> None:
    """The flags that say how to reach the server."""
    group = parser.add_argument_group("connection")
    for flag, metavar, env, text in CONNECTION:
        group.add_argument(flag, default=None, metavar=metavar, help=f"{text} [env {env}]")
    group.add_argument(
        "--tls", action="store_true", help="connect with TLS, trusting the system's CAs"
    )


def _setting(args: argparse.Namespace, environ: Mapping[str, str], flag: str, env: str) -> str:
    given: str | None = getattr(args, flag.removeprefix("--").replace("-", "_"))
    return given or environ.get(env, "")


def target(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    return _setting(args, environ, "--target", "MDCACHE_TARGET") or DEFAULT_TARGET


def _pem(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{what} {path}: {exc.strerror or exc}") from None


def connect(args: argparse.Namespace, environ: Mapping[str, str], *, timeout: float) -> Client:
    """A client of the target with the connection settings; raises UsageError."""
    token, ca, cert, key = (
        _setting(args, environ, flag, env) for flag, _, env, _ in CONNECTION[1:]
    )
    if bool(cert) != bool(key):
        raise UsageError("--tls-client-cert and --tls-client-key go together")
    return Client(
        target(args, environ),
        timeout=timeout,
        token=token or None,
        tls=args.tls,
        root_certificates=_pem(ca, "--tls-ca") if ca else None,
        client_certificate=(_pem(cert, "--tls-client-cert"), _pem(key, "--tls-client-key"))
        if cert
        else None,
    )


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="write JSON for scripts")
