"""The supervisor of the server's background work: no job ends without anyone noticing.

Every long-lived job (the health probe, retention, the usage flush, capacity checks)
runs in one anyio task group. A job that raises anything but a cancellation is logged
at error with its traceback (``background_job_failed``), counted
(``mdcache_background_failures_total{job}``), handed to its ``on_failure`` (the health
probe's turns health NOT_SERVING) and started again after a backoff that doubles from
``first_delay`` to ``max_delay`` while it keeps failing. Expected failures (the store
down) are the job's own business: ``cache.maintenance.every`` logs them and goes on.

``await stop()`` cancels every job and waits for them; what one raised meanwhile is
logged, not dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import structlog

log = structlog.get_logger(__name__)
Job = Callable[[], Awaitable[None]]
OnFailure = Callable[[BaseException], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    job: Job
    on_failure: OnFailure | None


class Supervisor:
    """``add()`` the jobs, ``await start()``, and ``await stop()`` on the way out."""

    def __init__(
        self,
        *,
        count_failure: Callable[[str], None] | None = None,
        first_delay: float = 0.1,
        max_delay: float = 30.0,
    ) -> None:
        self.count_failure = count_failure
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.failures: dict[str, int] = {}
        self._entries: list[_Entry] = []
        self._host: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None

    def add(self, name: str, job: Job, on_failure: OnFailure | None = None) -> None:
        """A job to run (``job()`` is called again for each restart); before :meth:`start`."""
        if self._host is not None:
            raise RuntimeError("the supervisor has started: add jobs before")
        self._entries.append(_Entry(name, job, on_failure))

    async def start(self) -> None:
        """Starts every job; returns at once."""
        if self._host is not None:
            raise RuntimeError("the supervisor has started already")
        self._stopping = asyncio.Event()
        started = asyncio.Event()
        self._host = asyncio.create_task(self._run(started), name="supervisor")
        self._host.add_done_callback(self._ended)
        await started.wait()

    async def _run(self, started: asyncio.Event) -> None:
        assert self._stopping is not None
        async with anyio.create_task_group() as group:
            for entry in self._entries:
                group.start_soon(self._keep, entry, name=entry.name)
            started.set()
            await self._stopping.wait()
            group.cancel_scope.cancel()

    async def _keep(self, entry: _Entry) -> None:
        """Runs one job, again and again after a backoff while it keeps failing."""
        delay = self.first_delay
        while True:
            began = time.monotonic()
            try:
                await entry.job()
            except Exception as exc:  # noqa: BLE001 (the point: a job never dies unseen)
                failure: BaseException = exc
            else:
                failure = RuntimeError("the job returned; a background job runs until cancelled")
            self.failures[entry.name] = self.failures.get(entry.name, 0) + 1
            if time.monotonic() - began >= self.max_delay:  # it ran a good while: start over
                delay = self.first_delay
            log.error(
                "background_job_failed",
                job=entry.name,
                error=str(failure) or type(failure).__name__,
                restart_in=delay,
                failures=self.failures[entry.name],
                exc_info=failure,
            )
            if self.count_failure is not None:
                self.count_failure(entry.name)
            if entry.on_failure is not None:
                try:
                    await entry.on_failure(failure)
                except Exception as exc:  # logged; the job is restarted all the same
                    log.error("background_on_failure_failed", job=entry.name, exc_info=exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_delay)
            log.info("background_job_restarted", job=entry.name)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """The task group ends only when stopped; anything else is logged here."""
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("supervisor_failed", error=str(exc), exc_info=exc)
        elif self._stopping is not None and not self._stopping.is_set():
            log.error("supervisor_failed", error="the task group ended before stop()")

    async def stop(self) -> None:
        """Cancels every job and waits for them to end; logs what any of them raised."""
        host = self._host
        if host is None or self._stopping is None:
            return
        self._stopping.set()
        await asyncio.wait([host])  # what it raised is logged by _ended
        log.info("background_stopped", failures=sum(self.failures.values()))
