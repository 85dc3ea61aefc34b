"""The TDengine store without a server: names, URLs, and the exact SQL of every call.

The SQL builders are pure functions, tested for their exact text; the store's
calls are driven through a recording session, so each test shows the statements
one call sends, in order. The connectors are driven through stand-ins for the
taospy and taos-ws-py modules, to pin the driver calls each one makes.
"""

# ruff: noqa: S608  (the expected SQL text is built here from test constants)

from __future__ import annotations

import ctypes
import sys
import threading
import types
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from mdcache_server.errors import ConfigError, StoreError, StoreUnavailable
from mdcache_server.model import (
    PurgeFilter,
    Record,
    SeriesKey,
    SeriesRead,
    SeriesUsage,
    StoreCounts,
    Usage,
    Window,
)
from mdcache_server.store.tdengine import TDengineStore, batches, connector, parse_url, sql
from mdcache_server.store.tdengine.connector import (
    Batch,
    Column,
    ColumnType,
    NativeSession,
    WebSocketSession,
)
from mdcache_server.store.tdengine.failures import (
    ConnectionLost,
    TableMissing,
    Unreachable,
    classify,
    code_of,
)
from mdcache_server.store.tdengine.naming import (
    bars_table,
    evictions_table,
    is_identifier,
    series_table,
    series_usage_table,
    totals_table,
)
from mdcache_server.store.tdengine.options import TDengineOptions
from mdcache_server.store.url import open_store

DB = "mdcache_test"
HOSTILE = "000001'; DROP DATABASE x; --"
BACKSLASHES = "a\\'b\\\\c\\"
KEY = SeriesKey("600519", "kline", "1d")
KEY_TABLE = "r_0c2dc984b33d650e89de25b405c57b0e"
identifiers = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=16
).filter(lambda s: len(s.encode()) <= 64)
keys = st.builds(SeriesKey, identifiers, identifiers, identifiers)


# --- names ------------------------------------------------------------------------------


def test_series_table_is_stable_across_versions() -> None:
    # Changing the derivation would orphan every stored series.
    assert series_table(KEY) == KEY_TABLE
    assert totals_table("replica-1") == "u_020bbc14c989bf3eeecfb14bae918e99"
    assert series_usage_table("replica-1", KEY) == "s_9e95cb2c21ec1abac58efc17c4cbd57a"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (SeriesKey("a", "b_c", "d"), SeriesKey("a_b", "c", "d")),
        (SeriesKey("ab", "c", "d"), SeriesKey("a", "bc", "d")),
        (SeriesKey("a", "b", "c d"), SeriesKey("a b", "", "c d")),
        (SeriesKey("A", "b", "c"), SeriesKey("a", "b", "c")),
        (SeriesKey("a.b", "c", "d"), SeriesKey("a", "b.c", "d")),
    ],
)
def test_series_tables_differ_for_tricky_series(a: SeriesKey, b: SeriesKey) -> None:
    assert series_table(a) != series_table(b)


@given(keys)
def test_series_table_is_a_valid_identifier(key: SeriesKey) -> None:
    name = series_table(key)
    assert is_identifier(name)
    assert name.startswith("r_")
    assert len(name) == 34


@given(keys, keys)
def test_distinct_series_get_distinct_tables(a: SeriesKey, b: SeriesKey) -> None:
    assert (series_table(a) == series_table(b)) == (a == b)


def test_hostile_series_get_plain_names() -> None:
    for key in (SeriesKey(HOSTILE, BACKSLASHES, "1d"), SeriesKey("平安银行", " ", "`x`")):
        assert is_identifier(series_table(key))
        assert is_identifier(series_usage_table(HOSTILE, key))
    assert is_identifier(totals_table(HOSTILE))


def test_record_usage_and_total_tables_never_share_a_name() -> None:
    assert series_table(KEY)[2:] != series_usage_table("", KEY)[2:]
    prefixes = {series_table(KEY)[:2], totals_table("x")[:2], series_usage_table("x", KEY)[:2]}
    assert prefixes == {"r_", "u_", "s_"}


# --- URLs -------------------------------------------------------------------------------


def test_native_url_with_defaults() -> None:
    options = parse_url("taos://root:taosdata@td.example:6030/market")
    assert options == TDengineOptions(
        scheme="taos",
        endpoints=(("td.example", 6030),),
        user="root",
        password="taosdata",
        database="market",
        keep_days=36500,
        duration_days=365,
        wal_level=2,
        ws_params=(),
    )
    assert "taosdata" not in repr(options)
    assert options.address == "taos://td.example:6030/market"


def test_websocket_url_with_options() -> None:
    options = parse_url(
        "taosws://u%40x:p%3Aw%2Fd@10.0.0.5/Market_1?keep_days=3650&duration_days=30"
        "&wal_level=1&conn_retries=2&retry_backoff_ms=100"
    )
    assert (options.scheme, options.host, options.port) == ("taosws", "10.0.0.5", 6041)
    assert (options.user, options.password) == ("u@x", "p:w/d")
    assert options.database == "market_1"  # TDengine folds unquoted names to lower case
    assert (options.keep_days, options.duration_days, options.wal_level) == (3650, 30, 1)
    assert options.ws_params == (("conn_retries", "2"), ("retry_backoff_ms", "100"))


def test_cluster_url_with_several_endpoints_and_database_options() -> None:
    options = parse_url(
        "taos://root:taosdata@td1:7030,td2,[::1]:7230/mdcache?replica=3&vgroups=4&keep_days=3650"
    )
    assert options.endpoints == (("td1", 7030), ("td2", 6030), ("::1", 7230))
    assert (options.host, options.port) == ("td1", 7030)
    assert (options.replica, options.vgroups, options.keep_days) == (3, 4, 3650)
    assert options.address == "taos://td1:7030,td2:6030,::1:7230/mdcache"
    assert sql.create_database(
        options.database, keep_days=3650, duration_days=10, wal_level=2, replica=3, vgroups=4
    ) == (
        "CREATE DATABASE IF NOT EXISTS mdcache PRECISION 'ms' KEEP 3650 DURATION 10 "
        "WAL_LEVEL 2 WAL_FSYNC_PERIOD 0 REPLICA 3 VGROUPS 4"
    )
    assert parse_url("taos://h/db").replica is None
    # DURATION: a year by default, a third of a shorter KEEP (KEEP >= 3 x DURATION)
    assert parse_url("taos://h/db").duration_days == 365
    assert parse_url("taos://h/db?keep_days=30").duration_days == 10
    assert parse_url("taos://h/db?keep_days=3650").duration_days == 365


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("taos://h/db?replica=2", "replica must be 1 or 3"),
        ("taos://h/db?replica=4", "replica must be an integer in"),
        ("taos://h/db?vgroups=0", "vgroups must be an integer in"),
        ("taos://h1,h2;drop/db", "bad host"),
        ("taos://h1,/db", "bad host"),
        ("taosws://h1:6041,h2:6041/db", "one taosAdapter endpoint"),
    ],
)
def test_bad_cluster_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_url(url)


