"""``mdcache health``: ask a server's standard gRPC health service; exit 0 when SERVING.

The Docker HEALTHCHECK runs it; with TLS on the server, give ``--tls-ca`` (or ``--tls``).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mdcache_server.ops.command import CONNECTION, Command, UsageError, add_connection, target


def channel(args: argparse.Namespace, environ: Mapping[str, str]) -> grpc.Channel:
    """A channel to the target, with TLS when asked for (health needs no token)."""
    paths = {
        env: getattr(args, flag.removeprefix("--").replace("-", "_")) or environ.get(env, "")
        for flag, _, env, _ in CONNECTION
    }
    ca, cert, key = (
        paths[env]
        for env in ("MDCACHE_TLS_CA", "MDCACHE_TLS_CLIENT_CERT", "MDCACHE_TLS_CLIENT_KEY")
    )
    if not (ca or cert or args.tls):
        return grpc.insecure_channel(target(args, environ))
    try:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=Path(ca).read_bytes() if ca else None,
            private_key=Path(key).read_bytes() if key else None,
            certificate_chain=Path(cert).read_bytes() if cert else None,
        )
    except OSError as exc:
        raise UsageError(f"cannot read a TLS file: {exc}") from None
    return grpc.secure_channel(target(args, environ), credentials)


def run(args: argparse.Namespace, environ: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    where = target(args, environ)
    with channel(args, environ) as ch:
        try:
            reply = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
        except grpc.RpcError as exc:
            out.write(f"{where}: {exc.code().name}: {exc.details()}\n")
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    out.write(f"{where}: {status}\n")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection(parser)
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait (3)")
    parser.add_argument(
        "--service", default="", help="a service name, e.g. mdcache.v1.MarketDataCache (all)"
    )


COMMAND = Command(
    name="health",
    help="check a server's gRPC health (exit 0 when SERVING)",
    description="Ask a server's standard gRPC health service whether it is SERVING.",
    add_arguments=add_arguments,
    run=run,
)
