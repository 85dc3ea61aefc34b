"""Subscribe: each record of the followed series as it is written, across reconnects.

The server numbers the changes it pushes (``seq``, in one server process, with the
process's ``stream`` id). After UNAVAILABLE the iterator subscribes again with
``resume_stream``/``resume_after`` = the last change received: the server continues right
after it, with nothing lost and nothing twice, while it still holds it. When it does not
(FAILED_PRECONDITION: the server restarted, or the subscriber was away past its recent
changes) and series were named, the iterator replays from the store from the oldest
timestamp last received, and leaves out what it already gave (the same series,
timestamp and payload; a record older than the newest given of its series): no
acknowledged record is lost, and none is given twice unless it was rewritten.

What both flavours share is here; :class:`~mdcache_client._live_aio.AsyncSubscription`
follows, and its blocking twin is generated from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from mdcache.v1 import cache_pb2 as pb
from mdcache_client._types import Record, Series

RETRY = (grpc.StatusCode.UNAVAILABLE,)
BACKOFF = (0.1, 2.0)


@dataclass(frozen=True, slots=True)
class StreamedRecord:
    """A record of a followed series as a subscription gives it: as written, or
    (``replayed``) read from the store before the live part. ``seq`` numbers the
    server's live changes (0 for a replayed record).

    Formerly ``Change`` (the server has changes of its own): ``mdcache_client.Change``
    remains, a deprecated alias of this class.
    """

    series: Series
    record: Record
    seq: int
    replayed: bool


class _Resume:
    """Where a subscription is, and the request that continues it."""

    def __init__(self, series: Sequence[Series], symbol: str, since_ms: int | None) -> None:
        self.series, self.symbol, self.since_ms = list(series), symbol, since_ms
        self.stream, self.seq = "", 0
        self.newest: dict[Series, tuple[int, str]] = {}  # per series: last ts and payload
        self.replaying = False

    def request(self) -> pb.SubscribeRequest:
        keys = [pb.SeriesKey(symbol=s[0], data_type=s[1], timeframe=s[2]) for s in self.series]
        if self.stream and self.seq:
            return pb.SubscribeRequest(
                series=keys, symbol=self.symbol, resume_stream=self.stream, resume_after=self.seq
            )
        since = self.since_ms
        if self.newest and self.series:
            since = min(ts for ts, _ in self.newest.values())
        self.replaying = since is not None
        return pb.SubscribeRequest(series=keys, symbol=self.symbol, since_ms=since)

    def lost(self) -> None:
        """The server cannot resume: replay from the store instead."""
        self.stream, self.seq = "", 0

    def take(self, message: pb.SubscribeResponse) -> StreamedRecord | None:
        """The message as a StreamedRecord, or None when it was given already."""
        series = Series(message.series.symbol, message.series.data_type, message.series.timeframe)
        record = Record(message.record.ts_ms, message.record.payload)
        ts = message.record.ts_ms
        last = self.newest.get(series)
        given = last is not None and (ts < last[0] or (ts, record.payload) == last)
        if message.replayed and given:
            return None
        if message.seq:
            self.stream, self.seq = message.stream, message.seq
        self.newest[series] = (ts, record.payload)
        return StreamedRecord(series, record, message.seq, message.replayed)


def _giving_up(exc: grpc.RpcError, state: _Resume) -> bool:
    code = exc.code()
    if code is grpc.StatusCode.FAILED_PRECONDITION and state.stream and state.series:
        state.lost()
        return False
    return code not in RETRY


class _Following:
    """What both subscriptions share: where they are, and the call that follows."""

    def __init__(
        self,
        stub: Any,
        metadata: Sequence[tuple[str, str]] | None,
        series: Iterable[Series],
        symbol: str,
        since_ms: int | None,
    ) -> None:
        self._stub, self._metadata = stub, metadata
        self.state = _Resume(list(series), symbol, since_ms)
        self._call: Any = None
        self._closed = False

    def close(self) -> None:
        """Ends the subscription, from any thread: the server frees its stream at once."""
        self._closed = True
        if self._call is not None:
            self._call.cancel()

    def _subscribe(self) -> Any:
        """A new Subscribe call, continuing where the subscription is."""
        self._call = self._stub.Subscribe(self.state.request(), metadata=self._metadata)
        return self._call