@pytest.mark.parametrize(
    ("shown", "days"),
    [("52560000m,52560000m,52560000m", 36500), ("14400m", 10), ("10d", 10), ("240h", 10)],
)
def test_keep_and_duration_as_the_server_shows_them(shown: str, days: int) -> None:
    assert sql.days(shown) == days


def test_url_without_credentials_uses_tdengine_defaults() -> None:
    options = parse_url("taos://localhost/db")
    assert (options.user, options.password, options.port) == ("root", "taosdata", 6030)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("taos://root:taosdata@localhost:6030", "database name"),
        ("taos://root:taosdata@localhost:6030/", "database name"),
        ("taos://h/1db", "database name"),
        ("taos://h/my-db", "database name"),
        ("taos://h/db;drop", "database name"),
        ("taos://h/db%27x", "database name"),
        ("taos://h/a/b", "database name"),
        ("taos://h/" + "d" * 65, "database name"),
        ("taos://h:notaport/db", "bad port"),
        ("taos://h:70000/db", "bad port"),
        ("mysql://h/db", "taos:// or taosws://"),
        ("taos://h/db?keep_days=10&duration_days=10", "at least 3 x duration_days"),
        ("taos://h/db?keep_days=0", "keep_days must be an integer in [1, 365000]"),
        ("taos://h/db?keep_days=365001", "keep_days"),
        ("taos://h/db?duration_days=3651", "duration_days must be an integer in [1, 3650]"),
        ("taos://h/db?keep_days=1e3", "keep_days"),
        ("taos://h/db?keep_days=-1", "keep_days"),
        ("taos://h/db?wal_level=0", "wal_level"),
        ("taos://h/db?keep_days=100&keep_days=200", "given twice"),
        ("taos://h/db?precision=us", "unknown option(s) precision"),
        ("taos://h/db?conn_retries=1", "unknown option(s) conn_retries"),
        ("taosws://h/db?conn_retries=x", "conn_retries"),
        ("taos://h/db?keep_days", "bad query string"),
        ("taos://h/db#x", "fragment"),
    ],
)
def test_bad_urls_are_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match="tdengine URL") as info:
        parse_url(url)
    assert message in str(info.value)


def test_store_url_dispatch_imports_no_driver() -> None:
    before = {name for name in ("taos", "taosws") if name in sys.modules}
    for url in ("taos://localhost/db", "taosws://localhost/db"):
        store = open_store(url)
        assert isinstance(store, TDengineStore)
        assert store.name == "tdengine"
    assert {name for name in ("taos", "taosws") if name in sys.modules} == before


@pytest.mark.parametrize(
    ("url", "module", "install"),
    [
        ("taos://localhost/db", "taos", "pip install 'mdcache[tdengine]'"),
        ("taosws://localhost/db", "taosws", "pip install 'mdcache[taosws]'"),
    ],
)
def test_missing_driver_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, url: str, module: str, install: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(ConfigError, match="needs") as info:
        TDengineStore.from_url(url).connect()
    assert install in str(info.value)
    if module == "taos":
        assert "libtaos.so" in str(info.value)


# --- SQL text ---------------------------------------------------------------------------


def test_schema_sql() -> None:
    assert sql.create_database(DB, keep_days=36500, duration_days=10, wal_level=2) == (
        "CREATE DATABASE IF NOT EXISTS mdcache_test PRECISION 'ms' KEEP 36500 DURATION 10 "
        "WAL_LEVEL 2 WAL_FSYNC_PERIOD 0"
    )
    assert sql.create_database(DB, keep_days=30, duration_days=10, wal_level=1) == (
        "CREATE DATABASE IF NOT EXISTS mdcache_test PRECISION 'ms' KEEP 30 DURATION 10 WAL_LEVEL 1"
    )
    assert sql.database_precision(DB) == (
        "SELECT `precision` FROM information_schema.ins_databases WHERE name = 'mdcache_test'"
    )
    assert sql.create_tables(DB) == [
        "CREATE STABLE IF NOT EXISTS mdcache_test.records "
        "(ts TIMESTAMP, payload VARCHAR(65517), chk INT) "
        "TAGS (symbol VARCHAR(64), data_type VARCHAR(64), timeframe VARCHAR(64))",
        "CREATE STABLE IF NOT EXISTS mdcache_test.usage_totals "
        "(ts TIMESTAMP, since_ms BIGINT, hits BIGINT, misses BIGINT) "
        "TAGS (replica_name VARCHAR(256))",
        "CREATE STABLE IF NOT EXISTS mdcache_test.usage_evictions "
        "(ts TIMESTAMP, evicted_series BIGINT, evicted_records BIGINT) "
        "TAGS (replica_name VARCHAR(256))",
        "CREATE STABLE IF NOT EXISTS mdcache_test.usage_series "
        "(ts TIMESTAMP, reads BIGINT, last_read_ms BIGINT) "
        "TAGS (replica_name VARCHAR(256), symbol VARCHAR(64), data_type VARCHAR(64), "
        "timeframe VARCHAR(64))",
        "CREATE STABLE IF NOT EXISTS mdcache_test.feed_notes "
        "(ts TIMESTAMP, payload VARCHAR(4096)) TAGS (slot VARCHAR(16))",
        "CREATE STABLE IF NOT EXISTS mdcache_test.replicas "
        "(ts TIMESTAMP, first_ms BIGINT, seen_ms BIGINT) TAGS (replica_name VARCHAR(256))",
        "CREATE STABLE IF NOT EXISTS mdcache_test.bars (ts TIMESTAMP, shape BIGINT, "
        "open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE, volume DOUBLE, amount DOUBLE, "
        "chk INT) TAGS (symbol VARCHAR(64), data_type VARCHAR(64), timeframe VARCHAR(64))",
    ]
    assert sql.drop_database(DB) == "DROP DATABASE IF EXISTS mdcache_test"
    assert sql.server_version() == "SELECT SERVER_VERSION()"


def test_insert_sql_binds_everything() -> None:
    assert sql.insert_records(DB) == (
        "INSERT INTO ? USING mdcache_test.records TAGS (?, ?, ?) VALUES (?, ?, ?)"
    )
    assert sql.insert_bars(DB) == (
        "INSERT INTO ? USING mdcache_test.bars TAGS (?, ?, ?) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    assert sql.insert_totals(DB) == (
        "INSERT INTO ? USING mdcache_test.usage_totals TAGS (?) VALUES (?, ?, ?, ?)"
    )
    assert sql.insert_series_usage(DB) == (
        "INSERT INTO ? USING mdcache_test.usage_series TAGS (?, ?, ?, ?) VALUES (?, ?, ?)"
    )
    assert sql.insert_evictions(DB) == (
        "INSERT INTO ? USING mdcache_test.usage_evictions TAGS (?) VALUES (?, ?, ?)"
    )


