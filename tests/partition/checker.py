"""The checker over a partition run's history: each rule returns its violations (want 0).

- :func:`lost`: every acknowledged record is in the store after the heal, byte for byte;
- :func:`stale`: no Read answer older than the freshness promise (pluggable: :class:`Strict`,
  a strict Read's; :class:`Bounded`, and :class:`ReadYourWrites`, the README's default);
- :func:`wrong`: no Read answers a record no Write carried (or another payload than it);
- :func:`failures`: a call that fails answers UNAVAILABLE or DEADLINE_EXCEEDED, within its
  deadline (never UNKNOWN, never another status or a client-side exception);
- :func:`streams`: each Subscribe stream gives every acknowledged record of its series once,
  in per-series acknowledged order, and nothing no Write carried for that series (0 gaps,
  0 duplicates, 0 out of order, 0 foreign);
- :func:`recovery`: from the heal to the first successful Write and Read through each
  replica (reported, not judged).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from mdcache_client import Series

from .history import History, Read, Rec, Write

ALLOWED_ERRORS = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})
DEADLINE_SLACK = 1.0  # seconds past a call's deadline allowed for scheduling on a busy host


@dataclass(frozen=True)
class Violation:
    rule: str
    detail: str


class Promise(Protocol):
    """Which acknowledged records a Read must show: those acknowledged ``(rec, ack_end,
    writer)`` early enough for this Read."""

    @property
    def name(self) -> str: ...

    def due(self, read: Read, ack_end: float, writer: str) -> bool: ...


@dataclass(frozen=True)
class Strict:
    """A strict Read: every Write acknowledged before it began is in its answer."""

    name: str = "strict"

    def due(self, read: Read, ack_end: float, writer: str) -> bool:
        return ack_end < read.start


@dataclass(frozen=True)
class Bounded:
    """Bounded staleness: a Write acknowledged ``bound_ms`` before a Read began is in it."""

    bound_ms: float
    name: str = "bounded"

    def due(self, read: Read, ack_end: float, writer: str) -> bool:
        return ack_end < read.start - self.bound_ms / 1000


@dataclass(frozen=True)
class ReadYourWrites:
    """The caller's own acknowledged Writes at once, others' within ``bound_ms``."""

    bound_ms: float
    name: str = "read-your-writes"

    def due(self, read: Read, ack_end: float, writer: str) -> bool:
        if writer == read.caller:
            return ack_end < read.start
        return ack_end < read.start - self.bound_ms / 1000


def lost(history: History, stored: dict[Series, dict[int, str]]) -> list[Violation]:
    """Each acknowledged record, as written, in ``stored`` (the store read after the heal)."""
    out = []
    for series, acked in history.acked().items():
        held = stored.get(series, {})
        for (ts, payload), _ in acked:
            if ts not in held:
                out.append(Violation("lost", f"{series} ts={ts}: acknowledged, not stored"))
            elif held[ts] != payload:
                out.append(
                    Violation("lost", f"{series} ts={ts}: stored {held[ts]!r}, acked {payload!r}")
                )
    return out


def _acked_by(history: History) -> dict[Series, list[tuple[Rec, float, str]]]:
    out: dict[Series, list[tuple[Rec, float, str]]] = {}
    for w in history.writes:
        if w.ok:
            for series, records in w.records.items():
                out.setdefault(series, []).extend((r, w.end, w.caller) for r in records)
    return out


def stale(history: History, promise: Promise) -> list[Violation]:
    """Reads whose answer misses a record the promise says it must show."""
    acked = _acked_by(history)
    out = []
    for read in history.reads:
        if not read.ok:
            continue
        due = [rec for rec, end, who in acked.get(read.series, []) if promise.due(read, end, who)]
        if read.latest:
            if not due:
                continue
            newest_due = max(ts for ts, _ in due)
            newest = max((ts for ts, _ in read.answer), default=None)
            if newest is None or newest < newest_due:
                out.append(
                    Violation(
                        f"stale ({promise.name})",
                        f"{read.caller} via {read.replica}: latest of {read.series} answered "
                        f"ts={newest}, ts={newest_due} was due",
                    )
                )
            continue
        lo = read.start_ms if read.start_ms is not None else -(2**63)
        hi = read.end_ms if read.end_ms is not None else 2**63
        answered = set(read.answer)
        missing = [r for r in due if lo <= r[0] <= hi and r not in answered]
        if missing and not read.truncated:
            out.append(
                Violation(
                    f"stale ({promise.name})",
                    f"{read.caller} via {read.replica}: window [{lo}, {hi}] of {read.series} "
                    f"misses {len(missing)} due record(s), first ts={missing[0][0]}",
                )
            )
    return out


def wrong(history: History) -> list[Violation]:
    """Reads that answer a record no Write carried, or a window's record outside it."""
    attempted = history.attempted()
    out = []
    for read in history.reads:
        if not read.ok:
            continue
        known = attempted.get(read.series, {})
        for ts, payload in read.answer:
            if known.get(ts) != payload:
                out.append(
                    Violation(
                        "wrong",
                        f"{read.caller} via {read.replica}: {read.series} ts={ts} answered "
                        f"{payload!r}, written {known.get(ts)!r}",
                    )
                )
        if not read.latest:
            lo = read.start_ms if read.start_ms is not None else -(2**63)
            hi = read.end_ms if read.end_ms is not None else 2**63
            outside = [ts for ts, _ in read.answer if not lo <= ts <= hi]
            if outside:
                out.append(Violation("wrong", f"{read.series}: ts={outside[0]} outside window"))
        if read.latest and len(read.answer) > 1:
            out.append(Violation("wrong", f"{read.series}: latest answered {len(read.answer)}"))
    return out


