"""libtaos result blocks read a column at a time, and TMQ messages polled and freed.

taospy turns a result into rows value by value: each fixed-width value of a block costs
a ctypes call (``taos_is_null``, as libtaos 3.2.2.2 has no ``taos_is_null_by_column``),
each string two ctypes objects, and every ``tmq_*`` wrapper looks its caller up with
``inspect.stack()``. Its ``TaosResult(message)`` never frees a polled TMQ message
(``close_after`` is false unless asked): a relay following a busy topic kept about
250-500 bytes of every record written until the server ran out of memory.

Here a block is read with one copy per column: 64-bit integers and doubles as one array, strings as
one buffer sliced by libtaos' offsets (a 16-bit length, then the bytes; offset -1 is NULL).
Only columns that are never NULL (the timestamp, the payload) are read so; a fixed-width
column's NULLs live in a bitmap this does not read, so its kind is checked against the
result's fields first. Every message :func:`poll` returns is freed by
:func:`table_blocks`, whatever happens.
"""

from __future__ import annotations

import ctypes
import enum
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import Any


class Kind(enum.Enum):
    """How a column is read: a 64-bit integer (BIGINT, TIMESTAMP), a DOUBLE or text (VARCHAR)."""

    INT64 = (5, 9)  # TSDB_DATA_TYPE_BIGINT, TSDB_DATA_TYPE_TIMESTAMP
    TEXT = (8,)  # TSDB_DATA_TYPE_VARCHAR (BINARY)
    DOUBLE = (7,)  # TSDB_DATA_TYPE_DOUBLE


class BlockError(Exception):
    """libtaos reported an error while a result was fetched (``code``: its raw errno)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Field(ctypes.Structure):  # TAOS_FIELD
    _fields_ = [("name", ctypes.c_char * 65), ("type", ctypes.c_uint8), ("bytes", ctypes.c_int32)]


_VOIDS = ctypes.POINTER(ctypes.c_void_p)


_PROTOTYPES: dict[str, tuple[tuple[Any, ...], Any]] = {
    "taos_fetch_block": ((ctypes.c_void_p, ctypes.c_void_p), ctypes.c_int),
    "taos_fetch_fields": ((ctypes.c_void_p,), ctypes.c_void_p),
    "taos_num_fields": ((ctypes.c_void_p,), ctypes.c_int),
    "taos_get_column_data_offset": ((ctypes.c_void_p, ctypes.c_int), ctypes.c_void_p),
    "taos_errno": ((ctypes.c_void_p,), ctypes.c_int),
    "taos_errstr": ((ctypes.c_void_p,), ctypes.c_char_p),
    "taos_free_result": ((ctypes.c_void_p,), None),
    "tmq_consumer_poll": ((ctypes.c_void_p, ctypes.c_int64), ctypes.c_void_p),
    "tmq_get_res_type": ((ctypes.c_void_p,), ctypes.c_int),
    "tmq_get_table_name": ((ctypes.c_void_p,), ctypes.c_char_p),
    "tmq_get_vgroup_id": ((ctypes.c_void_p,), ctypes.c_int32),
    "tmq_get_vgroup_offset": ((ctypes.c_void_p,), ctypes.c_int64),
    "tmq_position": ((ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32), ctypes.c_int64),
    "tmq_offset_seek": (
        (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_int64),
        ctypes.c_int32,
    ),
}
TMQ_RES_DATA, TMQ_RES_METADATA = 1, 3  # tmq_res_t: messages with rows (others: schema, deletes)


class Lib:
    """The libtaos functions used here, with prototypes of their own: ``cdll[name]``
    makes a new function object, so taospy's prototypes of the same functions (some
    differ) are left as they are."""

    def __init__(self, cdll: Any) -> None:
        for name, (argtypes, restype) in _PROTOTYPES.items():
            function = cdll[name]
            function.argtypes, function.restype = argtypes, restype
            setattr(self, name, function)

    def __getattr__(self, name: str) -> Any:  # for mypy: the functions set above
        raise AttributeError(name)


def _check_fields(lib: Lib, result: int, kinds: Sequence[Kind], more: bool = False) -> None:
    """The result's first columns are of ``kinds``, and there are no others unless ``more``."""
    count = lib.taos_num_fields(result)
    if count < len(kinds) or (count > len(kinds) and not more):
        raise BlockError(-1, f"result has {count} columns, {len(kinds)} expected")
    fields = ctypes.cast(lib.taos_fetch_fields(result), ctypes.POINTER(_Field))
    for i, kind in enumerate(kinds):
        if fields[i].type not in kind.value:
            raise BlockError(-1, f"column {i} is of type {fields[i].type}, not {kind.name}")


