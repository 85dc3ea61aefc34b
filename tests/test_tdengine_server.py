"""What only a real TDengine server can show: the SQL the store builds is what the server
accepts, and what lands in it (rows, tags, timestamps, database options) is what was meant.

The store-interface and conformance suites run on TDengine too; these look inside it with
taospy directly.
"""

# ruff: noqa: S608  (database and table names are the test's own, checked by the store)

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from mdcache_server.errors import ConfigError
from mdcache_server.model import Record, SeriesKey, SeriesUsage, Usage
from mdcache_server.store.tdengine import TDengineStore, parse_url, sql
from mdcache_server.store.tdengine.naming import (
    bars_table,
    series_table,
    series_usage_table,
    totals_table,
)

from .conftest import tdengine_test_url

pytestmark = pytest.mark.tdengine

KEY = SeriesKey("600519", "kline", "1d")


@pytest.fixture
def url() -> Iterator[str]:
    yield from tdengine_test_url()


def query(conn: Any, statement: str) -> list[tuple[Any, ...]]:
    return list(conn.query(statement).fetch_all())


def test_every_statement_the_store_builds_is_accepted(url: str, taos_conn: Any) -> None:
    db = parse_url(url).database
    store = TDengineStore.from_url(url).connect()
    try:
        store.ensure_schema()
        store.write([(KEY, [Record(1_600_000_000_000 + i, "{}") for i in range(5)])])
    finally:
        store.close()
    table = series_table(KEY)
    statements = [
        sql.probe(),
        sql.server_version(),
        sql.database_precision(db),
        sql.database_options(db),
        *sql.create_tables(db),
        sql.read(db, table, None, None, newest_first=False, fetch=0),
        sql.read(db, table, 1_600_000_000_001, 1_600_000_000_003, newest_first=True, fetch=2),
        sql.read(db, table, None, None, newest_first=False, fetch=0, columns=sql.CHECK),
        sql.read(
            db, bars_table(KEY), None, None, newest_first=True, fetch=3, columns=sql.BAR_COLUMNS
        ),
        sql.describe(db, sql.RECORDS),
        sql.describe(db, sql.BARS),
        sql.series_counts(db),
        sql.series_counts(db, 1_600_000_000_002),
        sql.load_totals(db),
        sql.load_series_usage(db),
        sql.load_evictions(db),
        sql.series_usage_tables(db),
        sql.purge_subtable(db, table, 1_600_000_000_001),
        sql.purge_all(db, 1_600_000_000_002),
        sql.delete_subtable(db, table),
        *sql.reset_usage(db),
    ]
    for statement in statements:
        taos_conn.query(statement).close()  # raises on any statement the server refuses
    assert query(taos_conn, f"SELECT COUNT(*) FROM {db}.records") in ([], [(0,)])


def _schema(url: str) -> None:
    """The store's database and tables, made as a server makes them."""
    store = TDengineStore.from_url(url).connect()
    try:
        store.ensure_schema()
    finally:
        store.close()


def test_a_bars_numbers_cannot_join_its_record_in_one_row(url: str, taos_conn: Any) -> None:
    """Why the numbers have a super table of their own (``sql.BARS``), and a large Write two
    submits: a records row is at TDengine's row limit (8 + 65,517 + 2 of 65,531 bytes), so
    neither a records table with them nor an existing one given them is accepted. If a
    TDengine version accepts them, the numbers can move into the records' rows."""
    db = parse_url(url).database
    _schema(url)
    numbers = "shape BIGINT, open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE, volume DOUBLE, "
    numbers += "amount DOUBLE"
    with pytest.raises(taos_conn_error(), match="Row length exceeds max length 65531"):
        taos_conn.execute(f"ALTER STABLE {db}.records ADD COLUMN shape BIGINT")
    with pytest.raises(taos_conn_error(), match="Row length exceeds max length 65531"):
        taos_conn.execute(
            f"CREATE STABLE {db}.wide (ts TIMESTAMP, payload VARCHAR({sql.PAYLOAD_BYTES}), "
            f"{numbers}) TAGS (symbol VARCHAR(64))"
        )


def taos_conn_error() -> type[Exception]:
    import taos

    error: type[Exception] = taos.error.Error
    return error


def test_usage_rows_sit_at_one_timestamp_and_are_overwritten(url: str, taos_conn: Any) -> None:
    db = parse_url(url).database
    store = TDengineStore.from_url(url).connect()
    try:
        store.ensure_schema()
        store.save_usage(Usage("replica-a", 1000, 5, 2, {KEY: SeriesUsage(4, 2000)}))
        store.save_usage(Usage("replica-a", 1000, 9, 3, {KEY: SeriesUsage(7, 3000)}))
    finally:
        store.close()
    totals = query(
        taos_conn,
        f"SELECT CAST(ts AS BIGINT), since_ms, hits, misses, replica_name, tbname "
        f"FROM {db}.usage_totals",
    )
    assert totals == [(sql.USAGE_TS_MS, 1000, 9, 3, "replica-a", totals_table("replica-a"))]
    series = query(
        taos_conn,
        f"SELECT CAST(ts AS BIGINT), reads, last_read_ms, replica_name, symbol, data_type, "
        f"timeframe, tbname FROM {db}.usage_series",
    )
    assert series == [
        (
            sql.USAGE_TS_MS,
            7,
            3000,
            "replica-a",
            *KEY,
            series_usage_table("replica-a", KEY),
        )
    ]


