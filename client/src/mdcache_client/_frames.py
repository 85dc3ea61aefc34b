"""Read results as DataFrames, and DataFrames as Writes: pandas or polars, both optional.

``pip install 'mdcache-client[pandas]'`` (or ``[polars]``); the client itself needs neither,
and this module imports them only when a function is called (without them it raises an
ImportError naming the extra).

>>> from mdcache_client import to_pandas, write_frame      # doctest: +SKIP
>>> bars = to_pandas(cache.read(series, last_days=30), tz="Asia/Shanghai")
>>> write_frame(cache, series, bars)

**Reading** (:func:`to_pandas`, :func:`to_polars`; any ``ReadResult``, resampled or not, a
``LoadResult``, or records):

- time: a ``DatetimeIndex`` named ``ts`` (pandas), a first column ``ts`` (polars), to the
  millisecond, in the IANA time zone ``tz``: UTC unless asked. The client cannot tell a
  series' market time zone (the server's ``MDCACHE_CALENDARS`` and ``MDCACHE_MARKETS`` are
  not in the contract): ask ``tz="Asia/Shanghai"`` for A-shares, ``"America/New_York"`` for
  US equities.
- one column per payload field, in the order the fields first appear, its type from the
  JSON values it has (a record without the field, or with ``null``, has a missing value):
  all integers: int64 (pandas ``Int64`` when one is missing, polars ``Int64`` with nulls);
  numbers, one with a fraction or exponent: float64 (missing: NaN in pandas, null in
  polars); strings: text; booleans: bool (pandas ``boolean`` when one is missing); missing
  everywhere: float64, all missing.
- a field that is not flat (an object, a list, values of more than one of those kinds, an
  unsigned 64-bit integer past int64) has no column: the frame gets a column ``payload``
  holding each record's JSON payload as stored (so does a payload that is not a JSON object).
  ``payload=True`` adds that column always, ``payload=False`` never.
  Integers past 64 bits are read as floats (as orjson reads them; bars have none).

**Writing** (:func:`frame_records`, :func:`write_frame`): the time is the pandas index, or
the column named ``time`` (polars: ``ts`` unless named): datetimes (aware ones at their
instant, naive ones taken in ``tz``) or integer epoch milliseconds; sub-millisecond parts are
dropped. Each row becomes a JSON object of the other columns: numbers as numbers (an integer
column as integers), datetimes as ISO 8601 text, objects and lists nested. A missing value
(None, NaN, NaT, NA) leaves its field out of that row; an infinite number raises ValueError.
A ``payload`` column (as reading adds) is the object each row's fields are set over, so
fields that had no column are written back as they were read.

**Cache-aside** (:func:`get_or_load_frame`): ``get_or_load`` whose loader may return a
DataFrame (its rows made records as above), answering a DataFrame.

With :class:`~mdcache_client.AsyncClient`, :func:`write_frame` and :func:`get_or_load_frame`
return awaitables; with :class:`~mdcache_client.Client`, their results.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mdcache_client._aio import AsyncClient
from mdcache_client._sync import Client
from mdcache_client._topup import ranges_loader, takes_ranges
from mdcache_client._types import LoadResult, ReadResult, Record, Series, Window

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

TIME = "ts"  # the time: the pandas index's name, the polars column's
PAYLOAD = "payload"  # the column of payloads as stored, for fields that are not flat
Library = Literal["pandas", "polars"]
Records = ReadResult | LoadResult | Iterable[Record]
_NONE = type(None)
_LOADS: Callable[[str], Any]
_DUMPS: Callable[[Any], str]
try:
    import orjson
except ImportError:  # an extra brings it; json is the same, three times slower
    _LOADS = json.loads

    def _DUMPS(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_scalar)

else:
    _LOADS = orjson.loads
    _NUMPY = orjson.OPT_SERIALIZE_NUMPY

    def _DUMPS(value: Any) -> str:
        return orjson.dumps(value, default=_scalar, option=_NUMPY).decode()


def _scalar(value: Any) -> Any:
    """A numpy scalar as the Python one (for the json module; orjson knows them)."""
    item = getattr(value, "item", None)
    if item is None:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    return item()


def _pandas(caller: str) -> Any:
    try:
        import pandas
    except ImportError as exc:
        raise ImportError(
            f"mdcache_client.{caller} needs pandas: pip install 'mdcache-client[pandas]'"
        ) from exc
    return pandas


def _polars(caller: str) -> Any:
    try:
        import polars
    except ImportError as exc:
        raise ImportError(
            f"mdcache_client.{caller} needs polars: pip install 'mdcache-client[polars]'"
        ) from exc
    return polars


def _zone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"tz: unknown time zone {tz!r} (an IANA name, e.g. 'UTC')") from None
    return tz


# Reading


class _Decoded:
    """Records' stamps and payloads, their fields as columns of Python values, and whether
    any field (or payload) is not flat."""

    __slots__ = ("columns", "flat", "kinds", "payloads", "stamps")

    def __init__(self, records: Records) -> None:
        if isinstance(records, ReadResult | LoadResult):
            records = records.records
        records = records if isinstance(records, Sequence) else list(records)
        stamps = [r.ts_ms for r in records]
        if None in stamps:
            raise ValueError("records to a frame need a time (ts_ms) each")
        self.stamps: list[int] = stamps  # type: ignore[assignment]
        self.payloads = [r.payload for r in records]
        rows = _parse(self.payloads)
        self.flat = all(type(r) is dict for r in rows)
        if not self.flat:
            rows = [r if type(r) is dict else {} for r in rows]
        self.columns: dict[str, Sequence[Any]] = _columns(rows)
        self.kinds: dict[str, str] = {}
        for name, values in self.columns.items():
            kind = _kind(values)
            if kind is None:
                self.flat = False
            else:
                self.kinds[name] = kind

    def check(self, name: str) -> None:
        if name in self.kinds:
            raise ValueError(f"a payload field is named {name!r}, as the frame's own column")


def _parse(payloads: list[str]) -> list[Any]:
    """Every payload decoded, in one parse of them all (a third of the time of one each)."""
    if not payloads:
        return []
    try:
        rows: list[Any] = _LOADS("[" + ",".join(payloads) + "]")
    except ValueError:  # JSON that orjson refuses and json reads
        rows = [json.loads(p) for p in payloads]
    return rows


def _columns(rows: list[dict[str, Any]]) -> dict[str, Sequence[Any]]:
    """Each field's values by record (None where a record lacks it)."""
    if not rows:
        return {}
    first = list(rows[0])
    if all(list(r) == first for r in rows):  # the usual case: one layout, one transpose
        return dict(zip(first, zip(*[r.values() for r in rows], strict=False), strict=True))
    names = dict.fromkeys(k for r in rows for k in r)
    return {k: [r.get(k) for r in rows] for k in names}


