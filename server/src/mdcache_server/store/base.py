"""The store interface.

A :class:`Store` knows where the data lives and hands out connections; a
:class:`StoreConnection` does the blocking work and is used by one worker thread
at a time. Inputs are already validated (``service/validation.py``) against
:class:`~mdcache_server.model.Limits`; a store only translates its driver's
errors into :mod:`mdcache_server.errors` where the driver is called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
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

# Picks the series to evict: from every series with its record count, every replica's
# stored read counters and the bound (``cache/capacity.py``'s ``victims``).
Chooser = Callable[[list[tuple[SeriesKey, int]], list[Usage], int], list[SeriesKey]]


@dataclass(frozen=True, slots=True)
class Eviction:
    """What one capacity check found and did."""

    listed: list[tuple[SeriesKey, int]]  # every series and its records, before
    chosen: list[SeriesKey]
    dropped: int  # records deleted


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

    def evict(self, max_records: int, choose: Chooser) -> Eviction:
        """Lists the series, loads every replica's counters, and drops what ``choose``
        picks from them. Atomic where the store has transactions
        (:attr:`Store.atomic_evictions`); else replicas take turns (``cache/capacity.py``)."""

    def heartbeat(self, replica: str, first_ms: int, now_ms: int) -> dict[str, tuple[int, int]]:
        """Stores that ``replica`` (serving since ``first_ms``) is alive at ``now_ms``;
        returns every replica's (first_ms, seen_ms), its own included."""

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


# One record of an acknowledged Write, as a change feed carries it.
StoredChange = tuple[SeriesKey, Record]


@dataclass(frozen=True, slots=True)
class Polled:
    """What one poll of a change feed gave."""

    changes: list[StoredChange]  # records of acknowledged Writes, in the store's order
    forgotten: list[PurgeFilter]  # purges and evictions noted by any replica (``note``)
    reached: int  # the highest of this feed's marks (``mark``) passed so far


class ChangeFeed(Protocol):
    """Every replica's acknowledged writes to one store, in the order the store took them
    (per series at least), for ``live/relay.py`` to push to this process's subscribers and
    to keep the hot tier's copies current (``cache/coherence.py``).

    Blocking; ``poll`` is called from one thread, ``record``, ``note`` and ``mark`` from
    another."""

    @property
    def journals(self) -> bool:
        """Whether a Write's records must be handed to :meth:`record` before it is
        answered (False: the store's own log carries them)."""

    def record(self, changes: Sequence[StoredChange]) -> None:
        """Adds a Write's records, stored and not yet answered, to the feed."""

    def note(self, forgotten: Sequence[PurgeFilter]) -> None:
        """Adds a purge or an eviction, done and not yet answered, to the feed: every
        replica's poll gives it (``Polled.forgotten``), after the changes before it."""

    def mark(self) -> int:
        """A mark in the feed: once a poll's ``reached`` is at least the number returned,
        every change and note acknowledged (by any replica) before this call was given by
        a poll. Numbers only grow. Raises StoreUnavailable when the feed cannot mark."""

    def start(self) -> None:
        """Positions the feed after everything acknowledged so far: each write
        acknowledged after this returns comes out of :meth:`poll`."""

    def poll(self, wait: float) -> Polled:
        """The next changes, waiting up to ``wait`` seconds for some."""

    def close(self, *, exiting: bool = False) -> None:
        """Releases the feed; never raises (``exiting``: the process ends next)."""


class Claim(Protocol):
    """What :meth:`Store.claim` holds, until released (once the server has stopped)."""

    def release(self) -> None: ...


class Unclaimed:
    """The claim of a store that cannot tell its servers apart, nor needs to: a network
    database, whose servers all follow its change feed by default."""

    def release(self) -> None:
        pass


class Store(Protocol):
    """A place to keep series, chosen by URL (``store/url.py``)."""

    @property
    def name(self) -> str:
        """Short name shown in Stats and logs: ``sqlite``, ``tdengine``."""

    @property
    def default_workers(self) -> int:
        """Worker threads (each with its own connection) when the configuration says
        ``auto``: few where calls hold the GIL, more where they wait on the network."""

    @property
    def shared(self) -> bool:
        """Whether servers that this process did not start may write to the store (a
        network database), so that by default every Write reaches this process's
        subscribers through the change feed (``app.live_relay``)."""

    @property
    def atomic_evictions(self) -> bool:
        """Whether :meth:`StoreConnection.evict` is one transaction, so that replicas
        sharing the store may all run capacity checks."""

    def connect(self) -> StoreConnection:
        """Opens a new connection (raises StoreUnavailable when it cannot)."""

    def change_feed(self, replica: str) -> ChangeFeed | None:
        """The feed of every replica's writes (``replica`` names this one), None where the
        store has none. Opens nothing yet."""

    def claim(self, *, alone: bool) -> Claim:
        """This server's place among those serving the store, held while it serves.
        ``alone``: it follows no change feed, so no other server may write the store.
        Raises ConfigError when the claim conflicts with a running server's."""
