"""Single flight: concurrent identical calls in one process share one execution.

The first caller of a key runs the work; callers of the same key that arrive before it
ends wait for its outcome, a result or an exception, and get the same. A caller that
arrives after it ends starts anew. ``AsyncSingleFlight`` serves ``AsyncClient`` (a dict of
tasks), ``SingleFlight`` serves ``Client`` (a dict of futures under a lock).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Hashable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class AsyncSingleFlight(Generic[T]):
    """Single flight for coroutines.

    The work runs in a task of its own, and each caller awaits it through
    ``asyncio.shield``: a caller that is cancelled leaves the work running for the others.
    """

    def __init__(self) -> None:
        self._tasks: dict[Hashable, asyncio.Task[T]] = {}
        self._callers: dict[Hashable, int] = {}

    def callers(self, key: Hashable) -> int:
        """How many callers share the work in flight for ``key`` (0 when none)."""
        return self._callers.get(key, 0)

    async def run(self, key: Hashable, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.create_task(work())
            self._tasks[key] = task
            self._callers[key] = 0
            task.add_done_callback(lambda done: self._finished(key, done))
        self._callers[key] += 1
        return await asyncio.shield(task)

    def _finished(self, key: Hashable, task: asyncio.Task[T]) -> None:
        del self._tasks[key], self._callers[key]
        if not task.cancelled():
            task.exception()  # retrieved here too, for when every caller was cancelled


class _Flight(Generic[T]):
    __slots__ = ("callers", "future")

    def __init__(self) -> None:
        self.future: Future[T] = Future()
        self.callers = 1


class SingleFlight(Generic[T]):
    """Single flight for threads: the first caller runs the work in its own thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight[T]] = {}

    def callers(self, key: Hashable) -> int:
        """How many callers share the work in flight for ``key`` (0 when none)."""
        with self._lock:
            flight = self._flights.get(key)
            return flight.callers if flight else 0

    def run(self, key: Hashable, work: Callable[[], T]) -> T:
        with self._lock:
            flight = self._flights.get(key)
            leading = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
            else:
                flight.callers += 1
        if not leading:
            return flight.future.result()
        try:
            result = work()
        except BaseException as exc:
            flight.future.set_exception(exc)
            raise
        finally:
            with self._lock:
                del self._flights[key]
        flight.future.set_result(result)
        return result
