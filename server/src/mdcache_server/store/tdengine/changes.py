"""The change feed of replicas on one TDengine database: TDengine's own subscriptions (TMQ).

Every replica consumes the database's topic (``sql.create_topic``: every write to the
database, a block per table named by it) in a consumer group of its own, so each sees every
write, whichever replica made it, in the order each vnode took them: a series lives in one
subtable, one vnode, so its records come in the order their writes were acknowledged (a
record rewritten at the same timestamp comes again; so does one Write whose submit libtaos
sent twice, to a vgroup's new leader: the hub leaves the second copy out, ``live/hub.py``).
A message that starts before the vgroup's last one ended (the log sent again from an older
offset) is dropped and the consumer moved back (:meth:`TopicFeed._again`). The feed
writes nothing twice: it reads the write-ahead log the store keeps anyway. It reads the
blocks of the records' subtables (learning a subtable's series from its tags once, with
one query of the super table's tags, when it first sees it) and of the notes'
(``feed_notes``), and skips the rest. (A query topic selecting the tags would be simpler,
but on 3.2.2.2 it gives every row of a submit spanning several subtables of one vnode the
first subtable's tags.)

Notes carry what the records cannot:

- **marks**: :meth:`TopicFeed.mark` writes one row, naming this replica and a number, to a
  notes subtable in every vgroup, in one submit. A vnode's log is delivered in order, so
  once the row came back from every vgroup, every write acknowledged before the mark was
  delivered: the feed's ``reached``. (An empty poll alone says nothing of a vnode whose
  answer is still on its way.)
- **purges and evictions** (:meth:`TopicFeed.note`): the filter as JSON, so every replica
  drops the copies they touch; written to every vgroup as marks are, so each vnode gives
  it after every write it took before (a record the purge deleted never comes after
  every copy of its note: ``HeldSeries.settles``).

At :meth:`TopicFeed.start` the consumer subscribes (TDengine answers after its next
rebalance, about 1-2 s) and is moved to the end of every vnode's log, so each write
acknowledged after ``start`` returns is delivered. Closing leaves the group (about 4 s,
TDengine's own wait); a replica killed leaves its consumer to TDengine, which drops it
within about 10 s. The topic blocks ``DROP STABLE``/``DROP DATABASE`` until it is
dropped (:func:`~mdcache_server.store.tdengine.store.drop_database` does).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Sequence
from typing import Any

import structlog

from mdcache_server.errors import StoreError, StoreUnavailable
from mdcache_server.model import PurgeFilter, Record, SeriesKey
from mdcache_server.store.base import Polled, StoredChange
from mdcache_server.store.tdengine import blocks, sql
from mdcache_server.store.tdengine.connector import NativeSession
from mdcache_server.store.tdengine.naming import NOTES_PREFIX, RECORDS_PREFIX
from mdcache_server.store.tdengine.options import TDengineOptions

log = structlog.get_logger(__name__)
SERIES_KNOWN_MAX = 100_000  # subtables whose series the feed keeps named
NOTES_SLOTS_MAX = 512  # notes subtables made at most, to find one in every vgroup
TRIM_SECONDS = 60.0  # notes older than KEEP_NOTES_MS are deleted at most this often
KEEP_NOTES_MS = 600_000


def _wanted(name: str) -> bool:
    return name.startswith((RECORDS_PREFIX, NOTES_PREFIX))


class TopicFeed:
    """:class:`~mdcache_server.store.base.ChangeFeed` over a TDengine topic (``taos://``)."""

    journals = False  # the store's write-ahead log carries every write

    def __init__(self, options: TDengineOptions, group: str, replica: str) -> None:
        self._options, self._group, self._replica = options, group, replica
        self._db = options.database
        self._topic = sql.topic(options.database)
        self._consumer: Any = None
        self._lib: Any = None
        self._session: NativeSession | None = None  # to name the series of new subtables
        self._series: dict[str, SeriesKey] = {}  # subtable -> series, as learnt
        # Marks and notes: written on another thread, with a session of their own.
        self._lock = threading.Lock()
        self._writer: NativeSession | None = None
        self._slots: dict[str, int] = {}  # notes subtable -> its vgroup
        self._marked = 0  # the last mark's number
        self._seen: dict[int, int] = {}  # vgroup -> the highest of our marks it delivered
        self._reached = 0
        self._ends: dict[int, int] = {}  # vgroup -> where its last message delivered ended
        self._trimmed = time.monotonic()
        self._abandoned: list[Any] = []  # consumers left to TDengine (close's ``exiting``)

    def record(self, changes: Sequence[StoredChange]) -> None:
        raise AssertionError("TDengine's log carries the writes: nothing to record")

    def _writing(self) -> NativeSession:
        """The session of marks and notes, with a notes subtable known in every vgroup."""
        if self._writer is None:
            session = NativeSession.open(self._options)
            try:
                self._slots = _notes_slots(session, self._db)
            except BaseException:
                session.close()
                raise
            self._writer = session
        return self._writer

    def _submit(self, rows: list[tuple[str, list[str], list[tuple[int, str]]]]) -> None:
        session = self._writing()
        try:
            session.execute(sql.insert_text(self._db, sql.NOTES, rows))
            if time.monotonic() - self._trimmed > TRIM_SECONDS:
                self._trimmed = time.monotonic()
                session.execute(sql.trim_notes(self._db, _now_ms() - KEEP_NOTES_MS))
        except StoreError as exc:
            self._writer = None
            session.close()
            raise StoreUnavailable(f"tdengine change feed: {exc}") from exc

    def mark(self) -> int:
        with self._lock:
            self._marked += 1
            payload = json.dumps({"mark": self._marked, "replica": self._replica})
            at = _now_ms()
            self._submit(self._in_every_vgroup([(at, payload)]))
            return self._marked

    def note(self, forgotten: Sequence[PurgeFilter]) -> None:
        if not forgotten:
            return
        with self._lock:
            at = _now_ms()  # a timestamp each: rows of one subtable at one time would merge
            rows = [
                (at + i, json.dumps({"forget": [p.symbol, p.data_type, p.timeframe]}))
                for i, p in enumerate(forgotten)
            ]
            self._submit(self._in_every_vgroup(rows))

    def _in_every_vgroup(
        self, rows: list[tuple[int, str]]
    ) -> list[tuple[str, list[str], list[tuple[int, str]]]]:
        """The rows, into one notes subtable of each vgroup (one submit)."""
        self._writing()
        by_vgroup = {vgroup: name for name, vgroup in sorted(self._slots.items())}
        return [(name, [name[len(NOTES_PREFIX) :]], rows) for name in by_vgroup.values()]

    def start(self) -> None:
        session = NativeSession.open(self._options)  # the endpoint that answers
        try:
            session.execute(sql.create_topic(self._options.database))
            slots = _notes_slots(session, self._db)
            host, port = session.endpoint or self._options.endpoints[0]
        except BaseException:
            session.close()
            raise
        self._session = session
        self._seen = {}
        self._reached = 0
        with self._lock:
            self._slots = slots
        from taos.cinterface import _libtaos
        from taos.error import TmqError
        from taos.tmq import Consumer

        self._lib = self._lib or blocks.Lib(_libtaos)

        try:
            # A group of its own at each start: a consumer of an earlier start may still
            # be leaving its group, and would share its vnodes with this one.
            group = f"{self._group}_{secrets.token_hex(4)}"
            consumer = Consumer(
                {
                    "group.id": group,
                    "td.connect.ip": host,
                    "td.connect.port": str(port),
                    "td.connect.user": self._options.user,
                    "td.connect.pass": self._options.password,
                    "auto.offset.reset": "latest",
                    "enable.auto.commit": "false",
                    "experimental.snapshot.enable": "false",
                    "msg.with.table.name": "true",
                }
            )
        except TmqError as exc:
            raise StoreUnavailable(f"tdengine change feed: {exc}") from exc
        try:
            consumer.subscribe([self._topic])
            # "latest" is resolved by a vnode at the consumer's first poll of it, so a
            # write between the subscription and that poll would be skipped: move to
            # the end of each vnode's log now.
            from taos.cinterface import tmq_get_topic_assignment, tmq_offset_seek

            self._ends = {}
            for vgroup, _, _, end in tmq_get_topic_assignment(consumer._tmq, self._topic):
                tmq_offset_seek(consumer._tmq, self._topic, vgroup, end)
                self._ends[vgroup] = end
        except TmqError as exc:
            _close(consumer)
            raise StoreUnavailable(f"tdengine change feed: {exc}") from exc
        self._consumer = consumer
        log.info("tdengine_change_feed_started", topic=self._topic, group=group)

    def poll(self, wait: float) -> Polled:
        if self._consumer is None:
            raise StoreUnavailable("tdengine change feed: not started")
        tmq = self._consumer._tmq
        message = blocks.poll(self._lib, tmq, int(wait * 1000))
        if message is None:
            return Polled([], [], self._reached)
        if self._again(tmq, message):
            blocks.free(self._lib, message)
            return Polled([], [], self._reached)
        try:
            found = blocks.table_blocks(self._lib, message, sql.TOPIC_COLUMNS, _wanted)
        except blocks.BlockError as exc:
            raise StoreUnavailable(f"tdengine change feed: {exc}") from exc
        unknown = [
            name
            for name, _ in found
            if name.startswith(RECORDS_PREFIX) and name not in self._series
        ]
        if unknown:
            self._learn(list(dict.fromkeys(unknown)))
        changes: list[StoredChange] = []
        forgotten: list[PurgeFilter] = []
        for name, (stamps, payloads) in found:
            if name.startswith(NOTES_PREFIX):
                self._noted(name, payloads, forgotten)
                continue
            key = self._series.get(name)
            if key is None:  # dropped since it was written: nobody can follow it now
                continue
            changes += ((key, record) for record in map(Record, stamps, payloads))
        return Polled(changes, forgotten, self._reached)

    def _again(self, tmq: int, message: int) -> bool:
        """Whether ``message`` starts before where the vgroup's last message ended: a
        part of the log delivered already, sent again. Seen on a REPLICA 3 database after
        a killed node came back and the vgroup's leader moved (about 12 s later; issue 26,
        fault 4): libtaos polled the new leader from an older offset. The consumer is moved
        back to where it was, and the message is dropped: it may also hold writes not
        delivered yet, which the next poll from that offset brings."""
        topic = self._topic.encode()
        vgroup, first, after = blocks.span(self._lib, tmq, topic, message)
        end = self._ends.get(vgroup)
        if end is not None and first < end:
            code = blocks.seek(self._lib, tmq, topic, vgroup, end)
            log.warning(
                "tdengine_change_feed_redelivered",
                vgroup=vgroup,
                first=first,
                after=after,
                end=end,
                seek=code,
            )
            return True
        self._ends[vgroup] = after
        return False

    def _noted(self, name: str, payloads: list[str], forgotten: list[PurgeFilter]) -> None:
        for payload in payloads:
            try:
                note = json.loads(payload)
            except ValueError:
                continue
            if "forget" in note:
                symbol, data_type, timeframe = note["forget"]
                forgotten.append(PurgeFilter(0, symbol, data_type, timeframe))
            elif note.get("replica") == self._replica:
                vgroup = self._slots.get(name)
                if vgroup is not None:
                    self._seen[vgroup] = max(self._seen.get(vgroup, 0), int(note["mark"]))
        vgroups = set(self._slots.values())
        if vgroups and vgroups <= self._seen.keys():
            self._reached = min(self._seen[v] for v in vgroups)

    def _learn(self, names: list[str]) -> None:
        """The series of subtables not seen before (one query; at most once each)."""
        assert self._session is not None
        try:
            rows = self._session.query(sql.series_of_tables(self._options.database, names))
        except StoreError as exc:  # the relay ends its streams UNAVAILABLE; clients replay
            raise StoreUnavailable(f"tdengine change feed: {exc}") from exc
        if len(self._series) + len(rows) > SERIES_KNOWN_MAX:
            self._series.clear()  # learnt again as they come
        for name, symbol, data_type, timeframe in rows:
            self._series[str(name)] = SeriesKey(str(symbol), str(data_type), str(timeframe))

    def close(self, *, exiting: bool = False) -> None:
        """``exiting``: the consumer is not closed but left to TDengine, which drops one
        whose process is gone within about 10 s (libtaos 3.2.2.2 can free twice in
        ``tmq_consumer_close``, TD-30323: seen as a SIGABRT at SIGTERM)."""
        session, self._session = self._session, None
        if session is not None:
            session.close()
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        consumer, self._consumer = self._consumer, None
        if consumer is not None and not exiting:
            # Leaving the group takes TDengine about 4 s: not on the caller's time.
            threading.Thread(target=_close, args=(consumer,), daemon=True).start()
        elif consumer is not None:
            self._abandoned.append(consumer)


def _close(consumer: Any) -> None:
    try:
        consumer.close()
    except Exception as exc:  # noqa: BLE001  (never raises; TDengine drops a lost consumer)
        log.warning("tdengine_change_feed_close_failed", error=str(exc))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _notes_slots(session: NativeSession, db: str) -> dict[str, int]:
    """Every notes subtable and its vgroup, made until each vgroup has one (TDengine
    places a table by a hash of its name)."""
    vgroups = {int(row[0]) for row in session.query(sql.vgroups(db))}
    slots: dict[str, int] = {}
    made = 0
    while True:
        slots = {
            str(name): int(vgroup)
            for name, vgroup in session.query(sql.notes_tables(db))
            if str(name).startswith(NOTES_PREFIX)
        }
        if vgroups <= set(slots.values()):
            return slots
        if made >= NOTES_SLOTS_MAX:
            raise StoreError(f"tdengine change feed: no notes subtable in vgroups {vgroups}")
        batch = max(len(vgroups), 4)
        session.execute(sql.create_notes_tables(db, range(made, made + batch)))
        made += batch