def test_read_sql() -> None:
    t = KEY_TABLE
    assert sql.read(DB, t, 100, 200, newest_first=False, fetch=11) == (
        f"SELECT CAST(ts AS BIGINT), payload FROM mdcache_test.{t} "
        "WHERE ts >= 100 AND ts <= 200 ORDER BY ts ASC LIMIT 11"
    )
    assert sql.read(DB, t, 100, None, newest_first=True, fetch=6) == (
        f"SELECT CAST(ts AS BIGINT), payload FROM mdcache_test.{t} "
        "WHERE ts >= 100 ORDER BY ts DESC LIMIT 6"
    )
    assert sql.read(DB, t, None, 200, newest_first=False, fetch=2) == (
        f"SELECT CAST(ts AS BIGINT), payload FROM mdcache_test.{t} "
        "WHERE ts <= 200 ORDER BY ts ASC LIMIT 2"
    )
    assert sql.read(DB, t, None, None, newest_first=True, fetch=0) == (
        f"SELECT CAST(ts AS BIGINT), payload FROM mdcache_test.{t} ORDER BY ts DESC"
    )


@pytest.mark.parametrize(
    ("start", "end", "bounds"),
    [
        (None, None, (None, None)),
        (5, 10, (5, 10)),
        (7, 7, (7, 7)),
        (0, 10, (None, 10)),  # ts >= 0 holds for every record
        (-(2**63), 2**63 - 1, (None, None)),
        (5, 4_102_444_799_999, (5, None)),
        (11, 10, None),
        (4_102_444_800_000, None, None),
        (None, -1, None),
    ],
)
def test_time_bounds_clamp_to_the_stored_range(
    start: int | None, end: int | None, bounds: tuple[int | None, int | None] | None
) -> None:
    assert sql.time_bounds(start, end) == bounds


def test_count_purge_and_drop_sql() -> None:
    t = KEY_TABLE
    assert sql.series_counts(DB) == (
        "SELECT tbname, symbol, data_type, timeframe, COUNT(*) FROM mdcache_test.records "
        "GROUP BY tbname, symbol, data_type, timeframe"
    )
    assert sql.series_counts(DB, 1_700_000_000_000) == (
        "SELECT tbname, symbol, data_type, timeframe, COUNT(*) FROM mdcache_test.records "
        "WHERE ts < 1700000000000 GROUP BY tbname, symbol, data_type, timeframe"
    )
    assert sql.purge_all(DB, 1_700_000_000_000) == (
        "DELETE FROM mdcache_test.records WHERE ts < 1700000000000"
    )
    assert sql.purge_subtable(DB, t, 42) == f"DELETE FROM mdcache_test.{t} WHERE ts < 42"
    assert sql.delete_subtable(DB, t) == f"DELETE FROM mdcache_test.{t}"


def test_usage_sql() -> None:
    assert sql.load_totals(DB) == (
        "SELECT replica_name, since_ms, hits, misses FROM mdcache_test.usage_totals"
    )
    assert sql.load_series_usage(DB) == (
        "SELECT replica_name, symbol, data_type, timeframe, reads, last_read_ms "
        "FROM mdcache_test.usage_series"
    )
    assert sql.load_evictions(DB) == (
        "SELECT replica_name, evicted_series, evicted_records FROM mdcache_test.usage_evictions"
    )
    assert sql.reset_usage(DB) == [
        "DELETE FROM mdcache_test.usage_totals",
        "DELETE FROM mdcache_test.usage_series",
        "DELETE FROM mdcache_test.usage_evictions",
    ]
    assert sql.USAGE_TS_MS == 4_102_444_800_000 > sql.MAX_TS_MS


@pytest.mark.parametrize(
    ("db", "name"),
    [
        (DB, HOSTILE),
        (DB, "r_x; DROP DATABASE y"),
        (DB, "R_UPPER"),
        (DB, "a.b"),
        (DB, "`r`"),
        ("x; DROP DATABASE y", "records"),
        ("1db", "records"),
    ],
)
def test_sql_refuses_names_that_are_not_plain(db: str, name: str) -> None:
    with pytest.raises(ValueError, match="not a plain TDengine"):
        sql.table(db, name)


# --- the store's calls, through a recording session --------------------------------------

Responder = Callable[[str], list[tuple[Any, ...]]]


@dataclass
class RecordingSession:
    """Records every call; answers queries with ``respond`` and DELETEs with ``affected``."""

    respond: Responder = lambda _sql: []
    affected: Callable[[str], int] = lambda _sql: 0
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    fail: list[BaseException] = field(default_factory=list)
    closed: bool = False

    def _maybe_fail(self) -> None:
        if self.fail:
            raise self.fail.pop(0)

    def execute(self, statement: str) -> int:
        self.calls.append(("execute", statement, None))
        self._maybe_fail()
        return self.affected(statement)

    def query(self, statement: str) -> list[tuple[Any, ...]]:
        self.calls.append(("query", statement, None))
        self._maybe_fail()
        return self.respond(statement)

    def query_columns(self, statement: str, kinds: Sequence[Any]) -> list[list[Any]]:
        rows = self.query(statement)
        return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in kinds]

    def insert(self, statement: str, batches: Sequence[Batch]) -> int:
        self.calls.append(("insert", statement, list(batches)))
        self._maybe_fail()
        return sum(len(b.columns[0].values) for b in batches)

    def insert_many(self, inserts: Sequence[tuple[str, Sequence[Batch]]]) -> list[int]:
        return [self.insert(statement, batches) for statement, batches in inserts]

    def close(self) -> None:
        self.closed = True


def _connect(*sessions: RecordingSession) -> tuple[Any, list[RecordingSession]]:
    """A connection whose opener hands out these sessions in turn."""
    pending = list(sessions)
    opened: list[RecordingSession] = []

    def opener(_options: TDengineOptions) -> RecordingSession:
        opened.append(pending.pop(0))
        return opened[-1]

    store = TDengineStore(parse_url(f"taos://localhost/{DB}"), opener=opener)
    return store.connect(), opened


def _statements(session: RecordingSession) -> list[str]:
    return [statement for _, statement, _ in session.calls]


CHECK_COLUMN = ("chk", "INT", 4, "")  # a row of DESCRIBE


def _schema_responder(*, checked: Callable[[str], bool]) -> Responder:
    """Answers a start-up's queries: precision ``ms``; ``DESCRIBE`` of a super table with
    ``chk`` where ``checked`` says (by statement)."""

    def respond(statement: str) -> list[tuple[Any, ...]]:
        if "precision" in statement:
            return [("ms",)]
        if statement.startswith("DESCRIBE"):
            return [("ts", "TIMESTAMP", 8, ""), *([CHECK_COLUMN] if checked(statement) else [])]
        return []

    return respond


def test_ensure_schema_creates_database_then_tables() -> None:
    session = RecordingSession(respond=_schema_responder(checked=lambda _s: True))
    conn, _ = _connect(session)
    conn.ensure_schema()
    assert _statements(session) == [
        sql.create_database(DB, keep_days=36500, duration_days=365, wal_level=2),
        sql.database_precision(DB),
        *sql.create_tables(DB),
        "DESCRIBE mdcache_test.records",
        "DESCRIBE mdcache_test.bars",
        sql.database_options(DB),
    ]


