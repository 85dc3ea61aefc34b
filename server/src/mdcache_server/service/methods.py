"""How the servicer's methods are served: registered methods and a generic handler."""

from __future__ import annotations

from typing import Any

import grpc

from mdcache.v1 import cache_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["MarketDataCache"].full_name


def add_to_server(servicer: object, server: grpc.aio.Server) -> None:
    """Serves the servicer's methods as the generated code does (registered methods, which
    gRPC's core matches before any Python runs, and a generic handler), but with no
    request deserializer: every method takes the request's bytes and parses them itself,
    so that a body it cannot parse is INVALID_ARGUMENT (gRPC's own parse answers
    UNKNOWN). Read also answers bytes it wrote itself."""
    rpc = grpc.unary_unary_rpc_method_handler
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        name: rpc(
            getattr(servicer, name),
            request_deserializer=None,  # bytes through
            response_serializer=None
            if name == "Read"
            else getattr(pb, f"{name}Response").SerializeToString,
        )
        for name in ("Write", "Read", "Purge", "Stats")
    }
    handlers["Subscribe"] = grpc.unary_stream_rpc_method_handler(
        servicer.Subscribe,  # type: ignore[attr-defined]
        request_deserializer=None,  # bytes through, as the others
        response_serializer=pb.SubscribeResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)
