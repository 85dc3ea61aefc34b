"""A one-line progress bar for a terminal, redrawn in place at most ten times a second."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from mdcache_server.ops.units import count


class ProgressBar:
    """``[##########----------]  50%  119,775/239,550 rows  48,000 rows/s  2.5s``.

    ``advance(n)`` as work is done, ``close()`` at the end (draws the final state and
    ends the line). Off (``enabled=False``), it writes nothing.
    """

    def __init__(
        self,
        total: int,
        stream: TextIO,
        *,
        enabled: bool,
        unit: str = "rows",
        width: int = 30,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream
        self.enabled = enabled
        self.unit = unit
        self.width = width
        self.clock = clock
        self.started = clock()
        self._drawn = -1.0

    def advance(self, n: int) -> None:
        self.done += n
        now = self.clock()
        if now - self._drawn >= 0.1:
            self._draw(now)

    def line(self, now: float) -> str:
        fraction = min(self.done / self.total, 1.0)
        filled = round(fraction * self.width)
        seconds = now - self.started
        speed = self.done / seconds if seconds > 0 else 0.0
        return (
            f"[{'#' * filled}{'-' * (self.width - filled)}] {fraction * 100:3.0f}%  "
            f"{count(self.done)}/{count(self.total)} {self.unit}  "
            f"{count(round(speed))} {self.unit}/s  {seconds:.1f}s"
        )

    def _draw(self, now: float) -> None:
        self._drawn = now
        if self.enabled:
            self.stream.write(f"\r{self.line(now)}\x1b[K")
            self.stream.flush()

    def close(self) -> None:
        self._draw(self.clock())
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
