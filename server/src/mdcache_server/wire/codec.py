"""Records in the contract's wire format.

A record in an answer is one ``SeriesResult.records`` field of ``mdcache.v1``: tag,
length, then the ``Record`` (``ts_ms`` as field 1, ``payload`` as field 2). The embedded
store keeps each record as that field, made once when it is written (from the bytes the
Write brought, see ``service/validation.py``), so that a window's answer is the
concatenation of its fields, made by SQLite in one step and sent as it is, with no
message built per record. The tags and varints are ``encoding``'s.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

from mdcache_server.model import Record
from mdcache_server.wire.encoding import PAYLOAD, RECORDS, TAG_BYTES, TS, length, varint

_RECORDS_TAG = RECORDS[0]


def field(record: bytes) -> bytes:
    """A serialized ``Record`` as a ``SeriesResult.records`` field."""
    return RECORDS + length(len(record)) + record


def encode(ts_ms: int, payload: str) -> bytes:
    """One record as a ``SeriesResult.records`` field."""
    text = payload.encode()
    if not text:  # proto3 writes no empty string (a payload is JSON: never empty)
        return field(TS + varint(ts_ms))
    return field(TS + varint(ts_ms) + PAYLOAD + length(len(text)) + text)


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        byte = data[i]
        i += 1
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            return n, i
        shift += 7


def decode(data: bytes) -> tuple[list[int], list[str], list[bytes]]:
    """The timestamps, payloads and fields of concatenated records made by :func:`encode`."""
    ts_list: list[int] = []
    payloads: list[str] = []
    fields: list[bytes] = []
    i, end = 0, len(data)
    while i < end:
        start = i
        if data[i] != _RECORDS_TAG:
            raise ValueError(f"not an encoded record at byte {i}")
        size, i = _read_varint(data, i + TAG_BYTES)
        stop = i + size
        ts, i = _read_varint(data, i + TAG_BYTES)  # after TS
        if i < stop:
            size, i = _read_varint(data, i + TAG_BYTES)  # after PAYLOAD
            payloads.append(data[i : i + size].decode())
        else:
            payloads.append("")
        ts_list.append(ts - (1 << 64) if ts >> 63 else ts)
        fields.append(data[start:stop])
        i = stop
    return ts_list, payloads, fields


class _Columns(Sequence[Record]):
    """Records kept as two columns, timestamps and payloads, made into ``Record`` values
    only when looked at."""

    __slots__ = ()

    def _columns(self) -> tuple[list[int], list[str]]:
        raise NotImplementedError

    @overload
    def __getitem__(self, i: int) -> Record: ...
    @overload
    def __getitem__(self, i: slice) -> list[Record]: ...
    def __getitem__(self, i: int | slice) -> Record | list[Record]:
        ts, payloads = self._columns()
        if isinstance(i, slice):
            return [Record(t, p) for t, p in zip(ts[i], payloads[i], strict=True)]
        return Record(ts[i], payloads[i])

    def __iter__(self) -> Iterator[Record]:
        return map(Record, *self._columns())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self)!r})"


class FieldRecords(_Columns):
    """Records with each one's field (:func:`field`) made beforehand: what a Write brings."""

    __slots__ = ("fields", "payloads", "ts")

    def __init__(self, ts: list[int], payloads: list[str], fields: list[bytes]) -> None:
        self.ts, self.payloads, self.fields = ts, payloads, fields

    def __len__(self) -> int:
        return len(self.ts)

    def _columns(self) -> tuple[list[int], list[str]]:
        return self.ts, self.payloads


def fields_of(records: Sequence[Record]) -> list[bytes]:
    """Each record's field: made beforehand (:class:`FieldRecords`) or encoded now."""
    if isinstance(records, FieldRecords):
        return records.fields
    return [encode(ts, payload) for ts, payload in records]


class EncodedRecords(_Columns):
    """Records read as one run of encoded fields: counted at once, decoded only if looked at."""

    __slots__ = ("_count", "_decoded", "data")

    def __init__(self, data: bytes, count: int) -> None:
        self.data = data
        self._count = count
        self._decoded: tuple[list[int], list[str], list[bytes]] | None = None

    def decoded(self) -> tuple[list[int], list[str], list[bytes]]:
        if self._decoded is None:
            self._decoded = decode(self.data)
        return self._decoded

    def __len__(self) -> int:
        return self._count

    def _columns(self) -> tuple[list[int], list[str]]:
        ts, payloads, _ = self.decoded()
        return ts, payloads