_KINDS: dict[frozenset[type], str] = {
    frozenset({int}): "int",
    frozenset({float}): "float",
    frozenset({int, float}): "float",
    frozenset({str}): "str",
    frozenset({bool}): "bool",
    frozenset(): "none",
}


def _kind(values: Sequence[Any]) -> str | None:
    """int, int? (some missing), float, str, bool, bool?, none (all missing), or None: not
    flat."""
    types = set(map(type, values))
    missing = _NONE in types
    kind = _KINDS.get(frozenset(types - {_NONE}))
    if kind == "int":
        present = [v for v in values if v is not None] if missing else values
        if min(present) < -(2**63) or max(present) >= 2**63:
            return None
        return "int?" if missing else "int"
    if kind == "bool" and missing:
        return "bool?"
    return kind


def to_pandas(result: Records, *, tz: str = "UTC", payload: bool | None = None) -> pd.DataFrame:
    """A pandas DataFrame of a read's (or load's) records: see the module's rules.

    >>> bars = to_pandas(cache.read(series, last_days=5), tz="Asia/Shanghai")  # doctest: +SKIP
    >>> bars["close"].resample("1D").last()
    """
    pd = _pandas("to_pandas")
    import numpy as np

    decoded = _Decoded(result)
    zone = _zone(tz)
    data: dict[str, Any] = {}
    for name, kind in decoded.kinds.items():
        values = decoded.columns[name]
        if kind == "int":
            data[name] = np.array(values, dtype=np.int64)
        elif kind == "int?":
            data[name] = pd.array(values, dtype="Int64")
        elif kind in ("float", "none"):
            data[name] = np.array(values, dtype=np.float64)  # None: NaN
        elif kind == "bool":
            data[name] = np.array(values, dtype=bool)
        elif kind == "bool?":
            data[name] = pd.array(values, dtype="boolean")
        else:
            data[name] = values  # text: pandas' own (str in pandas 3, object before)
    if payload or (payload is None and not decoded.flat):
        decoded.check(PAYLOAD)
        data[PAYLOAD] = decoded.payloads
    stamps = np.array(decoded.stamps, dtype="datetime64[ms]")
    index = pd.DatetimeIndex(stamps, name=TIME).tz_localize("UTC")
    if zone != "UTC":
        index = index.tz_convert(zone)
    return pd.DataFrame(data, index=index, copy=False)


