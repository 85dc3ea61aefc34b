"""The workload of a partition run, through the real client: 8 writers and 8 readers, each
calling both replicas in turn, and two Subscribe streams, one on each replica; every call
and every record given goes into a :class:`~tests.partition.history.History`.

Each writer owns two series (so that per-series acknowledged order is its call order) and
writes records with timestamps increasing by one: single records, batches of three, and
Writes of both its series in one call (``write_many``). Payloads carry quotes, a backslash
and non-ASCII text, so that "byte for byte" means something. Readers ask for the latest
record, or a window around the newest acknowledged one, of any series.
"""

from __future__ import annotations

import functools
import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from mdcache_client import Client, MdcacheError, Record, Series

from .history import Delivery, History, Read, Rec, Stream, Write

WRITERS = READERS = 8
DEADLINE = 5.0  # seconds, each call's


def outcome(exc: BaseException) -> str:
    if isinstance(exc, MdcacheError):
        return f"{exc.code.name}: {exc.details}"
    return f"EXCEPTION: {exc!r}"


class Workload:
    """Started by :meth:`start`, ended by :meth:`stop` (then :meth:`drain` the streams)."""

    def __init__(self, tag: str, targets: dict[str, str], history: History) -> None:
        self.tag, self.targets, self.history = tag, targets, history
        self.base_ms = int(time.time() * 1000) - 60_000
        self.series = {
            i: (Series(f"{tag}P{i}", "quote", "tick"), Series(f"{tag}P{i}", "trade", "tick"))
            for i in range(WRITERS)
        }
        self.newest: dict[Series, int] = {}  # newest acknowledged ts, for readers' windows
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.followers: list[threading.Thread] = []
        self.subscriptions: list[Any] = []
        self.clients: list[Client] = []

    def _clients(self) -> list[tuple[str, Client]]:
        made = [(name, Client(t, timeout=DEADLINE)) for name, t in self.targets.items()]
        self.clients.extend(c for _, c in made)
        return made

    def start(self) -> None:
        names = list(self.targets)
        followed = [
            [self.series[i][0] for i in range(0, WRITERS, 2)],
            [self.series[i][0] for i in range(1, WRITERS, 2)] + [self.series[0][1]],
        ]
        for n, series in enumerate(followed):
            self._subscribe(f"s{n + 1}", names[n % len(names)], series)
        for i in range(WRITERS):
            self._spawn(f"w{i}", functools.partial(self._write, i))
        for i in range(READERS):
            self._spawn(f"r{i}", functools.partial(self._read, i))

    def _spawn(self, name: str, body: Callable[[], None]) -> threading.Thread:
        thread = threading.Thread(target=body, name=f"{self.tag}-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread

    # -- writers --------------------------------------------------------------------------

    def _payload(self, i: int, ts: int) -> str:
        return json.dumps({"w": i, "ts": ts, "note": "é \"q\" 'x' \\ ; 行情"}, ensure_ascii=False)

    def _write(self, i: int) -> None:
        a, b = self.series[i]
        clients = self._clients()
        ts = self.base_ms
        k = 0
        while not self.stopping.is_set():
            replica, client = clients[(k + i) % len(clients)]
            shape = k % 4
            batch: dict[Series, list[Rec]] = {}
            if shape == 0:
                batch[a] = [(ts + n, self._payload(i, ts + n)) for n in range(1, 4)]
            elif shape == 1:
                batch[a] = [(ts + 1, self._payload(i, ts + 1))]
            elif shape == 2:
                batch[a] = [(ts + n, self._payload(i, ts + n)) for n in (1, 2)]
                batch[b] = [(ts + n, self._payload(i, ts + n)) for n in (1, 2)]
            else:
                batch[b] = [(ts + 1, self._payload(i, ts + 1))]
            ts = max(r[0] for records in batch.values() for r in records)
            call = Write(f"w{i}", replica, time.monotonic(), 0.0, DEADLINE, batch)
            try:
                if len(batch) == 1:
                    ((series, records),) = batch.items()
                    client.write(series, [Record(t, p) for t, p in records])
                else:
                    client.write_many({s: [Record(t, p) for t, p in r] for s, r in batch.items()})
            except Exception as exc:  # (every outcome is recorded)
                call.error = outcome(exc)
            call.end = time.monotonic()
            self.history.writes.append(call)
            if call.ok:
                for series, records in batch.items():
                    self.newest[series] = records[-1][0]
            k += 1
            time.sleep(0.01)

    # -- readers --------------------------------------------------------------------------

    def _read(self, i: int) -> None:
        rnd = random.Random(i)
        clients = self._clients()
        every = [s for pair in self.series.values() for s in pair]
        k = 0
        while not self.stopping.is_set():
            replica, client = clients[(k + i) % len(clients)]
            series = rnd.choice(every)
            latest = rnd.random() < 0.5
            call = Read(f"r{i}", replica, time.monotonic(), 0.0, DEADLINE, series, latest)
            try:
                if latest:
                    result = client.read(series, limit=1, newest_first=True)
                else:
                    hi = self.newest.get(series, self.base_ms)
                    call.start_ms = max(self.base_ms, hi - rnd.randint(3, 60))
                    call.end_ms = hi + rnd.randint(0, 20)
                    result = client.read(series, start_ms=call.start_ms, end_ms=call.end_ms)
                call.answer = [(r.ts_ms or 0, r.payload) for r in result.records]
                call.truncated = result.truncated
            except Exception as exc:  # (every outcome is recorded)
                call.error = outcome(exc)
            call.end = time.monotonic()
            self.history.reads.append(call)
            k += 1
            time.sleep(0.01)

    # -- streams --------------------------------------------------------------------------

    def _subscribe(self, name: str, replica: str, series: list[Series]) -> None:
        client = Client(self.targets[replica], timeout=DEADLINE)
        self.clients.append(client)
        stream = Stream(name, replica, series, time.monotonic())
        self.history.streams.append(stream)
        subscription = client.subscribe(series, since_ms=self.base_ms)
        self.subscriptions.append(subscription)

        def follow() -> None:
            try:
                for change in subscription:
                    record = (change.record.ts_ms or 0, change.record.payload)
                    stream.deliveries.append(
                        Delivery(change.series, record, time.monotonic(), change.replayed)
                    )
            except Exception as exc:  # (recorded: the checker judges it)
                stream.error = outcome(exc)

        self.followers.append(self._spawn(name, follow))

    # -- ending ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Writers and readers end (their calls in flight finish first)."""
        self.stopping.set()
        for thread in self.threads:
            if thread not in self.followers:
                thread.join(DEADLINE * 3)

    def drain(self, seconds: float = 40) -> float:
        """Waits until each stream gave every acknowledged record of its series (or
        ``seconds`` passed), then closes the streams; returns how long it waited."""
        started = time.monotonic()
        acked = self.history.acked()

        def behind() -> int:
            missing = 0
            for stream in self.history.streams:
                given = {d.record for d in stream.deliveries}
                for series in stream.series:
                    missing += sum(1 for rec, _ in acked.get(series, []) if rec not in given)
            return missing

        while behind() and time.monotonic() - started < seconds:
            time.sleep(0.2)
        waited = time.monotonic() - started
        for subscription in self.subscriptions:
            subscription.close()
        for thread in self.threads:
            thread.join(10)
        for client in self.clients:
            client.close()
        return waited

    def mine(self, series: Series) -> bool:
        return series.symbol.startswith(f"{self.tag}P")
