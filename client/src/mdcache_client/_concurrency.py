"""The few primitives whose asyncio and blocking flavours differ in more than words.

The client's pairs (``AsyncClient``/``Client``, the subscriptions, the flights, the
cache-aside part) are written once, for asyncio, in the ``*_aio.py`` modules;
``scripts/gen-sync-client`` rewrites them into the ``*_sync.py`` modules, word for word
(``AsyncX`` -> ``X``, ``async def`` -> ``def``, ``await`` dropped), as httpcore's unasync
does. What a rewrite of words cannot turn into its blocking twin lives here, once per
flavour: the lock, the shared work in flight, cancellation and the pause between retries.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

T = TypeVar("T")

AsyncCancelled = asyncio.CancelledError
Lock = threading.Lock


class Cancelled(BaseException):
    """Never raised: a blocking call is cancelled by closing it, which raises grpc.RpcError
    (the twin of asyncio's CancelledError, which closing an asyncio call raises)."""


class AsyncLock:
    """Nothing to hold: with asyncio, the code between two awaits runs alone."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class AsyncFlight(Generic[T]):
    """Work run once for the callers that share it, in a task of its own: a caller that
    is cancelled leaves it running for the others (``asyncio.shield``)."""

    __slots__ = ("_task", "callers")

    def __init__(self) -> None:
        self._task: asyncio.Task[T] | None = None
        self.callers = 0

    def start(self, work: Callable[[], Coroutine[Any, Any, T]], done: Callable[[], None]) -> None:
        """Starts ``work``; ``done`` is called when it ends."""
        task = self._task = asyncio.create_task(work())

        def finished(_: asyncio.Task[T]) -> None:
            if not task.cancelled():
                task.exception()  # retrieved here too, for when every caller was cancelled
            done()

        task.add_done_callback(finished)

    async def result(self) -> T:
        return await asyncio.shield(self._started())

    def failed(self) -> bool:
        task = self._started()
        return task.cancelled() or task.exception() is not None

    @staticmethod
    async def gather(flights: Iterable[AsyncFlight[T]]) -> list[T]:
        """The results of every flight, in order; the first exception is raised."""
        return await asyncio.shield(asyncio.gather(*(f._started() for f in flights)))

    def _started(self) -> asyncio.Task[T]:
        if self._task is None:
            raise RuntimeError("flight not started")
        return self._task


class Flight(Generic[T]):
    """Work run once for the callers that share it, by the first, in its own thread;
    the others wait for its outcome."""

    __slots__ = ("_future", "callers")

    def __init__(self) -> None:
        self._future: Future[T] = Future()
        self.callers = 0

    def start(self, work: Callable[[], T], done: Callable[[], None]) -> None:
        """Runs ``work`` now (raising what it raises); ``done`` is called when it ends."""
        try:
            result = work()
        except BaseException as exc:
            self._future.set_exception(exc)
            raise
        else:
            self._future.set_result(result)
        finally:
            done()

    def result(self) -> T:
        return self._future.result()

    def failed(self) -> bool:
        return self._future.exception() is not None

    @staticmethod
    def gather(flights: Iterable[Flight[T]]) -> list[T]:
        """The results of every flight, in order; the first exception is raised."""
        return [f.result() for f in flights]


class AsyncBackoff:
    """Pauses between retries: ``first`` seconds, doubled after each, at most ``most``."""

    __slots__ = ("delay", "first", "most")

    def __init__(self, first: float, most: float) -> None:
        self.first, self.most, self.delay = first, most, first

    def reset(self) -> None:
        self.delay = self.first

    async def wait(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.most)


class Backoff:
    """Pauses between retries: ``first`` seconds, doubled after each, at most ``most``."""

    __slots__ = ("delay", "first", "most")

    def __init__(self, first: float, most: float) -> None:
        self.first, self.most, self.delay = first, most, first

    def reset(self) -> None:
        self.delay = self.first

    def wait(self) -> None:
        time.sleep(self.delay)
        self.delay = min(self.delay * 2, self.most)
