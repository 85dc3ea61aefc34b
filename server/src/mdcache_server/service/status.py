"""The one table that maps the server's errors to gRPC status codes."""

from __future__ import annotations

from typing import Final

import grpc

from mdcache_server.errors import (
    InvalidArgument,
    MdcacheError,
    Overloaded,
    ResumeLost,
    Stopping,
    StoreError,
    StoreUnavailable,
    Unadjustable,
)

STATUS: Final[dict[type[MdcacheError], grpc.StatusCode]] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ResumeLost: grpc.StatusCode.FAILED_PRECONDITION,
    Unadjustable: grpc.StatusCode.FAILED_PRECONDITION,
    Stopping: grpc.StatusCode.UNAVAILABLE,
    StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
    StoreError: grpc.StatusCode.INTERNAL,
}


def status_for(exc: MdcacheError) -> grpc.StatusCode:
    """The status of an error: its own class's, else its nearest ancestor's, else INTERNAL."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return grpc.StatusCode.INTERNAL