def _text(lib: Lib, result: int, column: int, data: int, rows: int) -> list[str | None]:
    pointer = lib.taos_get_column_data_offset(result, column)
    offsets = array("i", ctypes.string_at(pointer, 4 * rows)).tolist()
    last = max(offsets)
    if last < 0:
        return [None] * rows
    # Values are laid end to end in row order: the last one ends the buffer.
    end = last + 2 + int.from_bytes(ctypes.string_at(data + last, 2), "little")
    buffer = ctypes.string_at(data, end)
    return [
        None if at < 0 else buffer[at + 2 : at + 2 + (buffer[at] | buffer[at + 1] << 8)].decode()
        for at in offsets
    ]


def _blocks(
    lib: Lib, result: int, kinds: Sequence[Kind], wanted: Callable[[str], bool] | None = None
) -> Iterator[tuple[str, list[list[Any]]]]:
    """Each block of ``result``, one list per column, with its TMQ table name when
    ``wanted`` is given: a block of a table it refuses is skipped unread."""
    block = ctypes.c_void_p()
    while (rows := lib.taos_fetch_block(result, ctypes.byref(block))) > 0:
        name = ""
        if wanted is not None:
            # The block just fetched is the message's current one, and names its table.
            name = (lib.tmq_get_table_name(result) or b"").decode()
            if not wanted(name):
                continue
        # Checked per block: a TMQ message's fields are its current block's (a table's
        # columns after those asked for are left unread: its schema may have grown).
        _check_fields(lib, result, kinds, more=wanted is not None)
        pointers = ctypes.cast(block, _VOIDS)
        yield (
            name,
            [
                array("q", ctypes.string_at(pointers[i], 8 * rows)).tolist()
                if kind is Kind.INT64
                else array("d", ctypes.string_at(pointers[i], 8 * rows)).tolist()
                if kind is Kind.DOUBLE
                else _text(lib, result, i, pointers[i], rows)
                for i, kind in enumerate(kinds)
            ],
        )
    code = lib.taos_errno(result)
    if code:
        raise BlockError(code, (lib.taos_errstr(result) or b"").decode(errors="replace"))


def columns(lib: Lib, result: int, kinds: Sequence[Kind]) -> list[list[Any]]:
    """Every row of ``result`` (a TAOS_RES address), one list per column, read as ``kinds``
    say. Raises :class:`BlockError`; frees nothing (the caller owns ``result``)."""
    out: list[list[Any]] = [[] for _ in kinds]
    for _, block in _blocks(lib, result, kinds):
        for column, values in zip(out, block, strict=True):
            column += values
    return out


def poll(lib: Lib, consumer: int, wait_ms: int) -> int | None:
    """The next TMQ message of ``consumer`` (a tmq_t address), or None after ``wait_ms``.
    Hand it to :func:`table_blocks`, which frees it."""
    message: int | None = lib.tmq_consumer_poll(consumer, wait_ms)
    return message or None


def span(lib: Lib, consumer: int, topic: bytes, message: int) -> tuple[int, int, int]:
    """The vgroup of a polled message and the part of its write-ahead log the message
    covers: from the offset of its first entry up to (not including) the consumer's
    position once it was polled, which is where the next message of that vgroup starts."""
    vgroup = lib.tmq_get_vgroup_id(message)
    return vgroup, lib.tmq_get_vgroup_offset(message), lib.tmq_position(consumer, topic, vgroup)


def seek(lib: Lib, consumer: int, topic: bytes, vgroup: int, offset: int) -> int:
    """Moves ``consumer`` to ``offset`` of ``vgroup``'s log; libtaos' error code (0: done)."""
    return int(lib.tmq_offset_seek(consumer, topic, vgroup, offset))


def free(lib: Lib, message: int) -> None:
    """Frees a polled message that is not read."""
    lib.taos_free_result(message)


def table_blocks(
    lib: Lib, message: int, kinds: Sequence[Kind], wanted: Callable[[str], bool]
) -> list[tuple[str, list[list[Any]]]]:
    """The blocks of a polled TMQ message of the tables ``wanted`` accepts, each with the
    name of its table and one list per column (none for a message without rows: a schema
    change, a delete); the message is freed."""
    try:
        if lib.tmq_get_res_type(message) not in (TMQ_RES_DATA, TMQ_RES_METADATA):
            return []
        return list(_blocks(lib, message, kinds, wanted))
    finally:
        lib.taos_free_result(message)
