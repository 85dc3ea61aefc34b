"""The embedded store: one SQLite file in WAL mode.

Records live in a table clustered by ``(series_id, ts)``, so a window read is one
index range whatever else is stored. Each record is kept as it is sent, one
``SeriesResult.records`` field (``wire/codec.py``): an answer's records are then
``group_concat(record)``, one row made by SQLite without holding the GIL, instead of
a Python object and a message per record; the payload is cut out of it by SQL.
``series.records`` is kept exact (by the write path for inserts, by a trigger for
deletes), so counting is a scan of the series, not of the records. Series rows are never
deleted (an emptied series keeps its id), which keeps every connection's id cache
valid, also across several server processes on one file.
"""

from mdcache_server.store.sqlite.schema import SCHEMA
from mdcache_server.store.sqlite.store import SqliteConnection, SqliteStore

__all__ = ["SCHEMA", "SqliteConnection", "SqliteStore"]
