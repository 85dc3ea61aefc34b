"""Flights (blocking flavour): concurrent callers in one process share work.

:class:`SingleFlight`: calls with the same key share one execution. The first caller
of a key starts the work; callers of the same key that arrive before it ends wait for its
outcome, a result or an exception, and get the same. A caller that arrives after it ends
starts anew.

:class:`RangeFlight`: loads of ranges of a series, shared by overlapping callers. A
caller loads only the parts of its ranges that no load in flight covers, and waits for
the loads in flight that cover the rest (see :mod:`mdcache_client._topup`).

How the work runs (for asyncio, in a task of its own that a cancelled caller leaves
running for the others; blocking, in the first caller's own thread, so that two callers
never wait for each other) is :class:`~mdcache_client._concurrency.Flight`'s.

Generated from _flight_aio.py by scripts/gen-sync-client; do not edit.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from mdcache_client._concurrency import Flight, Lock
from mdcache_client._topup import _Recent, overlaps, subtract
from mdcache_client._types import Record, Series, Window

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Calls with the same key share one execution."""

    def __init__(self) -> None:
        self._lock = Lock()
        self._flights: dict[Hashable, Flight[T]] = {}

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
                flight = self._flights[key] = Flight()
            flight.callers += 1
        if leading:
            flight.start(work, lambda: self._finished(key))
        return flight.result()

    def _finished(self, key: Hashable) -> None:
        with self._lock:
            del self._flights[key]


class RangeFlight:
    """Loads of ranges in flight per series, shared by overlapping callers."""

    def __init__(self) -> None:
        self._lock = Lock()
        self._flying: dict[Series, list[tuple[Window, Flight[list[Record]]]]] = {}
        self._recent: dict[Series, _Recent[Flight[list[Record]]]] = {}

    @contextmanager
    def watching(self, series: Series) -> Iterator[int]:
        """Around a call's cache read and its loads: the mark to give ``load``."""
        with self._lock:
            recent = self._recent.setdefault(series, _Recent())
            mark = recent.mark()
        try:
            yield mark
        finally:
            with self._lock:
                if recent.release(mark):
                    self._recent.pop(series, None)

    def load(
        self,
        series: Series,
        ranges: list[Window],
        work: Callable[[list[Window]], list[Record]],
        mark: int,
    ) -> list[Record]:
        """Loads ``ranges`` with ``work``, sharing the parts in flight, or that ended
        since ``mark`` (this caller's read may lack them)."""
        with self._lock:
            recent = self._recent.get(series)
            known = [*self._flying.get(series, ()), *(recent.since(mark) if recent else ())]
            shared = list(dict.fromkeys(f for w, f in known if any(overlaps(w, r) for r in ranges)))
            own = subtract(ranges, [w for w, _ in known])
            mine: Flight[list[Record]] | None = None
            if own:
                mine = Flight()
                self._flying.setdefault(series, []).extend((w, mine) for w in own)
                shared.append(mine)
        if mine is not None:
            flight = mine
            flight.start(lambda: work(own), lambda: self._finished(series, flight))
        records: list[Record] = []
        for loaded in Flight.gather(shared):
            records.extend(loaded)
        return records

    def _finished(self, series: Series, flight: Flight[list[Record]]) -> None:
        with self._lock:
            flying = self._flying.get(series, [])
            left = [(w, f) for w, f in flying if f is not flight]
            if left:
                self._flying[series] = left
            else:
                self._flying.pop(series, None)
            recent = self._recent.get(series)
            if recent is not None and not flight.failed():
                recent.loads.extend((w, f) for w, f in flying if f is flight)
