"""Table names derived from series and replicas, never taken from raw input.

A name is a prefix and the first 128 bits of a SHA-256 over the length-prefixed
UTF-8 parts, so ``("a", "b_c", "d")`` and ``("a_b", "c", "d")`` never meet, any
symbol maps to a valid lower-case TDengine identifier of 34 characters, and the
same series finds the same subtable from every process and after restarts.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from mdcache_server.model import SeriesKey

IDENTIFIER: Final = re.compile(r"[a-z_][a-z0-9_]{0,191}")
RECORDS_PREFIX: Final = "r_"  # a subtable of the records super table: one series
BARS_PREFIX: Final = "b_"  # a subtable of bars: the numbers of one series' records
TOTALS_PREFIX: Final = "u_"  # a subtable of usage_totals: one replica's totals
EVICTIONS_PREFIX: Final = "e_"  # a subtable of usage_evictions: one replica's evictions
SERIES_USAGE_PREFIX: Final = "s_"  # a subtable of usage_series: one replica's reads of one series
REPLICA_PREFIX: Final = "h_"  # a subtable of replicas: one replica's heartbeat
NOTES_PREFIX: Final = "n_"  # a subtable of feed_notes: marks and purges for the change feed
DIGEST_HEX: Final = 32


def _digest(kind: str, *parts: str) -> str:
    h = hashlib.sha256()
    for part in (kind, *parts):
        data = part.encode()
        h.update(len(data).to_bytes(4, "big"))
        h.update(data)
    return h.hexdigest()[:DIGEST_HEX]


def series_table(key: SeriesKey) -> str:
    """The subtable holding a series' records: ``r_`` and 32 hex digits."""
    return RECORDS_PREFIX + _digest("series", *key)


def bars_table(key: SeriesKey) -> str:
    """The subtable holding the numbers of a series' bars (``barnumbers.py``)."""
    return BARS_PREFIX + _digest("series", *key)


def replica_table(replica: str) -> str:
    """The subtable holding one replica's heartbeat."""
    return REPLICA_PREFIX + _digest("replica", replica)


def totals_table(replica: str) -> str:
    """The subtable holding one replica's hit and miss totals."""
    return TOTALS_PREFIX + _digest("replica", replica)


def evictions_table(replica: str) -> str:
    """The subtable holding what one replica's capacity checks evicted."""
    return EVICTIONS_PREFIX + _digest("replica", replica)


def series_usage_table(replica: str, key: SeriesKey) -> str:
    """The subtable holding one replica's read counters for one series."""
    return SERIES_USAGE_PREFIX + _digest("series_usage", replica, *key)


def notes_table(slot: int) -> str:
    """The ``slot``-th subtable of the change feed's notes (one at least in each vgroup)."""
    return f"{NOTES_PREFIX}{int(slot)}"


def is_identifier(name: str) -> bool:
    """A plain lower-case TDengine name, safe to write into SQL unquoted."""
    return IDENTIFIER.fullmatch(name) is not None