def test_ensure_schema_adds_the_checks_to_an_earlier_versions_tables() -> None:
    session = RecordingSession(respond=_schema_responder(checked=lambda _s: False))
    conn, _ = _connect(session)
    with structlog.testing.capture_logs() as logs:
        conn.ensure_schema()
    assert _statements(session)[-5:] == [
        "DESCRIBE mdcache_test.records",
        "ALTER STABLE mdcache_test.records ADD COLUMN chk INT",
        "DESCRIBE mdcache_test.bars",
        "ALTER STABLE mdcache_test.bars ADD COLUMN chk INT",
        sql.database_options(DB),
    ]
    added = [e["table"] for e in logs if e["event"] == "tdengine_column_added"]
    assert added == ["records", "bars"]
    with pytest.raises(ValueError, match="not a super table with a check"):
        sql.add_check(DB, "usage_totals")


def test_a_check_another_replica_added_first_is_taken_as_it_is() -> None:
    """Two replicas of an earlier version's database starting together: the ALTER of the
    one that comes second fails, and it goes on once DESCRIBE shows the column."""
    added: set[str] = set()

    def alter(statement: str) -> int:
        if statement.startswith("ALTER"):
            added.add(statement.split()[2])  # the other replica's ALTER won
            raise StoreError("tdengine execute: [0x036a]: Column already exists")
        return 0

    session = RecordingSession(
        respond=_schema_responder(checked=lambda s: s.split()[1] in added), affected=alter
    )
    conn, _ = _connect(session)
    with structlog.testing.capture_logs() as logs:
        conn.ensure_schema()
    assert added == {"mdcache_test.records", "mdcache_test.bars"}
    assert not [e for e in logs if e["event"] == "tdengine_column_added"]  # not by this one

    def refuse(statement: str) -> int:
        if statement.startswith("ALTER"):
            raise StoreError("tdengine execute: [0x0380]: Permission denied")
        return 0

    refused = RecordingSession(respond=_schema_responder(checked=lambda _s: False), affected=refuse)
    conn, _ = _connect(refused)
    with pytest.raises(StoreError, match="Permission denied"):  # and no column: raised
        conn.ensure_schema()


def test_ensure_schema_refuses_a_database_of_another_precision() -> None:
    session = RecordingSession(respond=lambda _s: [("us",)])
    conn, _ = _connect(session)
    with pytest.raises(ConfigError, match="precision 'us'"):
        conn.ensure_schema()
    assert not any("STABLE" in s for s in _statements(session))


def test_server_version_is_the_probe() -> None:
    session = RecordingSession(respond=lambda _s: [("3.2.2.2",)])
    conn, _ = _connect(session)
    assert conn.server_version() == "3.2.2.2"
    assert _statements(session) == ["SELECT SERVER_VERSION()"]


WRITTEN = [
    (KEY, [Record(30, '{"c":3}'), Record(10, '{"c":1}'), Record(20, '"x"')]),
    (SeriesKey(HOSTILE, BACKSLASHES, "1d"), [Record(5, "[]")]),
]


HOSTILE_TAGS = """('000001\\'; DROP DATABASE x; --', 'a\\\\\\'b\\\\\\\\c\\\\', '1d')"""


def test_a_small_write_is_one_multi_table_insert_and_nothing_else() -> None:
    session = RecordingSession()
    conn, _ = _connect(session)
    hostile = WRITTEN[1][0]
    assert conn.write(WRITTEN) == 4
    [(kind, statement, _)] = session.calls  # replicas learn of it from the change feed
    none = "0, 0, 0, 0, 0, 0, 0"  # a bar's numbers kept (none: shape 0), in the same INSERT
    c3, c1, cx, ca = (batches.check(p) for p in ('{"c":3}', '{"c":1}', '"x"', "[]"))
    assert (kind, statement) == (
        "execute",
        f"INSERT INTO {DB}.{bars_table(KEY)} USING {DB}.bars TAGS ('600519', 'kline', '1d') "
        f"VALUES (30, {none}, {c3}) (10, {none}, {c1}) (20, {none}, {cx}) "
        f"{DB}.{bars_table(hostile)} USING {DB}.bars TAGS "
        f"{HOSTILE_TAGS} VALUES (5, {none}, {ca}) "
        f"{DB}.{KEY_TABLE} USING {DB}.records TAGS ('600519', 'kline', '1d') "
        f"""VALUES (30, '{{"c":3}}', {c3}) (10, '{{"c":1}}', {c1}) (20, '"x"', {cx}) """
        f"{DB}.{series_table(hostile)} USING {DB}.records TAGS "
        f"{HOSTILE_TAGS} VALUES (5, '[]', {ca})",
    )


def test_a_payloads_check_is_its_crc32_in_31_bits() -> None:
    """``chk`` of the records row and of the bars row (``sql.CHECK``): never the -1 that a
    row written before the column existed reads as."""
    assert batches.check("") == 0
    assert batches.check('{"close": 10.5}') == zlib.crc32(b'{"close": 10.5}') & 0x7FFFFFFF
    assert batches.check('{"close": 10.5}') != batches.check('{"close": 10.6}')
    assert batches.check("平安银行") == zlib.crc32("平安银行".encode()) & 0x7FFFFFFF
    assert all(0 <= batches.check(str(i)) < 2**31 for i in range(1000))


def test_a_group_commit_keeps_the_record_given_last() -> None:
    session = RecordingSession()
    conn, _ = _connect(session)
    assert conn.write([(KEY, [Record(1, '"a"'), Record(2, '"b"')]), (KEY, [Record(1, '"c"')])]) == 3
    checks = [batches.check(p) for p in ('"c"', '"b"')]
    assert session.calls[0][1].endswith(
        f""" VALUES (1, '"c"', {checks[0]}) (2, '"b"', {checks[1]})"""
    )


def test_a_large_write_binds_one_batch_per_series_in_timestamp_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sql, "TEXT_INSERT_MAX_CHARS", 0)
    session = RecordingSession()
    conn, _ = _connect(session)
    hostile = WRITTEN[1][0]
    assert conn.write(WRITTEN) == 4
    [(kind, statement, plan), (_, numbers, bars_plan)] = session.calls
    assert (kind, statement) == ("insert", sql.insert_records(DB))
    assert numbers == sql.insert_bars(DB)  # then the bars' numbers (none: shape 0)
    check = batches.check
    assert [(b.table, [c.values for c in b.columns]) for b in bars_plan] == [
        (  # in timestamp order, as the records
            f"{DB}.{bars_table(KEY)}",
            [[10, 20, 30], *[[0, 0, 0]] * 7, [check('{"c":1}'), check('"x"'), check('{"c":3}')]],
        ),
        (f"{DB}.{bars_table(hostile)}", [[5], *[[0]] * 7, [check("[]")]]),
    ]
    assert plan == [
        Batch(
            f"{DB}.{KEY_TABLE}",
            ("600519", "kline", "1d"),
            (
                Column(ColumnType.TIMESTAMP, [10, 20, 30]),
                Column(ColumnType.VARCHAR, ['{"c":1}', '"x"', '{"c":3}']),
                Column(ColumnType.INT, [check('{"c":1}'), check('"x"'), check('{"c":3}')]),
            ),
        ),
        Batch(
            f"{DB}.{series_table(hostile)}",
            (HOSTILE, BACKSLASHES, "1d"),
            (
                Column(ColumnType.TIMESTAMP, [5]),
                Column(ColumnType.VARCHAR, ["[]"]),
                Column(ColumnType.INT, [check("[]")]),
            ),
        ),
    ]


