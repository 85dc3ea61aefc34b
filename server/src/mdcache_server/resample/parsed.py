"""The bar fields of held series, parsed once per held copy: a resampled Read that is not
answered again as remembered (another window, ``last_days``) cuts them instead of parsing
its records' JSON anew, which is most of its cost.

Kept by series, for the held copy they were parsed from (its serial and version): a new
copy that only adds bars after the last one (a write of the newest bars, or the same
series read again from the store, as the hot tier does every few seconds) parses just
those; any other change parses the copy anew. At most ``max_records`` records are kept,
least recently used series out first. A copy with a payload that cannot make bars is
remembered as such, and its windows are parsed one by one (so that a bad record outside
a window does not refuse it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from mdcache_server.errors import InvalidArgument
from mdcache_server.model import SeriesKey
from mdcache_server.resample.bars import Fields

DEFAULT_MAX_RECORDS = 200_000


@dataclass(slots=True)
class _Entry:
    held: tuple[int, int]  # serial, version
    payloads: list[str]  # as parsed: to tell an append from any other change
    fields: Fields | None  # None: a payload cannot make bars


class ParsedFields:
    """Fields of held series, bounded in records (about 180 bytes each)."""

    def __init__(self, summed: frozenset[str], max_records: int = DEFAULT_MAX_RECORDS) -> None:
        self.summed = summed
        self.max_records = max_records
        self.records = 0
        self._entries: OrderedDict[SeriesKey, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def of(
        self,
        key: SeriesKey,
        held: tuple[int, int],
        ts: list[int],
        payloads: Sequence[str],
        field: str,
    ) -> Fields | None:
        """The fields of a held copy's records (``ts`` and ``payloads``, whole), or None
        when a payload cannot make bars or the copy is too large to keep."""
        if not ts or len(ts) > self.max_records:
            return None
        entry = self._entries.get(key)
        if entry is not None and entry.held == held:
            self._entries.move_to_end(key)
            return entry.fields
        fields = self._appended(entry, ts, payloads, field)
        if fields is None:
            try:
                fields = Fields(ts[:], payloads, self.summed, field)  # the held list changes
            except InvalidArgument:
                fields = None
        self._keep(key, _Entry(held, list(payloads), fields))
        return fields

    def _appended(
        self,
        entry: _Entry | None,
        ts: list[int],
        payloads: Sequence[str],
        field: str,
    ) -> Fields | None:
        """The entry's fields, with those of bars added after its last, when that is all
        that changed (a copy read again from the store is most often the same); else None."""
        if entry is None or entry.fields is None:
            return None
        old, n = entry.fields, len(entry.payloads)
        if len(ts) < n or ts[:n] != old.ts or payloads[:n] != entry.payloads:
            return None
        if len(ts) == n:
            return old
        try:
            new = Fields(ts[n:], payloads[n:], self.summed, field)
        except InvalidArgument:
            return None
        if new.names != old.names or new.summed != old.summed:
            return None
        merged = old.cut(0, n)
        merged.ts = ts[:]
        for column, more in zip(merged.columns + merged.sums, new.columns + new.sums, strict=True):
            column.extend(more)
        return merged

    def _keep(self, key: SeriesKey, entry: _Entry) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.records -= len(old.payloads)
        self._entries[key] = entry
        self.records += len(entry.payloads)
        while self.records > self.max_records and len(self._entries) > 1:
            _, dropped = self._entries.popitem(last=False)
            self.records -= len(dropped.payloads)
