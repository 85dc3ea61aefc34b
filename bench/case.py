"""What a case of the benchmark declares: its run, its typed result, its targets, its tables.

A case is a module of ``bench/`` with a ``CASE``; ``bench.cases.CASES`` lists them in the
order they run (``--parts`` names them). ``python -m bench`` runs the chosen cases, each
result stored under its own keys of the results file; ``bench.report`` renders a results
file through the cases that find their result in it, and knows none of them.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from bench import data
from bench.data import HOT_SERIES, Bars

Results = Mapping[str, Any]  # a results file (bench/results/<date>.json), as loaded


@dataclass(frozen=True)
class Settings:
    """What every case of one run is given."""

    workdir: Path
    quick: bool
    seconds: float  # measured seconds per cell
    warmup: float
    rounds: int  # rounds over a case's cells (pooled)
    growth_rows: list[int]
    parts: list[str]  # the cases asked for (--parts)
    options: argparse.Namespace  # the command line (--day-before, --tdengine-url, ...)
    say: Callable[[str], None]

    @cached_property
    def all_shares(self) -> Bars:
        """The A-share daily bars of ../shared/data (read when a case first asks)."""
        return data.a_shares()

    @cached_property
    def shares(self) -> Bars:
        """The A-share series ingested: all, or ten and the hot series with --quick."""
        if not self.quick:
            return self.all_shares
        return dict(sorted(self.all_shares.items())[:10]) | {
            HOT_SERIES: self.all_shares[HOT_SERIES]
        }


@dataclass(frozen=True)
class Target:
    """A target of an issue, what was measured, and whether it holds (None: reported only)."""

    target: str
    measured: float
    ok: bool | None
    rounds: list[float] | None = None  # the ratio of each round alone (read cells)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"target": self.target, "measured": self.measured, "ok": self.ok}
        if self.rounds is not None:
            out["rounds"] = self.rounds
        return out


class Result(Protocol):
    def as_json(self) -> dict[str, Any]:
        """The keys of the results file this result is stored under, and their figures."""
        ...


R = TypeVar("R", bound=Result)


class Case(ABC, Generic[R]):
    """A case: ``run`` measures, ``load`` finds its result in a results file, ``targets``,
    ``tables`` and ``notes`` judge and show it (given the whole results file too, for a case
    that compares itself with another's figures)."""

    name: str  # as --parts names it

    @abstractmethod
    async def run(self, settings: Settings) -> R: ...

    @abstractmethod
    def load(self, results: Results) -> R | None:
        """This case's result in ``results``, or None when it was not run."""

    def targets(self, result: R, results: Results) -> list[Target]:
        return []

    def tables(self, result: R, results: Results) -> list[str]:
        """Its section of the report, markdown lines."""
        return []

    def notes(self, result: R, results: Results) -> list[str]:
        """Why a missed target is missed, from the run's own figures."""
        return []

    def files(self, result: R, stem: Path) -> list[Path]:
        """Files besides the results (``stem`` + a suffix of its own), written; their paths."""
        return []