def test_large_writes_bind_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batches, "BIND_BUDGET_BYTES", 100)
    records = [Record(ts, "x" * width) for ts, width in [(1, 10), (2, 10), (3, 40), (4, 5)]]
    chunks = list(batches.record_chunks(records))
    assert [[r.ts_ms for r in c] for c in chunks] == [[1, 2], [3, 4]]
    assert all(len(c) * max(len(r.payload) for r in c) <= 100 for c in chunks)
    assert [[r.ts_ms for r in c] for c in batches.record_chunks([Record(1, "x" * 500)])] == [[1]]
    made = batches.record_batches(DB, [(KEY, records)], [batches.checks(records)])
    assert [[c.values for c in b.columns] for b in made] == [
        [[1, 2], ["x" * 10] * 2, [batches.check("x" * 10)] * 2],  # each chunk its own checks
        [[3, 4], ["x" * 40, "x" * 5], [batches.check("x" * 40), batches.check("x" * 5)]],
    ]


def test_read_windows_limits_and_misses() -> None:
    other = SeriesKey("000001", "kline", "1d")
    rows = {KEY_TABLE: [(10, "a"), (20, "b"), (30, "c")]}

    def respond(statement: str) -> list[tuple[Any, ...]]:
        table = statement.split(f"FROM {DB}.")[1].split()[0]
        if table not in rows:
            raise TableMissing("tdengine query: [0x2662]: Table does not exist")
        return rows[table]

    session = RecordingSession(respond=respond)
    conn, _ = _connect(session)
    window = Window(start_ms=10, end_ms=30, limit=2, newest_first=True)
    assert conn.read([KEY, other], window) == [
        SeriesRead([Record(10, "a"), Record(20, "b")], truncated=True),
        SeriesRead([], truncated=False),
    ]
    assert _statements(session) == [
        sql.read(DB, KEY_TABLE, 10, 30, newest_first=True, fetch=3),
        sql.read(DB, series_table(other), 10, 30, newest_first=True, fetch=3),
    ]
    everything = [Record(10, "a"), Record(20, "b"), Record(30, "c")]
    assert conn.read([KEY], Window(limit=3)) == [SeriesRead(everything, truncated=False)]


def test_a_window_that_selects_nothing_sends_nothing() -> None:
    session = RecordingSession()
    conn, _ = _connect(session)
    assert conn.read([KEY], Window(start_ms=5_000_000_000_000, limit=5)) == [SeriesRead([], False)]
    assert session.calls == []


def test_purge_all_is_one_delete_on_the_super_table() -> None:
    session = RecordingSession(affected=lambda _s: 7)
    conn, _ = _connect(session)
    assert conn.purge(PurgeFilter(before_ms=1_700_000_000_000)) == 7
    assert conn.purge(PurgeFilter(before_ms=0)) == 0
    assert conn.purge(PurgeFilter(before_ms=2**63 - 1)) == 7
    assert _statements(session) == [
        "DELETE FROM mdcache_test.records WHERE ts < 1700000000000",
        "DELETE FROM mdcache_test.bars WHERE ts < 1700000000000",  # their numbers after them
        "DELETE FROM mdcache_test.records WHERE ts < 4102444800000",
        "DELETE FROM mdcache_test.bars WHERE ts < 4102444800000",
    ]


SERIES_ROWS = [
    ("r_" + "1" * 32, HOSTILE, "kline", "1d", 3),
    ("r_" + "2" * 32, HOSTILE, "tick", "1s", 2),
    ("r_" + "3" * 32, "000001", "kline", "1d", 4),
    ("r_" + "4" * 32, HOSTILE, "kline", "1m", 0),  # emptied earlier: nothing to delete
]


@pytest.mark.parametrize(
    ("purge", "tables"),
    [
        (PurgeFilter(before_ms=1000, symbol=HOSTILE), ["1", "2"]),
        (PurgeFilter(before_ms=1000, data_type="kline"), ["1", "3"]),
        (PurgeFilter(before_ms=1000, symbol=HOSTILE, data_type="tick"), ["2"]),
        (PurgeFilter(before_ms=1000, timeframe="1d"), ["1", "3"]),
        (PurgeFilter(before_ms=1000, symbol=HOSTILE, timeframe="1d"), ["1"]),
        (PurgeFilter(before_ms=1000, symbol="nope"), []),
    ],
)
def test_filtered_purge_deletes_per_matching_subtable(
    purge: PurgeFilter, tables: list[str]
) -> None:
    session = RecordingSession(
        respond=lambda _s: SERIES_ROWS,
        affected=lambda s: 0 if s.startswith("INSERT") or ".b_" in s else int(s.split("r_")[1][0]),
    )
    conn, _ = _connect(session)
    assert conn.purge(purge) == sum(int(t) for t in tables)
    statements = _statements(session)
    keys = {row[0][2]: SeriesKey(*row[1:4]) for row in SERIES_ROWS}
    assert statements[: 1 + 2 * len(tables)] == [
        sql.series_counts(DB, 1000),
        *(f"DELETE FROM mdcache_test.r_{t * 32} WHERE ts < 1000" for t in tables),
        *(f"DELETE FROM mdcache_test.{bars_table(keys[t])} WHERE ts < 1000" for t in tables),
    ]
    assert len(statements) == 1 + 2 * len(tables)  # nothing else: replicas learn from the feed
    # the deletes name derived tables only, never a tag
    assert not any(HOSTILE in s or "kline" in s for s in statements)


def test_counts_and_listing_cover_series_holding_records() -> None:
    session = RecordingSession(respond=lambda _s: SERIES_ROWS)
    conn, _ = _connect(session)
    assert conn.counts() == StoreCounts(records=9, series=3, symbols=2)
    assert conn.list_series() == [
        (SeriesKey("000001", "kline", "1d"), 4),
        (SeriesKey(HOSTILE, "kline", "1d"), 3),
        (SeriesKey(HOSTILE, "tick", "1s"), 2),
    ]
    assert _statements(session) == [sql.series_counts(DB)] * 2


def test_drop_series_deletes_each_subtable_and_counts_missing_as_zero() -> None:
    other = SeriesKey("000001", "kline", "1d")

    def affected(statement: str) -> int:
        if series_table(other) in statement:
            raise TableMissing("tdengine execute: [0x2662]: Table does not exist")
        return 5

    session = RecordingSession(affected=affected)
    conn, _ = _connect(session)
    assert conn.drop_series([KEY, other]) == 5
    assert _statements(session) == [
        f"DELETE FROM mdcache_test.{KEY_TABLE}",
        f"DELETE FROM mdcache_test.{series_table(other)}",
        f"DELETE FROM mdcache_test.{bars_table(KEY)}",  # their numbers, after them
        f"DELETE FROM mdcache_test.{bars_table(other)}",
    ]


