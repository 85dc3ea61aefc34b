"""The numbers of a bar, kept beside its payload when it is written, so that resampling
reads them instead of parsing the payload's JSON (issue 25).

A payload that is a JSON object with ``open``, ``high``, ``low`` and ``close`` (and any of
``volume`` or ``vol``, and ``amount``), each name written in lower case, Capitalized or
UPPER, each value a JSON number that a double holds exactly, gets its numbers kept: six
values (open, high, low, close, volume or vol, amount; 0 for one absent) and a *shape*,
an integer that says which names the payload has, how each is written, in which order,
and which values are integers (``7`` and ``7.0`` make different bars). Any other payload
keeps none, and is parsed when resampled, as before. The names are those
``resample/bars.py`` reads (its default summed fields, ``MDCACHE_SUMMED_FIELDS``).

>>> shape, *values = numbers('{"open": 7, "high": 8.5, "low": 6.5, "close": 8.0}')
>>> values
[7, 8.5, 6.5, 8.0, 0, 0]
>>> [(name, is_int) for name, _, is_int in keys(int(shape))]
[('open', True), ('high', False), ('low', False), ('close', False)]
"""

from __future__ import annotations

import functools
import math
import struct
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar, overload

import orjson

T = TypeVar("T")

NAMES: Final = ("open", "high", "low", "close", "volume", "vol", "amount")
SUMMED: Final = frozenset(NAMES[4:])  # the summed names numbers can be kept for
COLUMNS: Final = 6  # open, high, low, close, volume or vol, amount
_COLUMN_OF: Final = (0, 1, 2, 3, 4, 4, 5)  # by slot (index in NAMES)
_CASES: Final = (str.lower, str.capitalize, str.upper)
# Each name as it may be written: its slot and how it is written.
_SPELLED: Final = {
    case(name): (slot, c) for slot, name in enumerate(NAMES) for c, case in enumerate(_CASES)
}
_OHLC_SLOTS: Final = 0b1111
_INTS_BITS: Final = 7  # the low bits: which slots hold an integer
_UNIT_BITS: Final = 5  # then one unit a name, in the payload's order: slot + 1, case
_EXACT: Final = 2**53  # integers a double holds exactly
# The packed row SQLite keeps (``bar`` BLOB): timestamp, shape, then the six values.
ROW: Final = struct.Struct("<qq6d")
ROW_VALUES: Final = 8


_LOWER: Final = frozenset(NAMES)
Plan = tuple[int, tuple[tuple[str, int, int], ...]]  # the units; each name's key, bit, column


@functools.lru_cache(maxsize=1024)
def _plan(names: tuple[str, ...]) -> Plan | None:
    """How to take the numbers of an object with these keys (in order), or None when its
    shape cannot say them: few layouts are ever written, so this is remembered."""
    units = seen = 0
    shift = _INTS_BITS
    fields = []
    for name in names:
        spelled = _SPELLED.get(name)
        if spelled is None:
            if name.lower() in _LOWER:  # another spelling, that a shape cannot say
                return None
            continue
        slot, case = spelled
        bit = 1 << slot
        if seen & bit or (slot == 4 and seen & 32) or (slot == 5 and seen & 16):
            return None  # two spellings of one name, or both volume and vol
        seen |= bit
        fields.append((name, bit, _COLUMN_OF[slot]))
        units |= ((slot + 1) << 2 | case) << shift
        shift += _UNIT_BITS
    if seen & _OHLC_SLOTS != _OHLC_SLOTS:
        return None
    return units, tuple(fields)


def numbers(payload: str) -> tuple[int | float, ...] | None:
    """The shape and six values of a bar's payload, or None when it keeps none."""
    if payload[:1] != "{" or ('lose"' not in payload and 'LOSE"' not in payload):
        return None  # not an object, or no close: no JSON parsed
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if type(value) is not dict:
        return None
    plan = _plan(tuple(value))
    if plan is None:
        return None
    units, fields = plan
    out: list[int | float] = [units, 0, 0, 0, 0, 0, 0]
    for name, bit, col in fields:
        v = value[name]
        kind = type(v)
        if kind is int:
            if not -_EXACT <= v <= _EXACT:
                return None
            out[0] |= bit  # type: ignore[operator]
        elif kind is not float or (v == 0 and math.copysign(1.0, v) < 0):
            return None  # not a number (a bool, a string), or -0.0 (SQLite keeps 0)
        out[col + 1] = v
    return tuple(out)


def signature(shape: int) -> int:
    """The shape without its integer bits: the names, their spellings and order."""
    return shape >> _INTS_BITS


def keys(shape: int) -> Iterator[tuple[str, int, bool]]:
    """The names a shape says, in the payload's order: each as written, its slot (index
    in :data:`NAMES`), and whether its value is an integer."""
    units = shape >> _INTS_BITS
    while units:
        unit = units & (2**_UNIT_BITS - 1)
        slot = (unit >> 2) - 1
        yield _CASES[unit & 3](NAMES[slot]), slot, bool(shape >> slot & 1)
        units >>= _UNIT_BITS


def int_slots(shape: int) -> int:
    """The slots whose values are integers, as bits (``1 << slot``)."""
    return shape & (2**_INTS_BITS - 1)


def column(slot: int) -> int:
    """The column of :class:`BarNumbers` that holds a slot's values."""
    return _COLUMN_OF[slot]


def packed(ts_ms: int, payload: str) -> bytes | None:
    """:data:`ROW` of a record whose payload keeps numbers, else None."""
    found = numbers(payload)
    if found is None:
        return None
    return ROW.pack(ts_ms, *found)


@dataclass(slots=True)
class BarNumbers:
    """The numbers of a window's records, column-wise, in the window's order: every record
    of the window has them, and all have one :func:`signature`."""

    ts: list[int]
    shapes: list[int]
    columns: list[list[float]]  # COLUMNS of them: open, high, low, close, volume/vol, amount

    @classmethod
    def unpacked(cls, data: bytes) -> BarNumbers:
        """From :data:`ROW` rows laid end to end."""
        whole = array("q", data)
        values = array("d", data)
        n = ROW_VALUES
        return cls(
            whole[0::n].tolist(),
            whole[1::n].tolist(),
            [values[i::n].tolist() for i in range(2, n)],
        )

    def uniform(self) -> bool:
        """Whether every record names the same fields the same way (the first's)."""
        if not self.shapes:
            return False
        first = signature(self.shapes[0])
        return all(shape >> _INTS_BITS == first for shape in set(self.shapes))

    def reversed(self) -> BarNumbers:
        return BarNumbers(self.ts[::-1], self.shapes[::-1], [c[::-1] for c in self.columns])


class Counted(Sequence[T]):
    """The records of a window read as their numbers only: counted (a hit is a window with
    records), never looked at (their payloads were not read)."""

    __slots__ = ("_n",)

    def __init__(self, n: int) -> None:
        self._n = n

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[T]: ...
    def __getitem__(self, i: int | slice) -> T | Sequence[T]:
        raise TypeError("records read as bar numbers have no payloads to look at")
