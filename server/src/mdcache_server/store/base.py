"""The store interface.

A :class:`Store` knows where the data lives and hands out connections; a
:class:`StoreConnection` does the blocking work and is used by one worker thread
at a time. Inputs are already validated (``service/validation.py``) against
:class:`~mdcache_server.model.Limits`; a store only translates its driver's
errors into :mod:`mdcache_server.errors` where the driver is called.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from mdcache_server.model import (
    PurgeFilter,
    Record,
    SeriesKey,
    SeriesRead,
    StoreCounts,
    Usage,
    Window,
)


class StoreConnection(Protocol):
    """One connection; all methods block."""

    def ensure_schema(self) -> None:
        """Creates what the store needs if it is missing (idempotent)."""

    def server_version(self) -> str:
        """The store's version."""

    def probe(self) -> None:
        """A cheap round trip that fails (StoreUnavailable) when the store cannot serve:
        gRPC health follows it."""

    def write(self, batches: Sequence[tuple[SeriesKey, Sequence[Record]]]) -> int:
        """Upserts each series' records (distinct timestamps); returns how many were written.

        Returns only once the records are durable.
        """

    def read(self, series: Sequence[SeriesKey], window: Window) -> list[SeriesRead]:
        """Reads the window of each series, in the order given."""

    def read_answer(self, series: Sequence[SeriesKey], window: Window) -> list[SeriesRead]:
        """The same, to be answered as it is: a store that can gives each result's records
        already encoded (``SeriesRead.encoded``, see ``wire/codec.py``); else as :meth:`read`."""

    def purge(self, purge: PurgeFilter) -> int:
        """Deletes the records the filter selects; returns exactly how many."""

    def counts(self) -> StoreCounts:
        """Records, series and symbols stored."""

    def list_series(self) -> list[tuple[SeriesKey, int]]:
        """Every series that holds records, with its record count."""

    def drop_series(self, series: Sequence[SeriesKey]) -> int:
        """Deletes every record of these series; returns exactly how many."""

    def save_usage(self, usage: Usage) -> None:
        """Stores a replica's counters: its totals, and the series given (absolute values).

        Series not given keep what is stored for them.
        """

    def load_usage(self) -> list[Usage]:
        """Every replica's stored counters."""

    def reset_usage(self, replica: str | None = None) -> None:
        """Forgets one replica's stored counters, or every replica's."""

    def close(self) -> None:
        """Releases the connection; never raises."""


class Store(Protocol):
    """A place to keep series, chosen by URL (``store/url.py``)."""

    @property
    def name(self) -> str:
        """Short name shown in Stats and logs: ``sqlite``, ``tdengine``."""

    def connect(self) -> StoreConnection:
        """Opens a new connection (raises StoreUnavailable when it cannot)."""