def test_usage_is_saved_as_one_row_per_subtable_and_loaded_back() -> None:
    usage = Usage("replica-1", 1000, 7, 3, {KEY: SeriesUsage(4, 1500)}, 2, 600)
    session = RecordingSession()
    conn, _ = _connect(session)
    conn.save_usage(usage)
    assert session.calls == [  # the totals last: a load reads them first
        ("insert", sql.insert_series_usage(DB), batches.series_usage_batches(DB, usage)),
        ("insert", sql.insert_evictions(DB), [batches.evictions_batch(DB, usage)]),
        ("insert", sql.insert_totals(DB), [batches.totals_batch(DB, usage)]),
    ]
    [totals] = session.calls[2][2]
    assert totals.table == "mdcache_test.u_020bbc14c989bf3eeecfb14bae918e99"
    assert totals.tags == ("replica-1",)
    assert [c.values for c in totals.columns] == [[4_102_444_800_000], [1000], [7], [3]]
    [series] = session.calls[0][2]
    assert series.tags == ("replica-1", "600519", "kline", "1d")
    assert [c.values for c in series.columns] == [[4_102_444_800_000], [4], [1500]]
    [evictions] = session.calls[1][2]
    assert evictions.table == "mdcache_test.e_020bbc14c989bf3eeecfb14bae918e99"
    assert evictions.tags == ("replica-1",)
    assert [c.values for c in evictions.columns] == [[4_102_444_800_000], [2], [600]]

    loaded = RecordingSession(
        respond=lambda s: (
            [("r2", 5, 1, 1), ("replica-1", 1000, 7, 3)]
            if "usage_totals" in s
            else [("replica-1", 2, 600), ("orphan", 1, 1)]
            if "usage_evictions" in s
            else [("replica-1", *KEY, 4, 1500), ("orphan", *KEY, 1, 1)]
        )
    )
    conn, _ = _connect(loaded)
    assert conn.load_usage() == [Usage("r2", 5, 1, 1, {}), usage]
    assert _statements(loaded) == [
        sql.load_totals(DB),
        sql.load_series_usage(DB),
        sql.load_evictions(DB),
    ]


def test_saving_usage_without_series_writes_totals_only() -> None:
    session = RecordingSession()
    conn, _ = _connect(session)
    conn.save_usage(Usage("r", 0, 0, 0, {}))
    assert [statement for _, statement, _ in session.calls] == [
        sql.insert_evictions(DB),
        sql.insert_totals(DB),
    ]
    with pytest.raises(StoreError, match="replica name over 256 bytes"):
        conn.save_usage(Usage("r" * 257, 0, 0, 0, {}))


def test_reset_usage_deletes_every_usage_table() -> None:
    session = RecordingSession()
    conn, _ = _connect(session)
    conn.reset_usage()
    assert _statements(session) == sql.reset_usage(DB)


def test_reset_usage_of_one_replica_deletes_its_subtables() -> None:
    mine, theirs = "s_" + "1" * 32, "s_" + "2" * 32

    def respond(_statement: str) -> list[tuple[Any, ...]]:
        return [(mine, HOSTILE), (theirs, "replica-2")]

    def affected(statement: str) -> int:
        if totals_table(HOSTILE) in statement:
            raise TableMissing("tdengine execute: [0x2662]: Table does not exist")
        return 1

    session = RecordingSession(respond=respond, affected=affected)
    conn, _ = _connect(session)
    conn.reset_usage(HOSTILE)
    assert _statements(session) == [
        "SELECT tbname, replica_name FROM mdcache_test.usage_series",
        f"DELETE FROM mdcache_test.{mine}",
        f"DELETE FROM mdcache_test.{totals_table(HOSTILE)}",
        f"DELETE FROM mdcache_test.{evictions_table(HOSTILE)}",
    ]


# --- broken connections ------------------------------------------------------------------


def test_an_idempotent_call_reconnects_and_retries_once() -> None:
    broken = RecordingSession(fail=[ConnectionLost("tdengine query: [0x0018]: Conn is broken")])
    fresh = RecordingSession(respond=lambda _s: [("3.2.2.2",)])
    conn, opened = _connect(broken, fresh)
    assert conn.server_version() == "3.2.2.2"
    assert opened == [broken, fresh]
    assert broken.closed


def test_a_second_break_is_unavailable() -> None:
    lost = ConnectionLost("tdengine query: lost")
    conn, _ = _connect(RecordingSession(fail=[lost]), RecordingSession(fail=[lost]))
    with pytest.raises(StoreUnavailable):
        conn.counts()


def test_a_purge_is_not_retried() -> None:
    broken = RecordingSession(fail=[ConnectionLost("tdengine execute: lost")])
    conn, opened = _connect(broken, RecordingSession())
    with pytest.raises(StoreUnavailable):
        conn.purge(PurgeFilter(before_ms=10))
    assert opened == [broken]
    assert broken.closed


@pytest.mark.parametrize(
    ("code", "connection_error", "cls"),
    [
        (0x2662, False, TableMissing),
        (0x2603, False, TableMissing),
        (0x000B, True, Unreachable),  # no server answers: not retried at once
        (0x0018, False, ConnectionLost),
        (0x0213, False, ConnectionLost),
        (0xE001, False, ConnectionLost),
        (0x010A, False, ConnectionLost),  # "Ref is not there" as a cut node rejoined
        (0x0334, False, StoreUnavailable),
        (0x0503, False, StoreUnavailable),  # "Vnode is closed or removed"
        (0x0130, False, StoreUnavailable),
        (0x0396, False, StoreUnavailable),
        (None, True, ConnectionLost),
        (0x0357, True, StoreError),  # authentication failure: not worth retrying
        (0x2653, False, StoreError),  # value too long
        (0x060B, False, StoreError),  # timestamp out of range (older than KEEP)
        (0x0216, False, StoreError),  # syntax error
        (None, False, StoreError),
    ],
)
def test_codes_map_to_store_errors(
    code: int | None, connection_error: bool, cls: type[StoreError]
) -> None:
    assert classify(code, connection_error=connection_error) is cls


@pytest.mark.parametrize(
    ("message", "cls"),
    [
        ("Fail to get table info, error: Table does not exist", TableMissing),
        ("Fail to get table info, error: Sync leader is unreachable", StoreUnavailable),
    ],
)
def test_table_info_missing_is_a_miss_only_when_the_table_does_not_exist(
    message: str, cls: type[StoreError]
) -> None:
    assert classify(0x2662, connection_error=False, message=message) is cls


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("[0x2662] Fail to get table info, error: Table does not exist", 0x2662),
        ("[0xE001] Internal error: `WebSocket internal error: IO error`", 0xE001),
        ("[0x80000334] Out of dnodes", 0x0334),
        ("no code here [0x2662]", None),
        ("", None),
    ],
)
def test_websocket_codes_are_read_from_the_message(text: str, code: int | None) -> None:
    assert code_of(text) == code


