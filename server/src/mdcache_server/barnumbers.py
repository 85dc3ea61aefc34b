"""The numbers of a bar, kept beside its payload when it is written, so that resampling
reads them instead of parsing the payload's JSON (issue 25).

A payload that is a JSON object with ``open``, ``high``, ``low`` and ``close`` (and any of
``volume`` or ``vol``, and ``amount``), each name written in lower case, Capitalized or
UPPER, each value a JSON number that a double holds exactly (not -0.0, nor a subnormal
number), gets its numbers kept: six values (open, high, low, close, volume or vol, amount;
0 for one absent) and a *shape*, an integer that says which names the payload has, how
each is written, in which order, and which values are integers (``7`` and ``7.0`` make
different bars). Any other payload keeps none, and is parsed when resampled, as before.
The names are those ``resample/bars.py`` reads (its default summed fields,
``MDCACHE_SUMMED_FIELDS``).

>>> shape, *values = numbers('{"open": 7, "high": 8.5, "low": 6.5, "close": 8.0}')
>>> values
[7, 8.5, 6.5, 8.0, 0, 0]
>>> [(name, is_int) for name, _, is_int in keys(int(shape))]
[('open', True), ('high', False), ('low', False), ('close', False)]
"""

from __future__ import annotations

import functools
import math
import operator
import struct
import sys
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar, overload

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
_NORMAL: Final = sys.float_info.min  # the smallest positive normal double
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


def _loads(payload: str) -> object:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None


Columns = list[list[int | float]]  # COLUMNS of them


def extract(payloads: Sequence[str]) -> tuple[list[int], Columns]:
    """Each payload's shape (0: it keeps no numbers) and the six values, column-wise (0
    where none). A column at a time over the records of one layout (most writes hold one):
    about a microsecond a bar, most of it orjson's."""
    n = len(payloads)
    shapes = [0] * n
    columns: Columns = [[0] * n for _ in range(COLUMNS)]
    # no JSON parsed where there can be no bar: not an object, or no close
    at = [i for i, p in enumerate(payloads) if p[:1] == "{" and ('lose"' in p or 'LOSE"' in p)]
    if not at:
        return shapes, columns
    texts = [payloads[i] for i in at] if len(at) < n else payloads
    try:
        values = orjson.loads("[" + ",".join(texts) + "]")
        layouts = list(map(tuple, values))  # each an object: each text starts with "{"
    except orjson.JSONDecodeError:  # one orjson refuses: each on its own
        values = [_loads(text) for text in texts]
        layouts = list(map(_layout, values))
    if layouts.count(layouts[0]) == len(layouts):
        groups = {layouts[0]: list(range(len(at)))}
    else:
        groups = {}
        for k, layout in enumerate(layouts):
            groups.setdefault(layout, []).append(k)
    for layout, members in groups.items():
        plan = _plan(layout) if layout else None
        if plan is not None:
            objects = values if len(members) == len(values) else [values[k] for k in members]
            rows = at if len(members) == n else [at[k] for k in members]
            _take(plan, objects, rows, shapes, columns)
    return shapes, columns


def _kept_float(v: float) -> bool:
    """Not -0.0 (SQLite keeps it as 0), nor subnormal (TDengine refuses it as text)."""
    return abs(v) >= _NORMAL or (v == 0 and math.copysign(1, v) > 0)


def _layout(value: object) -> tuple[str, ...]:
    return tuple(value) if type(value) is dict else ()


def _take(
    plan: Plan, objects: list[dict[str, object]], rows: list[int], shapes: list[int], out: Columns
) -> None:
    """The numbers of objects of one layout into ``out`` at ``rows``, a column at a time."""
    units, fields = plan
    m = len(objects)
    ints: list[int] | int = 0  # the integer bits of all, or of each
    bad: set[int] = set()
    whole = len(rows) == len(shapes)
    for name, bit, col in fields:
        column: list[Any] = list(map(operator.itemgetter(name), objects))
        kinds = set(map(type, column))
        if kinds == {float}:
            if not (min(column) >= _NORMAL or max(column) <= -_NORMAL):  # near 0: look closer
                bad.update(k for k, v in enumerate(column) if not _kept_float(v))
        elif kinds == {int} and min(column) >= -_EXACT and max(column) <= _EXACT:
            if isinstance(ints, int):
                ints |= bit
            else:
                ints = [i | bit for i in ints]
        else:  # integers and floats, or past a double, or not numbers
            if isinstance(ints, int):
                ints = [ints] * m
            for k, v in enumerate(column):
                kind = type(v)
                if kind is int:
                    if -_EXACT <= v <= _EXACT:
                        ints[k] |= bit
                    else:
                        bad.add(k)
                elif kind is not float or not _kept_float(v):
                    bad.add(k)
        if whole:
            out[col] = column
        else:
            target = out[col]
            for k, i in enumerate(rows):
                target[i] = column[k]
    if whole:
        shapes[:] = [units | ints] * m if isinstance(ints, int) else [units | i for i in ints]
    else:
        for k, i in enumerate(rows):
            shapes[i] = units | (ints if isinstance(ints, int) else ints[k])
    for k in bad:
        i = rows[k]
        shapes[i] = 0
        for target in out:
            target[i] = 0


def numbers(payload: str) -> tuple[int | float, ...] | None:
    """The shape and six values of one payload, or None when it keeps none."""
    (shape,), columns = extract([payload])
    return (shape, *(column[0] for column in columns)) if shape else None


def packed(stamps: Sequence[int], payloads: Sequence[str]) -> list[bytes | None]:
    """:data:`ROW` of each record whose payload keeps numbers, else None."""
    shapes, columns = extract(payloads)
    if not any(shapes):
        return [None] * len(shapes)
    rows: list[bytes | None] = list(map(ROW.pack, stamps, shapes, *columns))
    for i, shape in enumerate(shapes):
        if not shape:
            rows[i] = None
    return rows


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
        if sys.byteorder != "little":  # ROW is little-endian
            whole.byteswap()
            values.byteswap()
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
