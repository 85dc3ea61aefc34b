"""Answers to Reads of held series, remembered by the request's bytes.

Market-data callers ask the same few questions over and over (the latest bar of a
popular symbol, its last year of bars). An answer built from the hot tier depends only on
the request and on the held copies it was cut from; while every one of those copies is
still held unchanged (same serial, same version), the same request gets the same bytes,
and the server skips parsing, validating, cutting the window and joining the answer.

Bounded in bytes, least recently used out first. Requests that depend on the clock
(``last_days``) are never remembered; nor are answers that are not all from the tier.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from mdcache_server.model import SeriesKey, SeriesRead

ENTRY_OVERHEAD = 200  # bytes of Python objects per remembered answer


def _size(request: bytes, answer: bytes) -> int:
    """What an entry takes: its request, its answer and the objects around them."""
    return len(request) + len(answer) + ENTRY_OVERHEAD


@dataclass(frozen=True, slots=True)
class Answer:
    """A serialized Read answer and what makes it still true."""

    answer: bytes
    series: tuple[SeriesKey, ...]
    held: tuple[tuple[int, int], ...]  # (serial, version) of each series' held copy
    hits: tuple[bool, ...]  # each series found records
    rows: int
    resampled: int = 0  # series answered resampled (``ReadRequest.resample``)
    strict: bool | None = None  # ``ReadRequest.consistency`` (None: the server's default)


class Answers:
    """Read answers by request bytes; ``capacity_bytes`` 0 turns it off."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self.max_entry_bytes = capacity_bytes // 64
        self.bytes = 0
        self._entries: OrderedDict[bytes, Answer] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, request: bytes) -> Answer | None:
        entry = self._entries.get(request)
        if entry is not None:
            self._entries.move_to_end(request)
        return entry

    def remember(
        self,
        request: bytes,
        answer: bytes,
        series: Sequence[SeriesKey],
        results: Sequence[SeriesRead],
        rows: int,
        resampled: int = 0,
        strict: bool | None = None,
    ) -> None:
        """Keeps the answer if every series came from a held copy and it is small enough."""
        size = _size(request, answer)
        if size > self.max_entry_bytes:
            return
        held = []
        for result in results:
            if result.held is None or result.held[0] == 0:  # not (or no longer) in the tier
                return
            held.append(result.held)
        self.forget(request)
        hits = tuple(bool(r.records) for r in results)
        entry = Answer(answer, tuple(series), tuple(held), hits, rows, resampled, strict)
        self._entries[request] = entry
        self.bytes += size
        while self.bytes > self.capacity_bytes and self._entries:
            old_request, old = self._entries.popitem(last=False)
            self.bytes -= _size(old_request, old.answer)

    def forget(self, request: bytes) -> None:
        old = self._entries.pop(request, None)
        if old is not None:
            self.bytes -= _size(request, old.answer)
