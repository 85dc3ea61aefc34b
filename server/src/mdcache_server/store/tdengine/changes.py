"""The change feed of replicas on one TDengine database: TDengine's own subscriptions (TMQ).

Every replica consumes the database's topic (``sql.create_topic``: the records super
table's writes, a block per subtable named by it; the feed learns a subtable's series from
its tags once, with one query, when it first sees it) in a consumer group of its own, so
each sees every write,
whichever replica made it, in the order each vnode took them: a series lives in one
subtable, one vnode, so its records come in the order their writes were acknowledged
(a record rewritten at the same timestamp comes again). Nothing is written twice: the
feed reads the write-ahead log the store keeps anyway. (A query topic selecting the tags
would be simpler, but on 3.2.2.2 it gives every row of a submit spanning several
subtables of one vnode the first subtable's tags.)

At :meth:`TopicFeed.start` the consumer subscribes (TDengine answers after its next
rebalance, about 1-2 s) and is moved to the end of every vnode's log, so each write
acknowledged after ``start`` returns is delivered. Closing leaves the group (about 4 s,
TDengine's own wait); a replica killed leaves its consumer to TDengine, which drops it
within about 10 s. The topic blocks ``DROP STABLE``/``DROP DATABASE`` until it is
dropped (:func:`~mdcache_server.store.tdengine.store.drop_database` does).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence
from typing import Any

import structlog

from mdcache_server.errors import StoreUnavailable
from mdcache_server.model import Record, SeriesKey
from mdcache_server.store.base import StoredChange
from mdcache_server.store.tdengine import blocks, sql
from mdcache_server.store.tdengine.connector import NativeSession
from mdcache_server.store.tdengine.options import TDengineOptions

log = structlog.get_logger(__name__)
SERIES_KNOWN_MAX = 100_000  # subtables whose series the feed keeps named


class TopicFeed:
    """:class:`~mdcache_server.store.base.ChangeFeed` over a TDengine topic (``taos://``)."""

    journals = False  # the store's write-ahead log carries every write

    def __init__(self, options: TDengineOptions, group: str) -> None:
        self._options, self._group = options, group
        self._topic = sql.topic(options.database)
        self._consumer: Any = None
        self._lib: Any = None
        self._session: NativeSession | None = None  # to name the series of new subtables
        self._series: dict[str, SeriesKey] = {}  # subtable -> series, as learnt

    def record(self, changes: Sequence[StoredChange]) -> None:
        raise AssertionError("TDengine's log carries the writes: nothing to record")

    def start(self) -> None:
        session = NativeSession.open(self._options)  # the endpoint that answers
        try:
            session.execute(sql.create_topic(self._options.database))
            host, port = session.endpoint or self._options.endpoints[0]
        except BaseException:
            session.close()
            raise
        self._session = session
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

            for vgroup, _, _, end in tmq_get_topic_assignment(consumer._tmq, self._topic):
                tmq_offset_seek(consumer._tmq, self._topic, vgroup, end)
        except TmqError as exc:
            _close(consumer)
            raise StoreUnavailable(f"tdengine change feed: {exc}") from exc
        self._consumer = consumer
        log.info("tdengine_change_feed_started", topic=self._topic, group=group)

    def poll(self, wait: float) -> list[StoredChange]:
        if self._consumer is None:
            raise StoreUnavailable("tdengine change feed: not started")
        message = blocks.poll(self._lib, self._consumer._tmq, int(wait * 1000))
        if message is None:
            return []
        try:
            found = blocks.table_blocks(self._lib, message, sql.TOPIC_COLUMNS)
        except blocks.BlockError as exc:
            raise StoreUnavailable(f"tdengine change feed: {exc}") from exc
        unknown = [name for name, _ in found if name not in self._series]
        if unknown:
            self._learn(list(dict.fromkeys(unknown)))
        changes: list[StoredChange] = []
        for name, (stamps, payloads) in found:
            key = self._series.get(name)
            if key is None:  # dropped since it was written: nobody can follow it now
                continue
            changes += ((key, record) for record in map(Record, stamps, payloads))
        return changes

    def _learn(self, names: list[str]) -> None:
        """The series of subtables not seen before (one query; at most once each)."""
        assert self._session is not None
        tags: dict[str, dict[str, str]] = {}
        for name, tag, value in self._session.query(
            sql.series_of_tables(self._options.database, names)
        ):
            tags.setdefault(str(name), {})[str(tag)] = str(value)
        if len(self._series) + len(tags) > SERIES_KNOWN_MAX:
            self._series.clear()  # learnt again as they come
        for name, found in tags.items():
            self._series[name] = SeriesKey(found["symbol"], found["data_type"], found["timeframe"])

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            # Leaving the group takes TDengine about 4 s: not on the caller's time.
            threading.Thread(target=_close, args=(consumer,), daemon=True).start()


def _close(consumer: Any) -> None:
    try:
        consumer.close()
    except Exception as exc:  # noqa: BLE001  (never raises; TDengine drops a lost consumer)
        log.warning("tdengine_change_feed_close_failed", error=str(exc))
