"""The client's exceptions, and the one table that maps gRPC status codes to them.

::

    MdcacheError                  every failed call; .code and .details kept
    ├── InvalidArgumentError      INVALID_ARGUMENT (the details name the field)
    ├── UnavailableError          UNAVAILABLE: server or store unreachable
    ├── DeadlineExceededError     DEADLINE_EXCEEDED
    ├── ResourceExhaustedError    RESOURCE_EXHAUSTED: server overloaded or message too large
    ├── UnauthenticatedError      UNAUTHENTICATED: no token, or one the server does not know
    └── PermissionDeniedError     PERMISSION_DENIED: a read-only token called Write or Purge

Any other status is a plain ``MdcacheError``.
"""

from __future__ import annotations

from typing import Final

import grpc


class MdcacheError(Exception):
    """A call failed; ``code`` is the gRPC status, ``details`` the server's message."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class InvalidArgumentError(MdcacheError):
    """The request was invalid; nothing of it was stored."""


class UnavailableError(MdcacheError):
    """The server, or its store, cannot be reached now."""


class DeadlineExceededError(MdcacheError):
    """The call did not finish within its deadline."""


class ResourceExhaustedError(MdcacheError):
    """The server is overloaded, or a message exceeds its size limit."""


class UnauthenticatedError(MdcacheError):
    """The call carried no bearer token, or one the server does not know."""


class PermissionDeniedError(MdcacheError):
    """The call's token may not do this (a read-only token calling Write or Purge)."""


ERRORS: Final[dict[grpc.StatusCode, type[MdcacheError]]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
}


def from_rpc_error(exc: grpc.RpcError) -> MdcacheError:
    """The client exception for a failed call."""
    code: grpc.StatusCode = exc.code()
    details: str = exc.details() or ""
    return ERRORS.get(code, MdcacheError)(code, details)