# --- the connectors, against stand-ins for the driver modules -----------------------------


class FakeTaosError(Exception):
    def __init__(self, msg: str, errno: int) -> None:
        super().__init__(f"[0x{errno & 0xFFFF:04x}]: {msg}")
        self.errno = errno


class FakeTaosConnectionError(FakeTaosError):
    pass


@dataclass
class FakeBind:
    kind: str = ""
    values: list[Any] = field(default_factory=list)

    def timestamp(self, values: list[int]) -> None:
        self.kind, self.values = "timestamp", values

    def bigint(self, values: list[int]) -> None:
        self.kind, self.values = "bigint", values

    def binary(self, values: list[str]) -> None:
        self.kind, self.values = "binary", values


class FakeMultiBind:
    """A TAOS_MULTI_BIND's fields, as the session sets them."""

    buffer_type: int
    buffer: int
    buffer_length: int
    length: Any
    is_null: Any
    num: int

    def read(self) -> tuple[str, list[Any]]:
        """What libtaos would read from the buffers: the type and the values."""
        nulls = ctypes.string_at(self.is_null, self.num)
        assert nulls == bytes(self.num)
        if self.buffer_type == FIELD_BINARY:
            values: list[Any] = [
                ctypes.string_at(
                    (self.buffer.value or 0) + i * self.buffer_length, self.length[i]
                ).decode()
                for i in range(self.num)
            ]
            return "binary", values
        ints = ctypes.cast(self.buffer, ctypes.POINTER(ctypes.c_int64))
        kind = {FIELD_TIMESTAMP: "timestamp", FIELD_BIGINT: "bigint"}[self.buffer_type]
        return kind, [ints[i] for i in range(self.num)]


FIELD_BIGINT, FIELD_BINARY, FIELD_TIMESTAMP = 5, 8, 9  # taos.constants.FieldType


@dataclass
class FakeResult:
    rows: list[tuple[Any, ...]]
    affected_rows: int = 0
    closed: bool = False

    def fetch_all(self) -> list[tuple[Any, ...]]:
        return self.rows

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeDriver:
    """Records driver calls in ``log``; ``fail`` maps SQL to an error to raise."""

    log: list[tuple[Any, ...]] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    fail: dict[str, BaseException] = field(default_factory=dict)


def _fake_taos(driver: FakeDriver) -> types.ModuleType:
    module = types.ModuleType("taos")
    error = types.SimpleNamespace(Error=FakeTaosError, ConnectionError=FakeTaosConnectionError)

    class Stmt:
        def __init__(self, statement: str) -> None:
            driver.log.append(("statement", statement))
            self._stmt = self  # the handle libtaos' stmt calls take
            self.bound = 0  # rows bound since the last execute
            self.affected = 0

        def close(self) -> None:
            driver.log.append(("stmt.close",))

    class LibTaos:
        """libtaos' stmt calls, as taos.cinterface._libtaos exposes them."""

        def taos_stmt_set_tbname_tags(self, stmt: Stmt, name: Any, tags: list[FakeBind]) -> int:
            driver.log.append(("set_tbname_tags", name.value, [(t.kind, t.values) for t in tags]))
            return 0

        def taos_stmt_bind_param_batch(self, stmt: Stmt, binds: list[FakeMultiBind]) -> int:
            driver.log.append(("bind_param_batch", [b.read() for b in binds]))
            stmt.bound += binds[0].num
            return 0

        def taos_stmt_add_batch(self, stmt: Stmt) -> int:
            return 0

        def taos_stmt_execute(self, stmt: Stmt) -> int:
            driver.log.append(("execute",))
            stmt.affected, stmt.bound = stmt.affected + stmt.bound, 0
            return 0

        def taos_stmt_affected_rows(self, stmt: Stmt) -> int:
            return stmt.affected

    class Connection:
        def query(self, statement: str) -> FakeResult:
            driver.log.append(("query", statement))
            if statement in driver.fail:
                raise driver.fail[statement]
            return FakeResult(driver.rows, affected_rows=3)

        def statement(self, statement: str) -> Stmt:
            return Stmt(statement)

        def close(self) -> None:
            driver.log.append(("close",))

    def connect(**kwargs: Any) -> Connection:
        driver.log.append(("connect", kwargs))
        return Connection()

    module.__dict__.update(
        error=error,
        connect=connect,
        new_bind_params=lambda n: [FakeBind() for _ in range(n)],
        new_multi_binds=lambda n: [FakeMultiBind() for _ in range(n)],
        cinterface=types.SimpleNamespace(_libtaos=LibTaos(), taos_stmt_errstr=str),
        constants=types.SimpleNamespace(
            FieldType=types.SimpleNamespace(
                C_BIGINT=FIELD_BIGINT, C_BINARY=FIELD_BINARY, C_TIMESTAMP=FIELD_TIMESTAMP
            )
        ),
    )
    return module


@pytest.fixture
def native(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[NativeSession, FakeDriver]]:
    driver = FakeDriver()
    monkeypatch.setitem(sys.modules, "taos", _fake_taos(driver))
    session = NativeSession.open(parse_url("taos://u:p@td:6030/db"))
    yield session, driver
    session.close()


PLAN = [
    Batch(
        "db.r_1",
        ("s", "d", "t"),
        (Column(ColumnType.TIMESTAMP, [1, 2]), Column(ColumnType.VARCHAR, ["a", "bé"])),
    ),
    Batch("db.u_1", ("r",), (Column(ColumnType.TIMESTAMP, [9]), Column(ColumnType.BIGINT, [4]))),
]


def test_native_session_calls_taospy_as_documented(
    native: tuple[NativeSession, FakeDriver],
) -> None:
    session, driver = native
    ((call, kwargs),) = driver.log[:1]
    config = kwargs.pop("config")
    assert (call, kwargs) == ("connect", {"host": "td", "port": 6030, "user": "u", "password": "p"})
    assert Path(config, "taos.cfg").read_text() == "maxRetryWaitTime 2000\n"
    driver.rows = [(1, "a")]
    assert session.query("SELECT 1") == [(1, "a")]
    assert session.execute("DELETE FROM db.records") == 3
    assert session.insert("INSERT INTO ? ...", PLAN) == 3
    bound = [  # every subtable bound, then one execute: one submit
        ("set_tbname_tags", b"db.r_1", [("binary", "s"), ("binary", "d"), ("binary", "t")]),
        ("bind_param_batch", [("timestamp", [1, 2]), ("binary", ["a", "bé"])]),
        ("set_tbname_tags", b"db.u_1", [("binary", "r")]),
        ("bind_param_batch", [("timestamp", [9]), ("bigint", [4])]),
        ("execute",),
    ]
    assert driver.log[3:] == [("statement", "INSERT INTO ? ..."), *bound]
    assert session.insert("INSERT INTO ? ...", PLAN) == 3  # the statement prepared once
    assert driver.log[3 + 1 + len(bound) :] == bound
    session.close()
    assert driver.log[-2:] == [("stmt.close",), ("close",)]