def test_tags_hold_unicode_and_quotes_exactly(url: str, taos_conn: Any) -> None:
    db = parse_url(url).database
    key = SeriesKey("平安银行'; DROP DATABASE x;--", 'qu"ote\\', "1m")
    store = TDengineStore.from_url(url).connect()
    try:
        store.ensure_schema()
        store.write([(key, [Record(1_600_000_000_000, '{"a": "\'"}')])])
    finally:
        store.close()
    rows = query(
        taos_conn,
        f"SELECT tag_name, tag_value FROM information_schema.ins_tags "
        f"WHERE db_name = '{db}' AND table_name = '{series_table(key)}'",
    )
    assert dict(rows) == {"symbol": key.symbol, "data_type": key.data_type, "timeframe": "1m"}
    assert query(taos_conn, f"SELECT payload FROM {db}.{series_table(key)}") == [('{"a": "\'"}',)]


@pytest.mark.parametrize("precision", ["us", "ns"])
def test_a_database_made_by_someone_else_in_another_precision_is_refused(
    url: str, taos_conn: Any, precision: str
) -> None:
    db = parse_url(url).database
    taos_conn.execute(f"CREATE DATABASE {db} PRECISION '{precision}'")
    store = TDengineStore.from_url(url).connect()
    try:
        with pytest.raises(ConfigError, match=f"precision '{precision}'.*needs 'ms'"):
            store.ensure_schema()
    finally:
        store.close()
    assert query(taos_conn, f"SHOW {db}.STABLES") == []  # nothing made in it


def test_a_database_made_by_someone_else_in_ms_is_used_as_it_is(url: str, taos_conn: Any) -> None:
    db = parse_url(url).database
    taos_conn.execute(f"CREATE DATABASE {db} PRECISION 'ms' KEEP 3650 WAL_LEVEL 1")
    store = TDengineStore.from_url(url).connect()
    try:
        store.ensure_schema()
        assert store.write([(KEY, [Record(1_600_000_000_000, "{}")])]) == 1
        assert store.counts().records == 1
    finally:
        store.close()
    ((keep, wal),) = query(
        taos_conn,
        f"SELECT `keep`, `wal_level` FROM information_schema.ins_databases WHERE name = '{db}'",
    )
    assert (keep.split(",")[0], wal) == ("5256000m", 1)  # its options are left as they were


def test_a_database_with_other_options_is_used_and_the_difference_logged(
    url: str, taos_conn: Any
) -> None:
    db = parse_url(url).database
    taos_conn.execute(f"CREATE DATABASE {db} PRECISION 'ms' KEEP 3650 DURATION 5 VGROUPS 1")
    store = TDengineStore.from_url(url + "?vgroups=2&replica=1").connect()
    try:
        with structlog.testing.capture_logs() as logs:
            store.ensure_schema()
    finally:
        store.close()
    (differ,) = [e for e in logs if e["event"] == "tdengine_database_options_differ"]
    assert differ["differ"] == {
        "vgroups": {"url": 2, "database": 1},
        "keep_days": {"url": 36500, "database": 3650},
        "duration_days": {"url": 365, "database": 5},
        "wal_level": {"url": 2, "database": 1},  # TDengine's defaults: no fsync per write
        "wal_fsync_period": {"url": 0, "database": 3000},
    }


def test_a_database_with_fewer_replicas_than_asked_is_refused(url: str, taos_conn: Any) -> None:
    db = parse_url(url).database
    taos_conn.execute(f"CREATE DATABASE {db} PRECISION 'ms' REPLICA 1")
    store = TDengineStore.from_url(url + "?replica=3").connect()
    try:
        with pytest.raises(ConfigError, match="has REPLICA 1; the store URL asks for 3"):
            store.ensure_schema()
    finally:
        store.close()


def test_the_database_mdcache_makes_fsyncs_every_write(url: str, taos_conn: Any) -> None:
    db = parse_url(url).database
    _schema(url)
    ((precision, wal, fsync),) = query(
        taos_conn,
        "SELECT `precision`, `wal_level`, `wal_fsync_period` FROM information_schema.ins_databases "
        f"WHERE name = '{db}'",
    )
    assert (precision, wal, fsync) == ("ms", 2, 0)


def test_the_compose_file_and_the_image_ship_the_version_tested(taos_conn: Any) -> None:
    """The TDengine that docker-compose.yml runs, and whose client library the Dockerfile
    copies, is the version this suite runs against (issue 24)."""
    ((version,),) = query(taos_conn, sql.server_version())
    root = Path(__file__).parent.parent
    compose = (root / "docker-compose.yml").read_text()
    dockerfile = (root / "Dockerfile").read_text()
    assert re.findall(r"image: tdengine/tdengine:(\S+)", compose) == [version]
    assert re.findall(r"TDENGINE_VERSION: (\S+)", compose) == [version]
    assert re.findall(r"^ARG TDENGINE_VERSION=(\S+)$", dockerfile, re.MULTILINE) == [version]
