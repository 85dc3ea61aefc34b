"""How a client reaches the server: channel options, retries, keepalive, TLS and tokens.

Retries and load balancing are gRPC's own, set by a service config: a call that fails
UNAVAILABLE is retried with exponential backoff (every call of the contract is safe to
repeat: Write upserts, Purge deletes by a cutoff), within the call's one deadline. No other
status is retried.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc

SERVICE = "mdcache.v1.MarketDataCache"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # the server's default MDCACHE_MAX_MESSAGE_BYTES
KEEPALIVE_TIMEOUT_MS = 10_000
Metadata = tuple[tuple[str, str], ...]


def service_config(max_attempts: int, load_balancing: str) -> str:
    """The gRPC service config: the load-balancing policy and the retry policy."""
    if not 1 <= max_attempts <= 5:
        raise ValueError("max_attempts must be from 1 (no retries) to 5 (gRPC's most)")
    config: dict[str, Any] = {"loadBalancingConfig": [{load_balancing: {}}]}
    if max_attempts > 1:
        retry = {
            "maxAttempts": max_attempts,
            "initialBackoff": "0.1s",
            "maxBackoff": "2s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
        config["methodConfig"] = [{"name": [{"service": SERVICE}], "retryPolicy": retry}]
    return json.dumps(config)


@dataclass(frozen=True, slots=True)
class Transport:
    """The connection settings of a client, as given to its constructor."""

    token: str | None
    tls: bool
    root_certificates: bytes | None
    client_certificate: tuple[bytes, bytes] | None
    keepalive: float | None
    max_attempts: int
    load_balancing: str
    options: Sequence[tuple[str, Any]]

    @property
    def secure(self) -> bool:
        return self.tls or self.root_certificates is not None or bool(self.client_certificate)

    def channel_options(self) -> list[tuple[str, Any]]:
        """gRPC channel options; those given by the caller win."""
        options: dict[str, Any] = {
            "grpc.service_config": service_config(self.max_attempts, self.load_balancing),
            "grpc.enable_retries": 1,
            "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
        }
        if self.keepalive:
            # Pings on an idle connection too, without end: a server of this project
            # accepts them (MDCACHE_KEEPALIVE_MIN_INTERVAL_SECONDS, 10 s by default).
            options["grpc.keepalive_time_ms"] = int(self.keepalive * 1000)
            options["grpc.keepalive_timeout_ms"] = KEEPALIVE_TIMEOUT_MS
            options["grpc.keepalive_permit_without_calls"] = 1
            options["grpc.http2.max_pings_without_data"] = 0
        options.update(self.options)
        return list(options.items())

    def credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials, with the token as call credentials; None for plaintext."""
        if not self.secure:
            return None
        chain, key = self.client_certificate or (None, None)
        credentials = grpc.ssl_channel_credentials(self.root_certificates, key, chain)
        if self.token:
            bearer = grpc.access_token_call_credentials(self.token)  # authorization: Bearer
            credentials = grpc.composite_channel_credentials(credentials, bearer)
        return credentials

    def metadata(self, own_channel: bool) -> Metadata | None:
        """Per-call metadata: the token, where the channel's credentials do not carry it.

        gRPC sends call credentials only over TLS, so a plaintext channel, or a channel
        given by the caller, sends the token in each call's metadata.
        """
        if not self.token or (own_channel and self.secure):
            return None
        return (("authorization", f"Bearer {self.token}"),)