def test_a_native_insert_past_its_budget_executes_as_it_goes(
    native: tuple[NativeSession, FakeDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    session, driver = native
    monkeypatch.setattr(connector, "EXECUTE_BUDGET_BYTES", 1)
    assert session.insert("INSERT INTO ? ...", PLAN) == 3
    assert [entry[0] for entry in driver.log[1:]] == [
        "statement",
        *("set_tbname_tags", "bind_param_batch", "execute") * 2,
    ]


def test_a_native_insert_of_two_statements_binds_both_then_sends_both_at_once(
    native: tuple[NativeSession, FakeDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    session, driver = native
    lib = session._taos.cinterface._libtaos
    execute, threads = lib.taos_stmt_execute, []

    def recorded(stmt: Any) -> int:
        threads.append(threading.current_thread().name)
        return int(execute(stmt))

    monkeypatch.setattr(lib, "taos_stmt_execute", recorded)
    assert session.insert_many([("INSERT A", PLAN), ("INSERT B", PLAN[:1])]) == [3, 2]
    assert [entry[0] for entry in driver.log[1:]] == [
        "statement",
        *("set_tbname_tags", "bind_param_batch") * 2,
        "statement",
        "set_tbname_tags",
        "bind_param_batch",
        "execute",
        "execute",
    ]
    here = threading.current_thread().name  # the first executes here, the other beside it
    assert sorted(threads) == sorted([here, "mdcache-taos-submit_0"])
    assert session.insert_many([("INSERT A", PLAN), ("INSERT B", [])]) == [3, 0]


def test_native_session_translates_errno(native: tuple[NativeSession, FakeDriver]) -> None:
    session, driver = native
    driver.fail = {
        "missing": FakeTaosError("Table does not exist", -0x7FFFD99E),  # 0x80002662
        "down": FakeTaosError("Unable to establish connection", -0x7FFFFFF5),  # 0x8000000B
        "long": FakeTaosError("Value too long for column/tag: payload", -0x7FFFD9AD),
    }
    with pytest.raises(TableMissing):
        session.query("missing")
    with pytest.raises(ConnectionLost, match="Unable to establish connection"):
        session.query("down")
    with pytest.raises(StoreError, match=r"tdengine query: \[0x2653\]: Value too long") as info:
        session.query("long")
    assert type(info.value) is StoreError


def test_native_connect_failure_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _fake_taos(FakeDriver())

    def refuse(**_kwargs: Any) -> None:
        raise FakeTaosConnectionError("Unable to establish connection", -0x7FFFFFF5)

    module.__dict__["connect"] = refuse
    monkeypatch.setitem(sys.modules, "taos", module)
    with pytest.raises(StoreUnavailable, match="tdengine connect"):
        TDengineStore.from_url("taos://localhost/db").connect()


class FakeWsError(Exception):
    pass


class FakeWsConnectionError(FakeWsError):
    pass


class FakeWsInterfaceError(Exception):
    pass


def _fake_taosws(driver: FakeDriver) -> types.ModuleType:
    module = types.ModuleType("taosws")

    class Stmt:
        def prepare(self, statement: str) -> None:
            driver.log.append(("prepare", statement))

        def set_tbname_tags(self, name: str, tags: list[Any]) -> None:
            driver.log.append(("set_tbname_tags", name, tags))

        def bind_param(self, columns: list[Any]) -> None:
            driver.log.append(("bind_param", columns))

        def add_batch(self) -> None:
            driver.log.append(("add_batch",))

        def execute(self) -> int:
            driver.log.append(("execute",))
            return 2

        def close(self) -> None:
            driver.log.append(("stmt.close",))

    class Connection:
        def execute(self, statement: str) -> int:
            driver.log.append(("execute", statement))
            if statement in driver.fail:
                raise driver.fail[statement]
            return 3

        def query(self, statement: str) -> Iterator[list[Any]]:
            driver.log.append(("query", statement))
            if statement in driver.fail:
                raise driver.fail[statement]
            return iter([list(row) for row in driver.rows])

        def statement(self) -> Stmt:
            return Stmt()

        def close(self) -> None:
            driver.log.append(("close",))

    def connect(**kwargs: Any) -> Connection:
        driver.log.append(("connect", kwargs))
        return Connection()

    module.__dict__.update(
        Error=FakeWsError,
        ConnectionError=FakeWsConnectionError,
        InterfaceError=FakeWsInterfaceError,
        connect=connect,
        varchar_to_tag=lambda v: ("tag", v),
        millis_timestamps_to_column=lambda v: ("ms", v),
        varchar_to_column=lambda v: ("varchar", v),
        big_ints_to_column=lambda v: ("bigint", v),
    )
    return module


def test_websocket_session_calls_taosws_as_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    driver = FakeDriver(rows=[(1, "a")])
    monkeypatch.setitem(sys.modules, "taosws", _fake_taosws(driver))
    session = WebSocketSession.open(parse_url("taosws://u:p@td/db?conn_retries=1"))
    assert session.query("SELECT 1") == [(1, "a")]
    assert session.execute("DELETE FROM db.records") == 3
    assert session.insert("INSERT INTO ? ...", PLAN) == 4
    session.close()
    assert driver.log == [
        (
            "connect",
            {"host": "td", "port": 6041, "user": "u", "password": "p", "conn_retries": "1"},
        ),
        ("query", "SELECT 1"),
        ("execute", "DELETE FROM db.records"),
        ("prepare", "INSERT INTO ? ..."),
        ("set_tbname_tags", "db.r_1", [("tag", "s"), ("tag", "d"), ("tag", "t")]),
        ("bind_param", [("ms", [1, 2]), ("varchar", ["a", "bé"])]),
        ("add_batch",),
        ("execute",),
        ("set_tbname_tags", "db.u_1", [("tag", "r")]),
        ("bind_param", [("ms", [9]), ("bigint", [4])]),
        ("add_batch",),
        ("execute",),
        ("stmt.close",),
        ("close",),
    ]


def test_websocket_session_translates_coded_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    driver = FakeDriver(
        fail={
            "missing": FakeWsError("[0x2662] Fail to get table info, error: Table does not exist"),
            "io": FakeWsConnectionError("[0xE001] Internal error: `WebSocket internal error`"),
            "dnodes": FakeWsError("[0x0334] Out of dnodes"),
            "bad": FakeWsInterfaceError("[0x0216] syntax error"),
        }
    )
    monkeypatch.setitem(sys.modules, "taosws", _fake_taosws(driver))
    session = WebSocketSession.open(parse_url("taosws://td/db"))
    with pytest.raises(TableMissing):
        session.query("missing")
    with pytest.raises(ConnectionLost):
        session.execute("io")
    with pytest.raises(StoreUnavailable, match="Out of dnodes") as info:
        session.execute("dnodes")
    assert type(info.value) is StoreUnavailable
    with pytest.raises(StoreError, match="syntax error"):
        session.query("bad")