def to_polars(result: Records, *, tz: str = "UTC", payload: bool | None = None) -> pl.DataFrame:
    """A polars DataFrame of a read's (or load's) records, its time the first column ``ts``:
    see the module's rules.

    >>> bars = to_polars(cache.read(series, last_days=5), tz="Asia/Shanghai")  # doctest: +SKIP
    >>> bars.group_by_dynamic("ts", every="1d").agg(pl.col("close").last())
    """
    polars = _polars("to_polars")
    decoded = _Decoded(result)
    zone = _zone(tz)
    decoded.check(TIME)
    time = polars.Series(TIME, decoded.stamps, dtype=polars.Int64).cast(polars.Datetime("ms"))
    columns = [time.dt.replace_time_zone("UTC").dt.convert_time_zone(zone)]
    dtypes = {
        "int": polars.Int64,
        "int?": polars.Int64,
        "float": polars.Float64,
        "none": polars.Float64,
        "str": polars.String,
        "bool": polars.Boolean,
        "bool?": polars.Boolean,
    }
    for name, kind in decoded.kinds.items():
        values, strict = decoded.columns[name], kind not in ("float", "none")  # ints as floats
        columns.append(polars.Series(name, values, dtype=dtypes[kind], strict=strict))
    if payload or (payload is None and not decoded.flat):
        decoded.check(PAYLOAD)
        columns.append(polars.Series(PAYLOAD, decoded.payloads, dtype=polars.String))
    frame: pl.DataFrame = polars.DataFrame(columns)
    return frame


# Writing


def frame_records(frame: Any, *, time: str | None = None, tz: str = "UTC") -> list[Record]:
    """The rows of a pandas or polars DataFrame as records (see the module's rules).

    ``time`` names the time column; without it, the pandas index, or polars' ``ts``.
    """
    zone = _zone(tz)
    library = _library(frame)
    if library == "pandas":
        stamps, names, columns, gaps = _pandas_columns(frame, time, zone)
    else:
        stamps, names, columns, gaps = _polars_columns(frame, time or TIME, zone)
    base = None
    if PAYLOAD in names:
        at = names.index(PAYLOAD)
        names.pop(at)
        stored, missing = columns.pop(at), gaps.pop(at)
        base = _bases(stored, missing)
    rows = [dict(zip(names, values, strict=False)) for values in zip(*columns, strict=False)]
    if not names:
        rows = [{} for _ in stamps]
    for name, missing in zip(names, gaps, strict=True):
        for i in missing:
            del rows[i][name]
    if base is not None:  # the columns' fields set over the stored ones, in their places
        for stored_row, row in zip(base, rows, strict=True):
            stored_row.update(row)
        for name, missing in zip(names, gaps, strict=True):
            for i in missing:
                base[i].pop(name, None)
        rows = base
    return [Record(ts, _DUMPS(row)) for ts, row in zip(stamps, rows, strict=True)]


def _library(frame: Any) -> Library:
    module = type(frame).__module__.partition(".")[0]
    if module not in ("pandas", "polars") or type(frame).__name__ != "DataFrame":
        raise TypeError(f"a pandas or polars DataFrame, not {type(frame).__name__}")
    return "pandas" if module == "pandas" else "polars"


def _bases(stored: list[Any], missing: list[int]) -> list[dict[str, Any]]:
    """The payload column's objects (empty where it has none)."""
    gone = set(missing)
    bases = []
    for i, text in enumerate(stored):
        value = {} if i in gone else _LOADS(text)
        if type(value) is not dict:
            raise ValueError(f"{PAYLOAD}: row {i} is not a JSON object")
        bases.append(value)
    return bases


Columns = tuple[list[int], list[str], list[list[Any]], list[list[int]]]


