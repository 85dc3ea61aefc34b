"""The bounded worker pool that runs every blocking store call off the event loop.

Each worker thread opens its own store connection on first use and keeps it for
its life (threads of a ``ThreadPoolExecutor`` live until shutdown, unlike
anyio's idle-expiring workers). A connection that failed with StoreUnavailable
is dropped, so the next call on that thread reconnects. At most ``max_pending``
calls wait for a worker; past that a call fails at once with Overloaded.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import structlog

from mdcache_server.errors import Overloaded, StoreUnavailable
from mdcache_server.store.base import Store, StoreConnection

T = TypeVar("T")
log = structlog.get_logger(__name__)


class WorkerPool:
    """``await pool.run(lambda conn: conn.read(...))`` runs on a worker with its connection."""

    def __init__(
        self,
        store: Store,
        *,
        workers: int,
        max_pending: int,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        self.store = store
        self.observe = observe  # called with each call's seconds in run(), waiting included
        self.workers = workers
        self.max_pending = max_pending
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="mdcache-store")
        self._local = threading.local()
        self._connections: set[StoreConnection] = set()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._closed = False

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
            conn.close()

    def _call(self, fn: Callable[[StoreConnection], T]) -> T:
        try:
            return fn(self._connection())
        except StoreUnavailable:
            self._drop_connection()
            raise

    async def run(self, fn: Callable[[StoreConnection], T]) -> T:
        """Runs ``fn`` with this worker's connection; raises Overloaded when the queue is full."""
        if self._closed:
            raise StoreUnavailable("the worker pool is closed: the server is stopping")
        if self._in_flight >= self.workers + self.max_pending:
            raise Overloaded(
                f"{self._in_flight} store calls in flight; the limit is "
                f"{self.workers} workers + {self.max_pending} queued"
            )
        self._in_flight += 1
        started = time.perf_counter()
        try:
            ctx = contextvars.copy_context()
            future = self._executor.submit(ctx.run, self._call, fn)
            return await asyncio.wrap_future(future)
        finally:
            self._in_flight -= 1
            if self.observe is not None:
                self.observe(time.perf_counter() - started)

    def close(self) -> None:
        """Waits for running calls, then closes every connection."""
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            connections, self._connections = self._connections, set()
        for conn in connections:
            conn.close()
