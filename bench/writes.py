"""Part 2, writes: batch ingest in rows per second, and single-record Write calls per second."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from bench import wire
from bench.load import closed_loop, process_cpu, summarize
from mdcache_client import Record, Series

Batch = dict[Series, list[Record]]
BATCH_ROWS = 1000


def batches(bars: dict[Series, list[Record]], rows: int = BATCH_ROWS) -> Iterator[Batch]:
    """The bars in batches of ``rows`` records (a batch may span two series), oldest first."""
    batch: Batch = {}
    size = 0
    for series, records in bars.items():
        for record in records:
            batch.setdefault(series, []).append(record)
            size += 1
            if size == rows:
                yield batch
                batch, size = {}, 0
    if batch:
        yield batch


async def ingest(
    send: Callable[[Batch], Awaitable[int]],
    bars: dict[Series, list[Record]],
    in_flight: int,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """Sends every batch, ``in_flight`` at a time; rows per second over the whole load."""
    queue = list(batches(bars))
    rows = 0
    latencies: list[float] = []

    async def sender() -> None:
        nonlocal rows
        while queue:
            batch = queue.pop(0)
            started = time.perf_counter()
            sent = await send(batch)  # not `rows += await ...`: that reads rows before awaiting
            rows += sent
            latencies.append(time.perf_counter() - started)

    cpu = process_cpu(server_pid) if server_pid else 0.0
    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(in_flight)))
    seconds = time.perf_counter() - started
    cpu = (process_cpu(server_pid) - cpu) if server_pid else 0.0
    latencies.sort()
    return {
        "rows": rows,
        "batches": len(latencies),
        "batch_rows": BATCH_ROWS,
        "in_flight": in_flight,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds, 1),
        "batch_p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "server_cpu_us_per_row": round(cpu / rows * 1e6, 2) if server_pid else None,
    }


def grpc_sender(call: wire.RawCall) -> Callable[[Batch], Awaitable[int]]:
    async def send(batch: Batch) -> int:
        await call(wire.write(batch))  # serialized per call, as a real ingester would
        return sum(len(records) for records in batch.values())

    return send


async def single_writes(
    call: wire.RawCall,
    payload: str,
    concurrency: int,
    seconds: float,
    warmup: float,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """Write calls of one fresh record each (a new bar), every caller into its own series."""
    counters = [0] * concurrency
    series = [Series(f"BENCH-W{concurrency}-{n}", "kline", "1m") for n in range(concurrency)]
    base_ms = 1_700_000_000_000

    async def one(n: int) -> None:
        counters[n] += 1
        record = Record(base_ms + counters[n] * 60_000, payload)
        await call(wire.write({series[n]: [record]}))

    samples = await closed_loop(one, concurrency, seconds, warmup, server_pid)
    return summarize([samples]).as_dict()
