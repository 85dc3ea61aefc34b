"""The SQLite file's tables, and the migrations of files of earlier versions."""

from __future__ import annotations

from typing import Final

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS series (
    id        INTEGER PRIMARY KEY,
    symbol    TEXT NOT NULL,
    data_type TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    records   INTEGER NOT NULL DEFAULT 0,
    version   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (symbol, data_type, timeframe)
);
CREATE TABLE IF NOT EXISTS records (
    series_id INTEGER NOT NULL,
    ts        INTEGER NOT NULL,
    record    BLOB NOT NULL,
    bar       BLOB,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage (
    replica   TEXT PRIMARY KEY,
    since_ms  INTEGER NOT NULL,
    hits      INTEGER NOT NULL,
    misses    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS usage_evictions (
    replica  TEXT PRIMARY KEY,
    series   INTEGER NOT NULL,
    records  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS series_usage (
    replica      TEXT NOT NULL,
    series_id    INTEGER NOT NULL,
    reads        INTEGER NOT NULL,
    last_read_ms INTEGER NOT NULL,
    PRIMARY KEY (replica, series_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS replicas (
    replica  TEXT PRIMARY KEY,
    first_ms INTEGER NOT NULL,
    seen_ms  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS heartbeat (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    at_ms INTEGER NOT NULL
);
DROP TRIGGER IF EXISTS records_inserted;
DROP TRIGGER IF EXISTS records_deleted;
CREATE TRIGGER IF NOT EXISTS records_deleted_changed AFTER DELETE ON records BEGIN
    UPDATE series SET records = records - 1, version = version + 1 WHERE id = OLD.series_id;
END;
"""

# A file of mdcache before change versions (issue 15): its series rows get a version.
NO_VERSION: Final = (
    "SELECT COUNT(*) FROM pragma_table_info('series') WHERE name = 'records' "
    "AND NOT EXISTS (SELECT 1 FROM pragma_table_info('series') WHERE name = 'version')"
)
ADD_VERSION: Final = "ALTER TABLE series ADD COLUMN version INTEGER NOT NULL DEFAULT 0"
# A file of mdcache before bars' numbers were kept (issue 25): its records get a ``bar``
# column, NULL for the records stored so far (resampled from their payloads, as before;
# each record written again gets its numbers).
NO_BARS: Final = (
    "SELECT COUNT(*) FROM pragma_table_info('records') WHERE name = 'record' "
    "AND NOT EXISTS (SELECT 1 FROM pragma_table_info('records') WHERE name = 'bar')"
)
ADD_BARS: Final = "ALTER TABLE records ADD COLUMN bar BLOB"
OLD_LAYOUT: Final = "SELECT COUNT(*) FROM pragma_table_info('records') WHERE name = 'payload'"
MIGRATE: Final = (
    "CREATE TABLE records_as_sent (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, "
    "record BLOB NOT NULL, PRIMARY KEY (series_id, ts)) WITHOUT ROWID",
    "INSERT INTO records_as_sent SELECT series_id, ts, mdcache_record(ts, payload) FROM records",
    "DROP TABLE records",
    "ALTER TABLE records_as_sent RENAME TO records",
)
