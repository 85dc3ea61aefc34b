"""Waiting for a condition instead of sleeping a fixed time: blocking, or on the event loop."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


class NotInTime(AssertionError):
    """A condition not met before its deadline (an assertion, so that a test fails with it)."""


def wait_until(
    check: Callable[[], object],
    seconds: float = 10,
    what: str = "condition",
    interval: float = 0.05,
    tolerate: tuple[type[Exception], ...] = (),
) -> float:
    """Calls ``check`` until it returns a true value, every ``interval`` s; the seconds it
    took. An exception of a type in ``tolerate`` counts as not yet (a node still starting)."""
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except tolerate:
            pass
        if time.monotonic() - started > seconds:
            raise NotInTime(f"{what} not met within {seconds:g} s")
        time.sleep(interval)


async def eventually(
    check: Callable[[], Awaitable[object]] | Callable[[], object],
    seconds: float = 10,
    what: str = "condition",
    interval: float = 0.05,
) -> float:
    """Calls ``check`` (awaiting what it returns, if awaitable) until it gives a true value,
    every ``interval`` s on the event loop; the seconds it took."""
    started = time.monotonic()
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            break
        if time.monotonic() - started > seconds:
            raise NotInTime(f"{what} not met within {seconds:g} s")
        await asyncio.sleep(interval)
    return time.monotonic() - started
