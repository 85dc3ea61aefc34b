"""The history of a partition run: every call (start, end, request, answer or error), every
record each Subscribe stream gave, and the faults' marks (cut, heal), as Jepsen keeps it.

Times are ``time.monotonic()`` seconds. A record is ``(ts_ms, payload)``; a series is the
client's ``Series``. The history is only appended to while the workload runs (from many
threads: list appends are atomic), and read by the checker afterwards.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from mdcache_client import Series

Rec = tuple[int, str]


@dataclass
class Write:
    """A Write call: its records by series; ``error`` the status name when it failed
    (``None``: acknowledged), or ``"EXCEPTION:..."`` for anything but an MdcacheError."""

    caller: str
    replica: str
    start: float
    end: float
    deadline: float
    records: dict[Series, list[Rec]]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Read:
    """A Read call: ``latest`` (limit 1, newest first) or a window [start_ms, end_ms]."""

    caller: str
    replica: str
    start: float
    end: float
    deadline: float
    series: Series
    latest: bool
    start_ms: int | None = None
    end_ms: int | None = None
    answer: list[Rec] = field(default_factory=list)
    truncated: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Delivery:
    series: Series
    record: Rec
    at: float
    replayed: bool


@dataclass
class Stream:
    """One Subscribe stream: the series it follows, what it gave, how it ended."""

    name: str
    replica: str
    series: list[Series]
    opened: float
    deliveries: list[Delivery] = field(default_factory=list)
    error: str | None = None  # the error that ended it (None: closed by the workload)


@dataclass
class Mark:
    """A fault's step: ``cut``, ``kill``, ``restart``, ``heal`` (with what was done)."""

    what: str
    at: float
    detail: str = ""


@dataclass
class History:
    writes: list[Write] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    streams: list[Stream] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)

    def mark(self, what: str, at: float, detail: str = "") -> None:
        self.marks.append(Mark(what, at, detail))

    def heal_at(self) -> float | None:
        heals = [m.at for m in self.marks if m.what == "heal"]
        return heals[-1] if heals else None

    def acked(self) -> dict[Series, list[tuple[Rec, float]]]:
        """Every acknowledged record by series, with its Write's end, in acknowledged order."""
        out: dict[Series, list[tuple[Rec, float]]] = {}
        for w in sorted((w for w in self.writes if w.ok), key=lambda w: w.end):
            for series, records in w.records.items():
                out.setdefault(series, []).extend((r, w.end) for r in records)
        return out

    def attempted(self) -> dict[Series, dict[int, str]]:
        """Every record any Write carried (acknowledged or not): what an answer may hold."""
        out: dict[Series, dict[int, str]] = {}
        for w in self.writes:
            for series, records in w.records.items():
                out.setdefault(series, {}).update(records)
        return out

    def summary(self) -> dict[str, Any]:
        def errors(calls: list[Write] | list[Read]) -> dict[str, int]:
            counts: dict[str, int] = {}
            for c in calls:
                if c.error is not None:
                    counts[c.error.split(":")[0]] = counts.get(c.error.split(":")[0], 0) + 1
            return counts

        return {
            "writes": len(self.writes),
            "writes_acked": sum(1 for w in self.writes if w.ok),
            "write_errors": errors(self.writes),
            "reads": len(self.reads),
            "reads_ok": sum(1 for r in self.reads if r.ok),
            "read_errors": errors(self.reads),
            "streams": {s.name: len(s.deliveries) for s in self.streams},
            "marks": [asdict(m) for m in self.marks],
        }

    def dump(self) -> str:
        """The whole history as JSON lines (for a failing run's report)."""
        lines = [json.dumps({"mark": asdict(m)}) for m in self.marks]
        for w in self.writes:
            item = asdict(w)
            item["records"] = {"/".join(s): r for s, r in w.records.items()}
            lines.append(json.dumps({"write": item}, ensure_ascii=False))
        lines.extend(json.dumps({"read": asdict(r)}, ensure_ascii=False) for r in self.reads)
        for s in self.streams:
            lines.append(
                json.dumps(
                    {"stream": s.name, "replica": s.replica, "error": s.error},
                    ensure_ascii=False,
                )
            )
            lines.extend(
                json.dumps({"delivery": s.name, **asdict(d)}, ensure_ascii=False)
                for d in s.deliveries
            )
        return "\n".join(lines) + "\n"
