"""Bearer-token authentication: a server interceptor in front of every call.

With tokens configured, a call needs ``authorization: Bearer <token>``: without a known
token it is UNAUTHENTICATED, and a ``read`` token calling anything but Read or Stats (or
Stats with ``reset``) is PERMISSION_DENIED. Health and reflection stay open, so that probes
and grpcurl ``list`` work without a token. Each refusal is one log event, without the token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import structlog
from google.protobuf.message import DecodeError

from mdcache.v1 import cache_pb2 as pb
from mdcache_server.tokens import Role, Tokens

log = structlog.get_logger("mdcache.auth")
OPEN = ("/grpc.health.v1.Health/", "/grpc.reflection.v1.", "/grpc.reflection.v1alpha.")
STATS = "/mdcache.v1.MarketDataCache/Stats"
READ_ONLY = frozenset(
    {"/mdcache.v1.MarketDataCache/Read", "/mdcache.v1.MarketDataCache/Subscribe", STATS}
)
Req = TypeVar("Req")
Resp = TypeVar("Resp")


def bearer(metadata: Any) -> str | None:
    """The token of the call's ``authorization: Bearer`` header, or None."""
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


def _refusal(code: grpc.StatusCode, details: str) -> grpc.RpcMethodHandler[Any, Any]:
    async def refuse(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(code, details)

    return grpc.unary_unary_rpc_method_handler(refuse)  # every call of the contract is unary


def _asks_reset(request: bytes) -> bool:
    """Whether a Stats request's bytes ask for a reset (the servicer parses them again)."""
    try:
        return pb.StatsRequest.FromString(request).reset
    except DecodeError:
        return False  # not a StatsRequest: the servicer answers INVALID_ARGUMENT itself


def _without_reset(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    """Stats for a read token: counters may be read, not reset (that changes every replica's)."""
    inner: Any = handler.unary_unary  # an async behaviour on the asyncio server
    assert inner is not None

    async def stats(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if _asks_reset(request):
            log.warning("auth_refused", method=STATS, status="PERMISSION_DENIED", role="read")
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, "a read token may not reset Stats"
            )
        return await inner(request, context)

    return grpc.unary_unary_rpc_method_handler(
        stats,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class BearerAuth(grpc.aio.ServerInterceptor):
    """Lets a call through to its handler only with a token allowed to make it."""

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Req, Resp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Req, Resp] | None:
        method = handler_call_details.method
        if method.startswith(OPEN):
            return await continuation(handler_call_details)
        token = bearer(handler_call_details.invocation_metadata)
        role = self.tokens.role_of(token) if token else None
        if role is None:
            reason = "no bearer token" if not token else "unknown token"
            log.warning("auth_refused", method=method, status="UNAUTHENTICATED", reason=reason)
            return _refusal(grpc.StatusCode.UNAUTHENTICATED, "a valid bearer token is required")
        if role is Role.READ and method == STATS:
            handler = await continuation(handler_call_details)
            return _without_reset(handler) if handler is not None else None
        if role is Role.READ and method not in READ_ONLY:
            log.warning("auth_refused", method=method, status="PERMISSION_DENIED", role="read")
            return _refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                f"a read token may not call {method.rpartition('/')[2]}",
            )
        return await continuation(handler_call_details)


def interceptors(tokens: Tokens) -> list[grpc.aio.ServerInterceptor]:
    """The server's interceptors: authentication when tokens are configured, else none."""
    return [BearerAuth(tokens)] if tokens else []