def failures(history: History, allowed: Iterable[str] = ALLOWED_ERRORS) -> list[Violation]:
    """Failed calls: an allowed status, within the call's deadline."""
    allowed = frozenset(allowed)
    out = []
    calls: list[tuple[str, Write | Read]] = [("Write", w) for w in history.writes]
    calls += [("Read", r) for r in history.reads]
    for kind, call in calls:
        if call.error is None:
            continue
        code = call.error.split(":")[0]
        took = call.end - call.start
        if code not in allowed:
            out.append(Violation("failure", f"{kind} via {call.replica} failed {call.error}"))
        elif took > call.deadline + DEADLINE_SLACK:
            out.append(
                Violation(
                    "failure",
                    f"{kind} via {call.replica} failed {code} after {took:.1f} s, "
                    f"deadline {call.deadline:g} s",
                )
            )
    return out


def streams(history: History) -> list[Violation]:
    """Per stream and followed series: each acknowledged record once, in acknowledged
    order; no record given twice (acknowledged or not)."""
    acked = history.acked()
    attempted = history.attempted()
    out = []
    for stream in history.streams:
        if stream.error is not None:
            out.append(Violation("stream", f"{stream.name} ended with {stream.error}"))
        for series in stream.series:
            given = [d.record for d in stream.deliveries if d.series == series]
            foreign = [r for r in given if attempted.get(series, {}).get(r[0]) != r[1]]
            if foreign:
                out.append(
                    Violation(
                        "stream",
                        f"{stream.name} {series}: {len(foreign)} record(s) no Write carried "
                        f"for this series, first ts={foreign[0][0]} {foreign[0][1]!r}",
                    )
                )
            counts: dict[Rec, int] = {}
            for rec in given:
                counts[rec] = counts.get(rec, 0) + 1
            dups = [rec for rec, n in counts.items() if n > 1]
            if dups:
                times = ", ".join(
                    f"{_since(history, d.at)}{' replayed' if d.replayed else ''}"
                    for d in stream.deliveries
                    if d.series == series and d.record == dups[0]
                )
                out.append(
                    Violation(
                        "stream",
                        f"{stream.name} {series}: {len(dups)} duplicate(s), first ts="
                        f"{dups[0][0]} given at {times}",
                    )
                )
            want = [rec for rec, _ in acked.get(series, [])]
            gaps = [rec for rec in want if rec not in counts]
            if gaps:
                out.append(
                    Violation(
                        "stream",
                        f"{stream.name} {series}: {len(gaps)} acknowledged record(s) never "
                        f"given, first ts={gaps[0][0]}",
                    )
                )
            wanted = set(want)
            order = {rec: i for i, rec in enumerate(want)}
            seen = [order[rec] for rec in dict.fromkeys(given) if rec in wanted]
            inversions = sum(1 for a, b in itertools.pairwise(seen) if b < a)
            if inversions:
                out.append(
                    Violation(
                        "stream",
                        f"{stream.name} {series}: {inversions} record(s) out of acknowledged order",
                    )
                )
    return out


def _since(history: History, at: float) -> str:
    """A time as seconds after the marks (``cut+3.1s`` ...), for a violation's detail."""
    marks = [m for m in history.marks if m.at <= at]
    if not marks:
        return f"{at:.2f}s"
    last = marks[-1]
    return f"{last.what}+{at - last.at:.2f}s"


def recovery(history: History, replicas: Iterable[str]) -> dict[str, dict[str, float | None]]:
    """Seconds from the heal to the end of the first successful Write and Read through
    each replica (None: none after the heal)."""
    heal = history.heal_at()
    out: dict[str, dict[str, float | None]] = {}
    for replica in replicas:
        row: dict[str, float | None] = {}
        for kind, calls in (("write", history.writes), ("read", history.reads)):
            ends = [c.end for c in calls if c.replica == replica and c.ok and heal is not None]
            after = [e - heal for e in ends if heal is not None and e >= heal]
            row[kind] = round(min(after), 3) if after else None
        out[replica] = row
    return out


def check(
    history: History,
    stored: dict[Series, dict[int, str]],
    promise: Promise | None = None,
) -> list[Violation]:
    """Every rule over the history; the violations, all rules together."""
    return [
        *lost(history, stored),
        *stale(history, promise or Strict()),
        *wrong(history),
        *failures(history),
        *streams(history),
    ]
