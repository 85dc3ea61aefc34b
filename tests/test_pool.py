"""The worker pool: each call's own answer or error, batched hand-back, cancel and close."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdcache_server.errors import StoreDown, StoreUnavailable
from mdcache_server.pool import WorkerPool
from mdcache_server.store.base import StoreConnection
from mdcache_server.store.sqlite import SqliteStore

CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="")


def store(tmp_path: Path) -> SqliteStore:
    """A store whose file is made (the server prepares it before the workers share it)."""
    store = SqliteStore(tmp_path / "cache.sqlite3")
    conn = store.connect()
    conn.ensure_schema()
    conn.close()
    return store


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[WorkerPool]:
    pool = WorkerPool(store(tmp_path), workers=2, max_pending=1000)
    yield pool
    pool.close()


def version(conn: StoreConnection) -> str:
    return conn.server_version()


async def test_every_call_gets_its_own_answer_with_its_callers_context(pool: WorkerPool) -> None:
    async def one(n: int) -> tuple[int, str, str]:
        CALLER.set(f"caller {n}")
        return await pool.run(lambda conn: (n, CALLER.get(), version(conn)))

    answers = await asyncio.gather(*(one(n) for n in range(500)))
    assert [(n, caller) for n, caller, _ in answers] == [(n, f"caller {n}") for n in range(500)]
    assert {v for _, _, v in answers} == {version(pool.store.connect())}
    assert pool.in_flight == 0


async def test_calls_finished_together_are_answered_by_one_wake_up(
    pool: WorkerPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    wake_ups = 0
    deliver = pool._deliver

    def counted() -> None:
        nonlocal wake_ups
        wake_ups += 1
        deliver()

    monkeypatch.setattr(pool, "_deliver", counted)
    await pool.run(version)  # the workers are started
    wake_ups = 0
    finished = threading.Semaphore(0)

    def work(n: int) -> int:
        finished.release()
        return n

    calls = [asyncio.ensure_future(pool.run(lambda _conn, n=n: work(n))) for n in range(50)]
    await asyncio.sleep(0)  # every call is queued; now hold the loop until all have run
    for _ in calls:
        assert finished.acquire(timeout=10)
    assert await asyncio.gather(*calls) == list(range(50))
    assert 1 <= wake_ups <= 2  # at most one more: a worker may wake the loop as it drains


async def test_an_error_reaches_its_caller_and_a_lost_store_reconnects(pool: WorkerPool) -> None:
    seen: list[StoreConnection] = []

    def fail(conn: StoreConnection) -> None:
        seen.append(conn)
        raise StoreUnavailable("the file went away")

    one = WorkerPool(pool.store, workers=1, max_pending=10)
    try:
        with pytest.raises(StoreUnavailable, match="went away"):
            await one.run(fail)
        with pytest.raises(ZeroDivisionError):
            await one.run(lambda conn: seen.append(conn) or 1 // 0)
        assert seen[0] is not seen[1]  # the failed connection was dropped, a new one made
        assert await one.run(version)
    finally:
        one.close()


async def test_a_store_that_is_down_fails_calls_at_once_then_one_trial_call_reopens_it(
    pool: WorkerPool,
) -> None:
    ran: list[str] = []

    def down(conn: StoreConnection) -> None:
        ran.append("down")
        raise StoreDown("no server answered")

    def answer(conn: StoreConnection) -> str:
        ran.append("answer")
        return "ok"

    one = WorkerPool(pool.store, workers=1, max_pending=10, cooldown=1.0)
    try:
        with pytest.raises(StoreDown):
            await one.run(down)
        for _ in range(3):  # within the cooldown: answered at once, nothing runs
            with pytest.raises(StoreUnavailable, match=r"no server answered .*fail at once"):
                await one.run(answer)
        assert ran == ["down"]
        await asyncio.sleep(1.05)
        trial = asyncio.ensure_future(one.run(down))  # the one call let through
        await asyncio.sleep(0)
        with pytest.raises(StoreUnavailable, match="fail at once"):  # others wait for it
            await one.run(answer)
        with pytest.raises(StoreDown):
            await trial
        await asyncio.sleep(1.05)
        assert await one.run(answer) == "ok"  # the store answers: the breaker closes
        assert await one.run(answer) == "ok"
        assert ran == ["down", "down", "answer", "answer"]
    finally:
        one.close()


async def test_a_call_cancelled_before_it_starts_never_runs(pool: WorkerPool) -> None:
    gate = threading.Event()
    ran: list[int] = []
    blockers = [asyncio.ensure_future(pool.run(lambda _c: gate.wait(10))) for _ in range(2)]
    await asyncio.sleep(0.05)  # both workers are held
    waiting = asyncio.ensure_future(pool.run(lambda _c: ran.append(1)))
    await asyncio.sleep(0.05)
    waiting.cancel()
    gate.set()
    assert await asyncio.gather(*blockers) == [True, True]
    await pool.run(version)  # every job queued before this one has been taken
    assert ran == []
    assert waiting.cancelled()


async def test_close_cancels_what_waits_and_refuses_new_calls(tmp_path: Path) -> None:
    pool = WorkerPool(store(tmp_path), workers=1, max_pending=10)
    gate, took = threading.Event(), threading.Event()
    running = asyncio.ensure_future(pool.run(lambda _c: took.set() or gate.wait(10)))
    assert await asyncio.to_thread(took.wait, 10)  # the one worker runs it
    waiting = asyncio.ensure_future(pool.run(version))
    await asyncio.sleep(0.05)
    closing = asyncio.ensure_future(asyncio.to_thread(pool.close))
    deadline = time.monotonic() + 10
    while not waiting.done():  # close cancels what waits without waiting for the worker
        assert time.monotonic() < deadline, "close did not cancel the waiting call"
        await asyncio.sleep(0.01)
    gate.set()
    await closing
    assert await running is True  # a running call finishes
    with pytest.raises(asyncio.CancelledError):
        await waiting
    with pytest.raises(StoreUnavailable, match="closed"):
        await pool.run(version)
