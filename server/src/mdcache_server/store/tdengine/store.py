"""The TDengine store: one super table of records, one subtable per series.

A series lives in subtable ``db.r_<hash>`` of super table ``db.records`` (tags
symbol, data_type, timeframe), created by the first write to it. Writes bind
their rows through TDengine's statement API; a row with a timestamp already
stored replaces it, as an upsert does in the embedded store. Usage counters
live in two more super tables, one row per subtable at a fixed timestamp, so a
save overwrites what it saves and leaves the rest.

The store answers every call as the SQLite store does: a series never written
is a miss; purges and drops return TDengine's own count of deleted rows; counts
and listings cover series that hold records.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import structlog

from mdcache_server.barnumbers import BarNumbers, Counted
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
from mdcache_server.store.base import Chooser, Eviction, Unclaimed
from mdcache_server.store.tdengine import sql
from mdcache_server.store.tdengine.batches import (
    bar_rows,
    bars_batches,
    by_time,
    checks,
    evictions_batch,
    record_batches,
    replica_batch,
    series_usage_batches,
    totals_batch,
)
from mdcache_server.store.tdengine.changes import TopicFeed
from mdcache_server.store.tdengine.connector import Session, open_session
from mdcache_server.store.tdengine.failures import ConnectionLost, TableMissing, Unreachable
from mdcache_server.store.tdengine.naming import (
    bars_table,
    evictions_table,
    is_identifier,
    series_table,
    totals_table,
)
from mdcache_server.store.tdengine.options import NATIVE, TDengineOptions, parse_url

T = TypeVar("T")
TOPIC_SUBSCRIBED = "0x03eb"  # DROP TOPIC while a consumer follows it
TOPIC_FIRST = "0x03ed"  # DROP DATABASE with a topic on it (one made since the drops began)
BAR_TEXT_CHARS = 112  # a row of bars' numbers in an INSERT text, at most (about)
Opener = Callable[[TDengineOptions], Session]
log = structlog.get_logger(__name__)


def _last_wins(
    batches: Sequence[tuple[SeriesKey, Sequence[Record]]],
) -> list[tuple[SeriesKey, list[Record]]]:
    """The non-empty batches, one per series: a series given twice (a group commit of two
    Writes) keeps, per timestamp, the record given last, as two submits in order would.
    Each as a list: a Write's records are columns made into ``Record`` values each time
    they are iterated (``wire/codec.py``), and a write goes over them four times."""
    kept = [(key, list(records)) for key, records in batches if records]
    if len({key for key, _ in kept}) == len(kept):
        return kept
    by_key: dict[SeriesKey, dict[int, Record]] = {}
    for key, records in kept:
        held = by_key.setdefault(key, {})
        for record in records:
            held[record.ts_ms] = record
    return [(key, list(held.values())) for key, held in by_key.items()]


def _live_series(rows: list[tuple[Any, ...]]) -> list[tuple[str, str, str, str, int]]:
    """``series_counts`` rows typed, keeping subtables that hold records."""
    typed = [(str(t), str(s), str(d), str(f), int(n)) for t, s, d, f, n in rows]
    return [row for row in typed if row[4] > 0]


class TDengineStore:
    """TDengine 3.x through taospy (``taos://``) or taos-ws-py (``taosws://``).

    >>> store = TDengineStore.from_url("taosws://root:taosdata@localhost:6041/market")
    >>> store.name
    'tdengine'
    """

    name = "tdengine"
    default_workers = 8  # its calls wait on the network
    shared = True  # any server may write to the database
    atomic_evictions = False  # no transactions: one replica at a time (cache/capacity.py)

    def __init__(self, options: TDengineOptions, *, opener: Opener = open_session) -> None:
        self.options = options
        self._opener = opener
        self._last_endpoint: tuple[str, int] | None = None

    @classmethod
    def from_url(cls, url: str) -> TDengineStore:
        """``taos://user:password@host:6030/db`` or ``taosws://user:password@host:6041/db``."""
        return cls(parse_url(url))

    def connect(self) -> TDengineConnection:
        return TDengineConnection(self.options, self._open)

    def change_feed(self, replica: str) -> TopicFeed | None:
        """TDengine's subscriptions (``changes.py``), in a consumer group of this process
        (``replica``: hex, unique to it); None on WebSocket (not built: see README)."""
        if self.options.scheme != NATIVE:
            return None
        return TopicFeed(self.options, f"mdcache_{replica}", replica)

    def claim(self, *, alone: bool) -> Unclaimed:
        """Nothing to hold: servers on other machines cannot be seen from here, and each
        follows the database's feed unless told otherwise (``--subscribe-relay off``)."""
        return Unclaimed()

    def _open(self, options: TDengineOptions) -> Session:
        """A session, trying first the endpoint that answered last: while the first node
        of the URL is down, every reconnect would otherwise wait for it first."""
        last = self._last_endpoint
        if last is not None and last in options.endpoints and last != options.endpoints[0]:
            rest = tuple(e for e in options.endpoints if e != last)
            options = dataclasses.replace(options, endpoints=(last, *rest))
        session = self._opener(options)
        self._last_endpoint = getattr(session, "endpoint", None) or self._last_endpoint
        return session


class TDengineConnection:
    """One TDengine connection, used by one worker thread at a time."""

    def __init__(self, options: TDengineOptions, opener: Opener) -> None:
        self._options = options
        self._db = options.database
        self._opener = opener
        self._session: Session | None = opener(options)

    def _call(self, action: str, fn: Callable[[Session], T], *, idempotent: bool) -> T:
        """Runs ``fn``; on a broken connection reconnects, and retries once if idempotent."""
        if self._session is None:
            self._session = self._opener(self._options)
        try:
            return fn(self._session)
        except ConnectionLost as exc:
            self.close()
            if not idempotent or isinstance(exc, Unreachable):
                raise
            log.warning("tdengine_reconnect", action=action, error=str(exc))
            self._session = self._opener(self._options)
            return fn(self._session)

    def ensure_schema(self) -> None:
        options = self._options

        def run(session: Session) -> str:
            session.execute(
                sql.create_database(
                    self._db,
                    keep_days=options.keep_days,
                    duration_days=options.duration_days,
                    wal_level=options.wal_level,
                    replica=options.replica,
                    vgroups=options.vgroups,
                )
            )
            rows = session.query(sql.database_precision(self._db))
            precision = str(rows[0][0]) if rows else ""
            if precision == "ms":
                for statement in sql.create_tables(self._db):
                    session.execute(statement)
                self._add_checks(session)
            return precision

        precision = self._call("schema", run, idempotent=True)
        if precision != "ms":
            raise ConfigError(
                f"tdengine database {self._db} has precision {precision or 'unknown'!r}; "
                "the store needs 'ms': name another database in the store URL"
            )
        self._check_options()
        log.info(
            "tdengine_schema_ready",
            store=options.address,
            keep_days=options.keep_days,
            duration_days=options.duration_days,
            wal_level=options.wal_level,
        )

    def _add_checks(self, session: Session) -> None:
        """``chk`` added to the super tables of a database an earlier version made
        (``sql.CHECK``). Replicas starting together may race to add it: one that finds it
        added meanwhile goes on."""
        for stable in sql.CHECKED:
            if self._has_check(session, stable):
                continue
            try:
                session.execute(sql.add_check(self._db, stable))
            except StoreError:
                if not self._has_check(session, stable):
                    raise
                continue  # another replica added it
            log.info("tdengine_column_added", table=stable, column="chk")

    def _has_check(self, session: Session, stable: str) -> bool:
        return any(str(row[0]) == "chk" for row in session.query(sql.describe(self._db, stable)))

    def _check_options(self) -> None:
        """The database's options against the URL's: fewer replicas than asked is an error
        (fewer copies of every acknowledged write than the operator asked for); any other
        difference is logged (``IF NOT EXISTS`` keeps an existing database as it is)."""
        options = self._options
        rows = self._call(
            "schema", lambda session: session.query(sql.database_options(self._db)), idempotent=True
        )
        if not rows:
            return
        replica, vgroups, keep, duration, wal_level, fsync = rows[0]
        if options.replica is not None and int(replica) < options.replica:
            raise ConfigError(
                f"tdengine database {self._db} has REPLICA {replica}; the store URL asks for "
                f"{options.replica}: ALTER DATABASE {self._db} REPLICA {options.replica}, or "
                "name another database"
            )
        asked = {
            "replica": (options.replica, int(replica)),
            "vgroups": (options.vgroups, int(vgroups)),
            "keep_days": (options.keep_days, sql.days(keep)),
            "duration_days": (options.duration_days, sql.days(duration)),
            "wal_level": (options.wal_level, int(wal_level)),
            "wal_fsync_period": (0 if options.wal_level == 2 else None, int(fsync)),
        }
        differ = {k: {"url": a, "database": d} for k, (a, d) in asked.items() if a not in (None, d)}
        if differ:
            log.warning(
                "tdengine_database_options_differ",
                database=self._db,
                differ=differ,
                hint="the database existed with these options; ALTER DATABASE to change them",
            )

    def server_version(self) -> str:
        rows = self._call(
            "probe", lambda session: session.query(sql.server_version()), idempotent=True
        )
        return str(rows[0][0])

    def probe(self) -> None:
        """A query the server itself must answer (``sql.probe``)."""
        self._call("probe", lambda session: session.query(sql.probe()), idempotent=True)

    def write(self, batches: Sequence[tuple[SeriesKey, Sequence[Record]]]) -> int:
        """One execute for every series of the call (a group commit's too): a multi-table
        INSERT text when it is small (``sql.TEXT_INSERT_MAX_CHARS``), records and their
        bars' numbers together; else every subtable bound to the prepared INSERT of the
        records and the numbers to that of the bars, both sent at once (two submits: a
        prepared INSERT binds one super table, and the numbers cannot join the records'
        rows, ``sql.BARS``)."""
        given = sum(len(records) for _, records in batches)
        merged = _last_wins(batches)
        if not merged:
            return given
        db = self._db
        size = sum(len(r.payload) + 24 + BAR_TEXT_CHARS for _, rs in merged for r in rs)
        if size <= sql.TEXT_INSERT_MAX_CHARS:
            made = sql.BAR_ROW.__mod__
            rows: list[tuple[str, SeriesKey, list[tuple[int, str, int]]]] = []
            numbers: list[tuple[str, SeriesKey, list[str]]] = []
            for key, records in merged:
                checked = checks(records)  # once, for both rows of each record
                stored = [(r.ts_ms, r.payload, c) for r, c in zip(records, checked, strict=True)]
                rows.append((series_table(key), key, stored))
                numbers.append((bars_table(key), key, list(map(made, bar_rows(records, checked)))))
            text = sql.insert_text(db, sql.RECORDS, rows, before=[(sql.BARS, numbers)])
            affected = self._call("write", lambda session: session.execute(text), idempotent=True)
        else:
            # Bound and sent side by side: a reader finds the records' timestamps and the
            # numbers' apart until both are taken (it compares them, ``_bars``).
            ordered = [(key, by_time(records)) for key, records in merged]
            checked_all = [checks(records) for _, records in ordered]  # once, for both
            inserts = [
                (sql.insert_records(db), record_batches(db, ordered, checked_all)),
                (sql.insert_bars(db), bars_batches(db, ordered, checked_all)),
            ]
            affected = self._call(
                "write", lambda session: session.insert_many(inserts)[0], idempotent=True
            )
        log.debug("tdengine_write", records=given, affected=affected, subtables=len(merged))
        return given

    def evict(self, max_records: int, choose: Chooser) -> Eviction:
        """Not atomic: ``cache/capacity.py`` lets one replica at a time call it."""
        listed = self.list_series()
        chosen = choose(listed, self.load_usage(), max_records)
        return Eviction(listed, chosen, self.drop_series(chosen) if chosen else 0)

    def heartbeat(self, replica: str, first_ms: int, now_ms: int) -> dict[str, tuple[int, int]]:
        if len(replica.encode()) > sql.REPLICA_BYTES:
            raise StoreError(f"tdengine heartbeat: replica name over {sql.REPLICA_BYTES} bytes")
        batch = replica_batch(self._db, replica, first_ms, now_ms)

        def run(session: Session) -> list[tuple[Any, ...]]:
            session.insert(sql.insert_replica(self._db), [batch])
            return session.query(sql.load_replicas(self._db))

        rows = self._call("heartbeat", run, idempotent=True)
        return {str(r): (int(first), int(seen)) for r, first, seen in rows}

    def read(self, series: Sequence[SeriesKey], window: Window) -> list[SeriesRead]:
        bounds = sql.time_bounds(window.start_ms, window.end_ms)
        if bounds is None:
            return [SeriesRead([], truncated=False) for _ in series]
        limit = window.limit
        queries = [
            sql.read(
                self._db,
                series_table(key),
                *bounds,
                newest_first=window.newest_first,
                fetch=limit + 1 if limit > 0 else 0,
            )
            for key in series
        ]

        def run(session: Session) -> list[SeriesRead]:
            results = []
            for query in queries:
                try:
                    stamps, payloads = session.query_columns(query, sql.READ_COLUMNS)
                except TableMissing:
                    results.append(SeriesRead([], truncated=False))
                    continue
                truncated = 0 < limit < len(stamps)
                records = list(map(Record, stamps, payloads))
                results.append(SeriesRead(records[:limit] if truncated else records, truncated))
            return results

        return self._call("read", run, idempotent=True)

    def read_answer(self, series: Sequence[SeriesKey], window: Window) -> list[SeriesRead]:
        """As :meth:`read`: the service encodes what TDengine returns. With ``window.bars``,
        a series whose records all keep their numbers alike is answered with them."""
        if not window.bars:
            return self.read(series, window)
        bounds = sql.time_bounds(window.start_ms, window.end_ms)
        if bounds is None:
            return [SeriesRead([], truncated=False) for _ in series]
        found = self._call(
            "read",
            lambda session: [self._bars(session, k, bounds, window) for k in series],
            idempotent=True,
        )
        rest = [key for key, read in zip(series, found, strict=True) if read is None]
        reads = iter(self.read(rest, window) if rest else [])
        return [read if read is not None else next(reads) for read in found]

    def _bars(
        self,
        session: Session,
        key: SeriesKey,
        bounds: tuple[int | None, int | None],
        window: Window,
    ) -> SeriesRead | None:
        """A window's bars' numbers, when its records (their timestamps and checks, read
        alone) all have them, written with the same payloads; else None."""
        limit = window.limit
        fetch = limit + 1 if limit > 0 else 0
        newest_first, db = window.newest_first, self._db
        try:
            stamps, record_checks = session.query_columns(
                sql.read(
                    db,
                    series_table(key),
                    *bounds,
                    newest_first=newest_first,
                    fetch=fetch,
                    columns=sql.CHECK,
                ),
                sql.CHECK_COLUMNS,
            )
        except TableMissing:
            return SeriesRead([], truncated=False)
        if not stamps:
            return SeriesRead([], truncated=False)
        try:
            ts, shapes, *columns, numbers_checks = session.query_columns(
                sql.read(
                    db,
                    bars_table(key),
                    *bounds,
                    newest_first=newest_first,
                    fetch=fetch,
                    columns=sql.BAR_COLUMNS,
                ),
                sql.BARS_COLUMNS,
            )
        except TableMissing:  # a series written before numbers were kept
            return None
        if ts != stamps or 0 in shapes or numbers_checks != record_checks:
            return None  # not every record's numbers, or another Write's (sql.CHECK)
        truncated = 0 < limit < len(ts)
        if truncated:
            ts, shapes, columns = ts[:limit], shapes[:limit], [c[:limit] for c in columns]
        bars = BarNumbers(ts, shapes, columns)
        if not bars.uniform():
            return None
        return SeriesRead(Counted[Record](len(ts)), truncated, bars=bars)

    def _delete(self, session: Session, statement: str) -> int:
        try:
            return session.execute(statement)
        except TableMissing:
            return 0

    def purge(self, purge: PurgeFilter) -> int:
        if purge.before_ms <= sql.MIN_TS_MS:
            return 0  # no record is older
        before = min(purge.before_ms, sql.MAX_TS_MS + 1)
        if purge.symbol is None and purge.data_type is None and purge.timeframe is None:
            statement = sql.purge_all(self._db, before)
            deleted = self._call(
                "purge", lambda session: session.execute(statement), idempotent=False
            )
            numbers = sql.purge_all(self._db, before, sql.BARS)  # after: none left without
            self._call("purge", lambda session: session.execute(numbers), idempotent=True)
            return deleted

        def run(session: Session) -> int:
            # DELETE filters on ts only: find the subtables that match and hold older rows,
            # comparing tags here so that no tag value is ever written into SQL.
            rows = _live_series(session.query(sql.series_counts(self._db, before)))
            matched = [(t, SeriesKey(sym, dt, tf)) for t, sym, dt, tf, _ in rows]
            matched = [(t, key) for t, key in matched if purge.matches(key)]
            targets = [t for t, _ in matched]
            for table in targets:
                if not is_identifier(table):
                    raise StoreError(f"tdengine purge: unexpected subtable name {table!r}")
            deleted = sum(
                self._delete(session, sql.purge_subtable(self._db, table, before))
                for table in targets
            )
            for _, key in matched:  # their numbers, after them (none left without)
                self._delete(session, sql.purge_subtable(self._db, bars_table(key), before))
            log.debug("tdengine_purge", subtables=len(targets), deleted=deleted)
            return deleted

        return self._call("purge", run, idempotent=False)

    def _series_counts(self, action: str) -> list[tuple[str, str, str, str, int]]:
        rows = self._call(
            action, lambda session: session.query(sql.series_counts(self._db)), idempotent=True
        )
        return _live_series(rows)

    def counts(self) -> StoreCounts:
        rows = self._series_counts("count")
        return StoreCounts(
            records=sum(n for *_, n in rows),
            series=len(rows),
            symbols=len({symbol for _, symbol, _, _, _ in rows}),
        )

    def list_series(self) -> list[tuple[SeriesKey, int]]:
        rows = self._series_counts("list series")
        return sorted((SeriesKey(sym, dt, tf), n) for _, sym, dt, tf, n in rows)

    def drop_series(self, series: Sequence[SeriesKey]) -> int:
        statements = [sql.delete_subtable(self._db, series_table(key)) for key in series]
        numbers = [sql.delete_subtable(self._db, bars_table(key)) for key in series]

        def run(session: Session) -> int:
            dropped = sum(self._delete(session, statement) for statement in statements)
            for statement in numbers:  # after the records: none left without
                self._delete(session, statement)
            return dropped

        return self._call("drop series", run, idempotent=False)

    def save_usage(self, usage: Usage) -> None:
        if len(usage.replica.encode()) > sql.REPLICA_BYTES:
            raise StoreError(f"tdengine save usage: replica name over {sql.REPLICA_BYTES} bytes")
        totals = totals_batch(self._db, usage)
        per_series = series_usage_batches(self._db, usage)
        evictions = evictions_batch(self._db, usage)

        def run(session: Session) -> None:
            if per_series:
                session.insert(sql.insert_series_usage(self._db), per_series)
            session.insert(sql.insert_evictions(self._db), [evictions])
            # The totals last: load_usage reads them first, so a replica that finds these
            # totals finds the rows saved with them (TDengine has no transactions).
            session.insert(sql.insert_totals(self._db), [totals])

        # Not atomic, but absolute values: a retry repairs it.
        self._call("save usage", run, idempotent=True)

    def load_usage(self) -> list[Usage]:
        def run(session: Session) -> tuple[list[tuple[Any, ...]], ...]:
            return (
                session.query(sql.load_totals(self._db)),
                session.query(sql.load_series_usage(self._db)),
                session.query(sql.load_evictions(self._db)),
            )

        totals, series_rows, eviction_rows = self._call("load usage", run, idempotent=True)
        by_replica: dict[str, dict[SeriesKey, SeriesUsage]] = {str(r[0]): {} for r in totals}
        for replica, sym, dt, tf, reads, last in series_rows:
            key = SeriesKey(str(sym), str(dt), str(tf))
            by_replica.setdefault(str(replica), {})[key] = SeriesUsage(int(reads), int(last))
        evicted = {str(r): (int(n), int(records)) for r, n, records in eviction_rows}
        return [
            Usage(
                str(replica),
                int(since),
                int(hits),
                int(misses),
                by_replica[str(replica)],
                *evicted.get(str(replica), (0, 0)),
            )
            for replica, since, hits, misses in sorted(totals, key=lambda row: str(row[0]))
        ]

    def reset_usage(self, replica: str | None = None) -> None:
        def forget_all(session: Session) -> None:
            for statement in sql.reset_usage(self._db):
                session.execute(statement)

        def forget_replica(session: Session) -> None:
            # A replica's series counters are one subtable per series: find them by the
            # replica tag here, so that the replica's name is never written into SQL.
            rows = session.query(sql.series_usage_tables(self._db))
            tables = [str(t) for t, r in rows if r == replica]
            tables += [totals_table(str(replica)), evictions_table(str(replica))]
            for table in tables:
                if not is_identifier(table):
                    raise StoreError(f"tdengine reset usage: unexpected subtable name {table!r}")
                self._delete(session, sql.delete_subtable(self._db, table))

        self._call(
            "reset usage", forget_all if replica is None else forget_replica, idempotent=True
        )

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def _drop(url: str, statements: Callable[[str], list[str]], wait: float) -> None:
    """Runs the drops, retrying for up to ``wait`` seconds a topic still followed (its
    consumers leave in about 4 s, or are dropped as lost in about 10 s) and a server busy
    with another schema change; 10 s for the latter even with ``wait`` 0."""
    options = parse_url(url)
    session = open_session(options)
    try:
        for statement in statements(options.database):
            _execute_drop(session, statement, options.database, wait)
    finally:
        session.close()


def _execute_drop(session: Session, statement: str, db: str, wait: float) -> None:
    deadline = time.monotonic() + wait
    busy_until = time.monotonic() + max(wait, 10.0)
    while True:
        try:
            session.execute(statement)
            return
        except StoreUnavailable:  # "Conflict transaction not completed", and the like
            if time.monotonic() >= busy_until:
                raise
        except StoreError as exc:
            if TOPIC_FIRST in str(exc) and time.monotonic() < busy_until:
                # A feed starting as its server stopped made its topic again.
                for name in session.query(sql.topics_of(db)):
                    _execute_drop(session, sql.drop_topic_named(str(name[0])), db, wait)
                continue
            if TOPIC_SUBSCRIBED not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(0.5)


def drop_topic(url: str, *, wait: float = 30.0) -> None:
    """Drops the database's topic if it exists (``changes.py``)."""
    _drop(url, sql.drop_topic, wait)


def drop_database(url: str, *, wait: float = 30.0) -> None:
    """Drops the URL's database if it exists (test teardown), its topic first."""
    _drop(url, lambda db: [*sql.drop_topic(db), sql.drop_database(db)], wait)