def _pandas_columns(frame: Any, time: str | None, zone: str) -> Columns:
    """Stamps, column names, each column's values, each column's rows of missing values."""
    pd = _pandas("frame_records")
    import numpy as np

    if time is None:
        stamps = _pandas_ms(pd, np, pd.Series(frame.index), "the index", zone)
    else:
        if time not in frame.columns:
            raise ValueError(f"time: no column {time!r}")
        stamps = _pandas_ms(pd, np, frame[time], time, zone)
        frame = frame.drop(columns=[time])
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        raise ValueError(f"columns named more than once: {names}")
    columns, gaps = [], []
    for name, (_, column) in zip(names, frame.items(), strict=True):
        values, missing = _pandas_values(pd, np, column, name)
        columns.append(values)
        gaps.append(missing)
    return stamps, names, columns, gaps


def _pandas_ms(pd: Any, np: Any, times: Any, name: str, zone: str) -> list[int]:
    if pd.api.types.is_integer_dtype(times.dtype):
        ints: list[int] = times.to_numpy(dtype=np.int64).tolist()
        return ints
    if not pd.api.types.is_datetime64_any_dtype(times.dtype):
        raise TypeError(f"{name}: times are datetimes or epoch milliseconds, not {times.dtype}")
    if times.isna().any():
        raise ValueError(f"{name}: a time is missing (NaT)")
    if times.dt.tz is None:
        times = times.dt.tz_localize(zone)
    utc = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    ms: list[int] = utc.astype("datetime64[ms]").astype(np.int64).tolist()
    return ms


def _pandas_values(pd: Any, np: Any, column: Any, name: str) -> tuple[list[Any], list[int]]:
    """A column's values as Python ones, and the rows where it has none."""
    dtype = column.dtype
    if dtype.kind == "f" and isinstance(dtype, np.dtype):
        array = column.to_numpy()
        if np.isinf(array).any():
            raise ValueError(f"{name}: an infinite number, which JSON cannot hold")
        return array.tolist(), np.flatnonzero(np.isnan(array)).tolist()
    if dtype.kind in "iub" and isinstance(dtype, np.dtype):
        return column.to_numpy().tolist(), []
    missing = np.flatnonzero(column.isna().to_numpy()).tolist()
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return [None if t is pd.NaT else t.isoformat() for t in column.tolist()], missing
    if dtype.kind == "f" and column.isin([np.inf, -np.inf]).any():  # a nullable Float64
        raise ValueError(f"{name}: an infinite number, which JSON cannot hold")
    return column.astype(object).tolist(), missing


def _polars_columns(frame: Any, time: str, zone: str) -> Columns:
    pl = _polars("frame_records")
    if time not in frame.columns:
        raise ValueError(f"time: no column {time!r}")
    times = frame.get_column(time)
    if times.dtype.is_integer():
        stamps = times.cast(pl.Int64)
    elif isinstance(times.dtype, pl.Datetime):
        if times.dtype.time_zone is None:
            times = times.dt.replace_time_zone(zone)
        stamps = times.dt.epoch("ms")
    else:
        raise TypeError(f"{time}: times are datetimes or epoch milliseconds, not {times.dtype}")
    if stamps.null_count():
        raise ValueError(f"{time}: a time is missing (null)")
    names = [c for c in frame.columns if c != time]
    columns, gaps = [], []
    for name in names:
        column = frame.get_column(name)
        missing = column.is_null()
        if column.dtype.is_float():
            if column.is_infinite().any():
                raise ValueError(f"{name}: an infinite number, which JSON cannot hold")
            missing = missing | column.is_nan()
        values = column.to_list()
        if isinstance(column.dtype, pl.Datetime | pl.Date | pl.Time):
            values = [None if t is None else t.isoformat() for t in values]
        columns.append(values)
        gaps.append(missing.fill_null(True).arg_true().to_list() if missing.any() else [])
    return stamps.to_list(), names, columns, gaps


@overload
def write_frame(
    client: AsyncClient,
    series: Series,
    frame: Any,
    *,
    time: str | None = None,
    tz: str = "UTC",
    timeout: float | None = None,
) -> Coroutine[Any, Any, int]: ...


@overload
def write_frame(
    client: Client,
    series: Series,
    frame: Any,
    *,
    time: str | None = None,
    tz: str = "UTC",
    timeout: float | None = None,
) -> int: ...


