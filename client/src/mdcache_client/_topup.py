"""Top-up: the ranges of a window the cache lacks, loads shared per range, empty answers.

``get_or_load`` reads the window, and asks the loader only for what is missing:

- at the edges, as :mod:`mdcache_client._coverage` judges them (the first record later
  than ``start_ms + tolerance_ms``, the last earlier than ``end_ms - tolerance_ms``);
- inside, between two held records further apart than twice ``tolerance_ms``: a window
  edge placed anywhere between them would find no record within the tolerance (with a
  positive tolerance only: with none, every two bars would be a gap, and nothing tells a
  missing bar from one that cannot exist);
- less what the upstream answered empty lately (:class:`EmptyRanges`);
- missing ranges closer together than ``tolerance_ms`` are one range: one upstream call
  costs more than the few bars held between them.

Concurrent calls share loads by range (:class:`~mdcache_client._flight_aio.AsyncRangeFlight`
and its blocking twin): a call loads only the parts of its ranges that no load in flight
covers, and waits for the loads in flight that cover the rest.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

from mdcache_client._coverage import stamp, within
from mdcache_client._types import Record, Series, Window

F = TypeVar("F", bound=Callable[..., Any])
L = TypeVar("L")  # a load in flight
RANGES_ATTRIBUTE = "mdcache_takes_ranges"


def ranges_loader(loader: F) -> F:
    """Marks a loader that takes the list of missing ranges in one call.

    ``get_or_load`` then calls ``loader(series, [Window, ...])`` once per top-up, instead of
    ``loader(series, window)`` once per missing range:

    >>> @ranges_loader                                          # doctest: +SKIP
    ... async def fetch(series: Series, ranges: Sequence[Window]) -> list[Record]: ...
    """
    setattr(loader, RANGES_ATTRIBUTE, True)
    return loader


def takes_ranges(loader: object) -> bool:
    return bool(getattr(loader, RANGES_ATTRIBUTE, False))


def missing(
    window: Window, stamps: Sequence[int], tolerance_ms: int, newest_ms: int | None = None
) -> list[Window]:
    """The ranges of ``window`` that records at ``stamps`` (sorted) leave missing.

    ``newest_ms`` is the newest record of the window when ``stamps`` are only its oldest
    (a truncated read): the end edge is judged by it, and nothing between is judged.
    """
    if not stamps:
        return [window]
    gaps = []
    if stamps[0] > window.start_ms + tolerance_ms:
        gaps.append(Window(window.start_ms, stamps[0] - 1))
    if tolerance_ms > 0:
        for before, after in itertools.pairwise(stamps):
            if after - before > 2 * tolerance_ms:
                gaps.append(Window(before + 1, after - 1))
    last = stamps[-1] if newest_ms is None else newest_ms
    if last < window.end_ms - tolerance_ms:
        gaps.append(Window(last + 1, window.end_ms))
    return coalesce(gaps, tolerance_ms)


def coalesce(ranges: Iterable[Window], tolerance_ms: int) -> list[Window]:
    """Ranges (sorted by start) that are at most ``tolerance_ms`` apart made one."""
    merged: list[Window] = []
    for r in ranges:
        if merged and r.start_ms - merged[-1].end_ms <= max(tolerance_ms, 1):
            merged[-1] = Window(merged[-1].start_ms, max(merged[-1].end_ms, r.end_ms))
        else:
            merged.append(r)
    return merged


def subtract(ranges: Iterable[Window], taken: Iterable[Window]) -> list[Window]:
    """The parts of ``ranges`` outside every window of ``taken``."""
    cuts = sorted(taken, key=lambda w: w.start_ms)
    left = []
    for r in ranges:
        start = r.start_ms
        for cut in cuts:
            if cut.end_ms < start or cut.start_ms > r.end_ms:
                continue
            if cut.start_ms > start:
                left.append(Window(start, cut.start_ms - 1))
            start = max(start, cut.end_ms + 1)
            if start > r.end_ms:
                break
        if start <= r.end_ms:
            left.append(Window(start, r.end_ms))
    return left


def overlaps(a: Window, b: Window) -> bool:
    return a.start_ms <= b.end_ms and b.start_ms <= a.end_ms


def answer(
    held: Sequence[Record], loaded: Iterable[Record], window: Window, through_ms: int | None
) -> list[Record]:
    """The window's records, held and loaded merged (a loaded record wins its timestamp).

    ``through_ms`` cuts the answer after the last held record of a truncated read.
    """
    records = within([*held, *loaded], window)
    if through_ms is None:
        return records
    return [r for r in records if stamp(r) <= through_ms]


class EmptyRanges:
    """Ranges the upstream answered empty, remembered per series for ``seconds``.

    Kept by the client, not in the cache: it is a fact about one upstream as this
    process asked it, markers in the store would show up in every reader's answers (or
    need a record kind of their own in both stores), and the worst a process that does
    not know it does is ask once more. At most ``max_series`` series are remembered,
    least recently added out. A range that ends after the moment it was asked is not
    remembered: the upstream may not have had its records yet.
    """

    def __init__(self, seconds: float, max_series: int = 10_000) -> None:
        self.seconds = seconds
        self.max_series = max_series
        self._lock = threading.Lock()
        self._ranges: OrderedDict[Series, list[tuple[Window, float]]] = OrderedDict()

    def remember(
        self, series: Series, asked: Window, loaded_stamps: Sequence[int], tolerance_ms: int
    ) -> None:
        """Remembers the parts of ``asked`` that a load returning ``loaded_stamps`` left empty."""
        if self.seconds <= 0:
            return
        now = time.time()
        if asked.end_ms >= now * 1000:
            return
        inside = sorted(ts for ts in loaded_stamps if ts in asked)
        empty = missing(asked, inside, tolerance_ms)
        if not empty:
            return
        with self._lock:
            kept = self._live(series, now)
            kept.extend((w, now + self.seconds) for w in empty)
            self._ranges[series] = kept
            self._ranges.move_to_end(series)
            while len(self._ranges) > self.max_series:
                self._ranges.popitem(last=False)

    def unknown(self, series: Series, ranges: list[Window]) -> list[Window]:
        """The parts of ``ranges`` not answered empty lately."""
        if not ranges:
            return ranges
        with self._lock:
            known = [w for w, _ in self._live(series, time.time())]
        return subtract(ranges, known) if known else ranges

    def _live(self, series: Series, now: float) -> list[tuple[Window, float]]:
        return [(w, until) for w, until in self._ranges.get(series, ()) if until > now]


class Newest:
    """The newest record this process saw held or loaded, per series (a hint, LRU-bounded).

    A window wholly after what the cache holds (``[today, today]`` when the cache holds up
    to the day before yesterday) would be loaded alone, leaving a hole before it that the
    edges of a later, longer window cannot see. Loading from the newest record seen instead
    keeps what the cache holds of a series one stretch. A wrong hint (a purge since) costs
    a longer load, never a wrong answer.
    """

    def __init__(self, max_series: int = 100_000) -> None:
        self.max_series = max_series
        self._lock = threading.Lock()
        self._newest: OrderedDict[Series, int] = OrderedDict()

    def saw(self, series: Series, stamps: Iterable[int]) -> None:
        newest = max(stamps, default=None)
        if newest is None:
            return
        with self._lock:
            self._newest[series] = max(newest, self._newest.get(series, newest))
            self._newest.move_to_end(series)
            while len(self._newest) > self.max_series:
                self._newest.popitem(last=False)

    def joined(self, series: Series, window: Window, gaps: list[Window]) -> list[Window]:
        """``gaps`` of a window holding nothing, reaching back to the newest record seen."""
        with self._lock:
            newest = self._newest.get(series)
        if newest is None or newest >= window.start_ms or gaps != [window]:
            return gaps
        return [Window(newest + 1, window.end_ms)]


class Seams:
    """Where this process loaded a window into a series it knew nothing held of.

    Such a load (no record of the window held, no newest record seen) may leave a hole
    between it and what the cache held around it, which the edges of a later, longer
    window cannot see. The load's ends are remembered as seams; a later window holding
    records on both sides of one asks for the stretch between them once (an empty answer
    is then remembered as any other). A load that ends right before a seam moves it to
    its start (and one that starts right after, to its end); one across it closes it.
    Only this process's seams are known: LRU-bounded, per series.
    """

    def __init__(self, max_series: int = 100_000) -> None:
        self.max_series = max_series
        self._lock = threading.Lock()
        self._seams: OrderedDict[Series, set[tuple[int, bool]]] = OrderedDict()

    def opened(self, series: Series, window: Window) -> None:
        with self._lock:
            seams = self._seams.setdefault(series, set())
            seams.update({(window.start_ms, True), (window.end_ms, False)})
            self._seams.move_to_end(series)
            while len(self._seams) > self.max_series:
                self._seams.popitem(last=False)

    def suspects(self, series: Series, window: Window, stamps: Sequence[int]) -> list[Window]:
        """The stretches of the window next to a seam, between held records."""
        with self._lock:
            seams = sorted(self._seams.get(series, ()))
        found = []
        for at, before in seams:
            if not window.start_ms <= at <= window.end_ms:
                continue
            if before:
                older = [ts for ts in stamps if ts < at]
                if older and older[-1] + 1 <= at - 1:
                    found.append(Window(older[-1] + 1, at - 1))
            else:
                newer = [ts for ts in stamps if ts > at]
                if newer and at + 1 <= newer[0] - 1:
                    found.append(Window(at + 1, newer[0] - 1))
        return found

    def closed(self, series: Series, loaded: Iterable[Window]) -> None:
        """Loads of these ranges cover the seams inside them, and move a seam they end
        (or start) at to their other end: what lies beyond that is still unknown."""
        with self._lock:
            seams = self._seams.get(series)
            if not seams:
                return
            for w in loaded:
                inside = {(at, b) for at, b in seams if w.start_ms < at < w.end_ms}
                seams -= inside
                if (w.end_ms + 1, True) in seams:
                    seams.discard((w.end_ms + 1, True))
                    seams.add((w.start_ms, True))
                if (w.start_ms - 1, False) in seams:
                    seams.discard((w.start_ms - 1, False))
                    seams.add((w.end_ms, False))
            if not seams:
                del self._seams[series]


class _Recent(Generic[L]):
    """The loads of one series that ended while callers that read the cache before they
    ended are still at work: those reads may lack their records, so those callers share
    them as if they were still in flight. Kept from the oldest such caller's mark on."""

    __slots__ = ("base", "loads", "marks")

    def __init__(self) -> None:
        self.base = 0  # the mark of loads[0]
        self.loads: list[tuple[Window, L]] = []
        self.marks: list[int] = []

    def mark(self) -> int:
        mark = self.base + len(self.loads)
        self.marks.append(mark)
        return mark

    def since(self, mark: int) -> list[tuple[Window, L]]:
        return self.loads[mark - self.base :]

    def release(self, mark: int) -> bool:
        """Forgets a caller's mark; True when no caller is left."""
        self.marks.remove(mark)
        if not self.marks:
            return True
        drop = min(self.marks) - self.base
        if drop > 0:
            del self.loads[:drop]
            self.base += drop
        return False
