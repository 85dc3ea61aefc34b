"""How the server meets the network: message sizes, keepalive, and TLS."""

from __future__ import annotations

import grpc
import structlog

from mdcache_server.config import Config

log = structlog.get_logger(__name__)


def options(config: Config) -> list[tuple[str, int]]:
    """gRPC server options."""
    size = config.max_message_bytes
    return [
        ("grpc.max_receive_message_length", size),
        ("grpc.max_send_message_length", size),
        # Clients ping idle connections to keep them through NATs and load balancers. By
        # default gRPC allows no ping without a call in flight for two hours, and answers a
        # third early one with GOAWAY "too_many_pings"; accept them at this interval.
        ("grpc.keepalive_permit_without_calls", 1),
        (
            "grpc.http2.min_ping_interval_without_data_ms",
            int(config.keepalive_min_interval * 1000),
        ),
        ("grpc.http2.max_ping_strikes", 2),
    ]


def credentials(config: Config) -> grpc.ServerCredentials | None:
    """TLS credentials when a certificate is configured; a client CA makes it mutual TLS."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    client_ca = config.tls_client_ca.read_bytes() if config.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def add_port(server: grpc.aio.Server, config: Config) -> int:
    """Listens on the configured address, with TLS when configured; returns the port."""
    tls = credentials(config)
    if tls is None:
        if config.tokens:
            log.warning("tokens_without_tls", detail="bearer tokens cross the network in clear")
        return server.add_insecure_port(config.listen)
    return server.add_secure_port(config.listen, tls)
