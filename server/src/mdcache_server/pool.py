"""The bounded worker pool that runs every blocking store call off the event loop.

Each worker thread opens its own store connection on first use and keeps it for
its life. A connection that failed with StoreUnavailable is dropped, so the next call
on that thread reconnects. At most ``max_pending`` calls wait for a worker; past that a
call fails at once with Overloaded.

While the store is down, calls fail at once: a call that failed StoreDown (no store
server answered) opens the pool's breaker, and for ``cooldown`` seconds every call is
answered with that error without running; then one call at a time is let through as a
trial, and the first that succeeds closes the breaker. (A TDengine server that is down
takes seconds to refuse each request; without the breaker every call waiting for a
worker would wait that long in turn, and past its caller's deadline.)

Results come back to the event loop in batches: a worker appends what it finished to
one list and wakes the loop only when that list was empty, so under load one wake-up
answers many calls. (``ThreadPoolExecutor`` with ``wrap_future`` costs a concurrent
future, a condition and a self-pipe write for every call: at 32 callers the event-loop
thread spent 0.65 ms a cold Read with it, 0.44-0.58 ms with this; bench/PROFILE.md.)
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue
from typing import Any, Generic, TypeVar

import structlog

from mdcache_server.errors import Overloaded, StoreDown, StoreUnavailable
from mdcache_server.store.base import Store, StoreConnection

T = TypeVar("T")
log = structlog.get_logger(__name__)


@dataclass(slots=True)
class _Job(Generic[T]):
    """One call for a worker: what to run, in which context, and whom to answer."""

    fn: Callable[[StoreConnection], T]
    future: asyncio.Future[T]
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    outcome: tuple[bool, Any] = (False, None)  # (failed, result or exception)


class WorkerPool:
    """``await pool.run(lambda conn: conn.read(...))`` runs on a worker with its connection."""

    def __init__(
        self,
        store: Store,
        *,
        workers: int,
        max_pending: int,
        observe: Callable[[float, str], None] | None = None,
        cooldown: float = 1.0,
    ) -> None:
        self.store = store
        self.cooldown = cooldown
        self._failed: tuple[float, StoreDown] | None = None  # (when, why): breaker open
        self._trial = False  # a call is let through while the breaker is open
        self.observe = observe  # each call's seconds in run(), waiting included, and kind
        self.workers = workers
        self.max_pending = max_pending
        self._jobs: SimpleQueue[_Job[Any] | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._done: deque[_Job[Any]] = deque()
        self._waking = False  # a delivery is scheduled on the loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._local = threading.local()
        self._connections: set[StoreConnection] = set()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._closed = False
        self.reconnects = 0  # connections dropped after StoreUnavailable (a metric)

    @property
    def in_flight(self) -> int:
        """Calls running or waiting for a worker."""
        return self._in_flight

    def _connection(self) -> StoreConnection:
        conn: StoreConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.store.connect()
            self._local.conn = conn
            with self._lock:
                self._connections.add(conn)
        return conn

    def _drop_connection(self) -> None:
        conn: StoreConnection | None = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            with self._lock:
                self._connections.discard(conn)
                self.reconnects += 1
            conn.close()

    def _call(self, fn: Callable[[StoreConnection], T]) -> T:
        try:
            result = fn(self._connection())
        except StoreUnavailable as exc:
            if isinstance(exc, StoreDown):
                self._failed = (time.monotonic(), exc)
            self._drop_connection()
            raise
        self._failed = None
        return result

    def _admit(self) -> bool:
        """Raises the store's last failure while the breaker is open; True for a trial call."""
        failed = self._failed
        if failed is None:
            return False
        since, exc = failed
        if self._trial or time.monotonic() - since < self.cooldown:
            raise StoreUnavailable(f"{exc} (calls fail at once until the store answers again)")
        self._trial = True
        return True

    def _work(self, loop: asyncio.AbstractEventLoop) -> None:
        """A worker: runs jobs until it takes None, handing each outcome to the loop."""
        done = self._done
        while (job := self._jobs.get()) is not None:
            if job.future.cancelled():  # its caller went away before it started
                continue
            try:
                job.outcome = (False, job.context.run(self._call, job.fn))
            except BaseException as exc:  # noqa: BLE001 (raised to the caller, on the loop)
                job.outcome = (True, exc)
            done.append(job)
            if not self._waking:
                self._waking = True
                try:
                    loop.call_soon_threadsafe(self._deliver)
                except RuntimeError:  # the loop is closed: nobody waits for the answer
                    return

    def _deliver(self) -> None:
        """On the loop: answers every finished job."""
        self._waking = False
        done = self._done
        while done:
            job = done.popleft()
            if job.future.cancelled():
                continue
            failed, value = job.outcome
            if failed:
                job.future.set_exception(value)
            else:
                job.future.set_result(value)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        for n in range(self.workers):
            thread = threading.Thread(
                target=self._work, args=(loop,), name=f"mdcache-store_{n}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    async def run(self, fn: Callable[[StoreConnection], T], kind: str = "other") -> T:
        """Runs ``fn`` with this worker's connection; raises Overloaded when the queue is
        full. ``kind`` names the call in the metrics (``mdcache_store_calls_total``)."""
        if self._closed:
            raise StoreUnavailable("the worker pool is closed: the server is stopping")
        if self._in_flight >= self.workers + self.max_pending:
            raise Overloaded(
                f"{self._in_flight} store calls in flight; the limit is "
                f"{self.workers} workers + {self.max_pending} queued"
            )
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                raise RuntimeError("a worker pool serves one event loop")
            self._start(loop)
        trial = self._admit()
        self._in_flight += 1
        started = time.perf_counter()
        try:
            future: asyncio.Future[T] = loop.create_future()
            self._jobs.put(_Job(fn, future))
            return await future
        finally:
            if trial:
                self._trial = False
            self._in_flight -= 1
            if self.observe is not None:
                self.observe(time.perf_counter() - started, kind)

    def close(self) -> None:
        """Cancels the calls not started, waits for running ones, then closes every
        connection."""
        self._closed = True
        loop = self._loop
        while True:
            try:
                job = self._jobs.get_nowait()
            except Empty:
                break
            if job is not None and loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(job.future.cancel)
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        with self._lock:
            connections, self._connections = self._connections, set()
        for conn in connections:
            conn.close()