def write_frame(
    client: AsyncClient | Client,
    series: Series,
    frame: Any,
    *,
    time: str | None = None,
    tz: str = "UTC",
    timeout: float | None = None,
) -> int | Coroutine[Any, Any, int]:
    """Writes a DataFrame's rows to a series (:func:`frame_records`); how many were written.

    >>> write_frame(cache, Series("600519.SH", "kline", "1d"), bars)   # doctest: +SKIP
    >>> await write_frame(async_cache, series, bars, time="trade_time", tz="Asia/Shanghai")
    """
    return client.write(series, frame_records(frame, time=time, tz=tz), timeout=timeout)


# Cache-aside


def _as_records(loaded: Any, time: str | None, tz: str) -> list[Record]:
    module = type(loaded).__module__.partition(".")[0]
    if module in ("pandas", "polars"):
        return frame_records(loaded, time=time, tz=tz)
    return list(loaded)


def _frame(result: LoadResult, library: Library, tz: str, payload: bool | None) -> Any:
    if library == "pandas":
        return to_pandas(result, tz=tz, payload=payload)
    return to_polars(result, tz=tz, payload=payload)


@overload
def get_or_load_frame(
    client: AsyncClient,
    series: Series,
    window: Window,
    loader: Callable[[Series, Any], Awaitable[Any]],
    *,
    library: Library = "pandas",
    tz: str = "UTC",
    time: str | None = None,
    payload: bool | None = None,
    tolerance_ms: int = 0,
    fallback: bool | None = None,
    resample_from: str | None = None,
    timeout: float | None = None,
) -> Coroutine[Any, Any, Any]: ...


@overload
def get_or_load_frame(
    client: Client,
    series: Series,
    window: Window,
    loader: Callable[[Series, Any], Any],
    *,
    library: Library = "pandas",
    tz: str = "UTC",
    time: str | None = None,
    payload: bool | None = None,
    tolerance_ms: int = 0,
    fallback: bool | None = None,
    resample_from: str | None = None,
    timeout: float | None = None,
) -> Any: ...


def get_or_load_frame(
    client: AsyncClient | Client,
    series: Series,
    window: Window,
    loader: Callable[[Series, Any], Any],
    *,
    library: Library = "pandas",
    tz: str = "UTC",
    time: str | None = None,
    payload: bool | None = None,
    tolerance_ms: int = 0,
    fallback: bool | None = None,
    resample_from: str | None = None,
    timeout: float | None = None,
) -> Any:
    """``client.get_or_load`` answering a DataFrame (``library`` pandas or polars, in
    ``tz``): the window's records from the cache, topped up by ``loader``.

    The loader is the one ``get_or_load`` takes (``loader(series, window)``, or marked with
    :func:`~mdcache_client.ranges_loader`, ``loader(series, [window, ...])``), and may return
    a DataFrame instead of records: its rows become records by :func:`frame_records`
    (``time`` and ``tz`` as there; naive times in ``tz``). Everything else is
    ``get_or_load``'s: what is written back, shared, or answered when the cache is away.

    >>> def fetch(series, window):                                   # doctest: +SKIP
    ...     return vendor.daily(series.symbol, window)  # a DataFrame, its index the time
    >>> bars = get_or_load_frame(cache, series, window, fetch, tz="Asia/Shanghai")
    """
    if library not in ("pandas", "polars"):
        raise ValueError(f"library: pandas or polars, not {library!r}")
    (_pandas if library == "pandas" else _polars)("get_or_load_frame")
    options: dict[str, Any] = {
        "tolerance_ms": tolerance_ms,
        "fallback": fallback,
        "resample_from": resample_from,
        "timeout": timeout,
    }
    if isinstance(client, AsyncClient):

        async def load_async(series: Series, ranges: Any) -> list[Record]:
            return _as_records(await loader(series, ranges), time, tz)

        async def run() -> Any:
            wrapped = ranges_loader(load_async) if takes_ranges(loader) else load_async
            result = await client.get_or_load(series, window, wrapped, **options)
            return _frame(result, library, tz, payload)

        return run()

    def load(series: Series, ranges: Any) -> list[Record]:
        return _as_records(loader(series, ranges), time, tz)

    wrapped = ranges_loader(load) if takes_ranges(loader) else load
    return _frame(client.get_or_load(series, window, wrapped, **options), library, tz, payload)
