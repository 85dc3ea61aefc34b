"""Structured logging: structlog events, as JSON lines or for a terminal."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _utc_now(
    logger: object, method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """The time, as a datetime that orjson writes in ISO 8601 (in C, unlike isoformat())."""
    event["timestamp"] = datetime.now(UTC)
    return event


def configure(level: str, fmt: str) -> None:
    """Configures structlog once, in ``main()``; events go to standard error."""
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    # JSON lines through orjson, as bytes: a fifth of the standard library's cost per event,
    # which matters at one event per call.
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer()
        if console
        else structlog.processors.JSONRenderer(serializer=orjson.dumps)
    )
    factory: Any = (
        structlog.PrintLoggerFactory(sys.stderr)
        if console
        else structlog.BytesLoggerFactory(sys.stderr.buffer)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True) if console else _utc_now,
            structlog.processors.format_exc_info
            if not console
            else structlog.processors.StackInfoRenderer(),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
