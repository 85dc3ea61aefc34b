"""One small session interface over TDengine's two Python connectors.

:class:`NativeSession` uses taospy (``import taos``, which needs libtaos.so);
:class:`WebSocketSession` uses taos-ws-py (``import taosws``, self-contained,
through taosAdapter). Each driver is imported only when a session of its kind is
opened, and every driver error is translated here, where the driver is called
(see :mod:`~mdcache_server.store.tdengine.failures`).

Inserts go through parameter binding (TDengine's stmt API): every subtable of a call
is bound (table name, tags and rows) and the call executes once, so no caller's
string is ever parsed as SQL and a Write is one submit per super table (the records',
and the bars' numbers', sent side by side: :meth:`NativeSession.insert_many`).
"""

from __future__ import annotations

import array
import ctypes
import enum
import os
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mdcache_server.errors import ConfigError
from mdcache_server.store.tdengine import blocks
from mdcache_server.store.tdengine.failures import ConnectionLost, code_of, translate
from mdcache_server.store.tdengine.options import NATIVE, TDengineOptions

NATIVE_MISSING = (
    "the taos:// store needs taospy and the TDengine client library (libtaos.so): "
    "pip install 'mdcache[tdengine]' and install the TDengine client package of your "
    "server's version (TDengine-client-<version>-Linux-x64.tar.gz); or use "
    "taosws://host:6041/db, which needs no client library"
)
WEBSOCKET_MISSING = "the taosws:// store needs taos-ws-py: pip install 'mdcache[taosws]'"


class ColumnType(enum.Enum):
    TIMESTAMP = "timestamp"  # epoch milliseconds
    VARCHAR = "varchar"
    BIGINT = "bigint"
    INT = "int"
    DOUBLE = "double"


@dataclass(frozen=True, slots=True)
class Column:
    """One bound column: its type and a value per row."""

    type: ColumnType
    values: Sequence[int] | Sequence[str] | Sequence[float]


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows for one subtable (``db.name``), created with these VARCHAR tags if missing."""

    table: str
    tags: tuple[str, ...]
    columns: tuple[Column, ...]


class Session(Protocol):
    """One open connection to TDengine; raises only the store's errors."""

    def execute(self, sql: str) -> int:
        """Runs a statement; returns the rows it affected."""

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Runs a query; returns every row."""

    def query_columns(self, sql: str, kinds: Sequence[blocks.Kind]) -> list[list[Any]]:
        """Runs a query whose columns are never NULL; returns one list per column."""

    def insert(self, sql: str, batches: Sequence[Batch]) -> int:
        """Binds each batch to the prepared INSERT and executes it; returns rows written."""

    def insert_many(self, inserts: Sequence[tuple[str, Sequence[Batch]]]) -> list[int]:
        """As :meth:`insert` for each (distinct) INSERT, their submits sent side by side
        where the driver can; rows written by each."""

    def close(self) -> None:
        """Closes the connection; never raises."""


def client_config_dir(options: TDengineOptions) -> str:
    """A folder holding the ``taos.cfg`` that libtaos reads when a process first connects.

    It sets ``maxRetryWaitTime``: with libtaos' default, every request to a server that is
    down waits 10 s before it fails. libtaos reads one configuration per process (the
    first connection's), so the folder is named for its content and written once.
    """
    text = f"maxRetryWaitTime {options.max_retry_wait_ms}\n"
    folder = Path(tempfile.gettempdir()) / f"mdcache-taos-{os.getuid()}-{options.max_retry_wait_ms}"
    cfg = folder / "taos.cfg"
    if not cfg.is_file() or cfg.read_text() != text:
        folder.mkdir(mode=0o700, exist_ok=True)
        partial = folder / f"taos.cfg.{os.getpid()}"
        partial.write_text(text)
        partial.replace(cfg)
    return str(folder)


EXECUTE_BUDGET_BYTES = 16 * 1024 * 1024  # bound bytes one execute sends at most


def _varchar(values: Sequence[Any]) -> tuple[Any, list[int], int]:
    """A string column as one fixed-width buffer (rows x the longest value, padded with
    NULs), each row's length in bytes, and that width. All-ASCII text (most payloads) is
    padded as str and encoded once, not value by value."""
    texts = [str(value) for value in values]
    if all(map(str.isascii, texts)):
        lengths = list(map(len, texts))
        width = max(1, *lengths)
        data = "".join([text.ljust(width, "\0") for text in texts]).encode()
    else:
        encoded = [text.encode() for text in texts]
        lengths = list(map(len, encoded))
        width = max(1, *lengths)
        data = b"".join([value.ljust(width, b"\0") for value in encoded])
    return (ctypes.c_char * len(data)).from_buffer_copy(data), lengths, width


def _numbers(code: str, ctype: Any, values: Sequence[Any]) -> Any:
    """A ctypes array over an ``array.array`` of the values (which it keeps alive), built
    in C: ``(ctype * n)(*values)`` converts value by value, in 5x the time."""
    owner = array.array(code, values)
    return (ctype * len(owner)).from_buffer(owner)


def _columns(taos: Any, columns: Sequence[Column]) -> tuple[Any, list[Any]]:
    """TAOS_MULTI_BIND structs of the columns, and the buffers they point into (to be kept
    alive until executed): integers as one int64 array (INT: int32), strings as one
    fixed-width buffer (rows x the longest value, as libtaos reads it) with a length per
    row."""
    field = taos.constants.FieldType
    binds = taos.new_multi_binds(len(columns))
    keep: list[Any] = []
    for bind, column in zip(binds, columns, strict=True):
        n = len(column.values)
        if column.type is ColumnType.VARCHAR:
            buffer, widths, width = _varchar(column.values)
            lengths = _numbers("i", ctypes.c_int32, widths)
            bind.buffer_type = field.C_BINARY
            bind.buffer_length = width
            bind.length = ctypes.cast(lengths, ctypes.POINTER(ctypes.c_int32))
            keep.append(lengths)
        elif column.type is ColumnType.DOUBLE:
            buffer = _numbers("d", ctypes.c_double, column.values)
            bind.buffer_type = field.C_DOUBLE
            bind.buffer_length = ctypes.sizeof(ctypes.c_double)
        elif column.type is ColumnType.INT:
            buffer = _numbers("i", ctypes.c_int32, column.values)
            bind.buffer_type = field.C_INT
            bind.buffer_length = ctypes.sizeof(ctypes.c_int32)
        else:  # TIMESTAMP (raw epoch values in the database's precision) or BIGINT
            buffer = _numbers("q", ctypes.c_int64, column.values)
            timestamp = column.type is ColumnType.TIMESTAMP
            bind.buffer_type = field.C_TIMESTAMP if timestamp else field.C_BIGINT
            bind.buffer_length = ctypes.sizeof(ctypes.c_int64)
        nulls = ctypes.create_string_buffer(n)  # no NULLs: n zero bytes
        bind.buffer = ctypes.cast(buffer, ctypes.c_void_p)
        bind.is_null = ctypes.cast(nulls, ctypes.c_char_p)
        bind.num = n
        keep += [buffer, nulls]
    return binds, keep


class NativeSession:
    """taospy over libtaos (port 6030). Errors carry ``errno``, the raw negative code."""

    def __init__(self, taos: Any, conn: Any) -> None:
        self._taos = taos
        self._conn = conn
        self._statements: dict[str, Any] = {}
        self._lib: blocks.Lib | None = None  # made at the first query_columns
        self._helper: ThreadPoolExecutor | None = None  # made at the first insert_many of 2+
        self.endpoint: tuple[str, int] | None = None  # the one connected to

    @classmethod
    def open(cls, options: TDengineOptions) -> NativeSession:
        try:
            import taos
        except Exception as exc:  # taospy raises its own InterfaceError when libtaos is missing
            raise ConfigError(f"{NATIVE_MISSING} ({type(exc).__name__}: {exc})") from exc
        session = cls(taos, None)
        config = client_config_dir(options)
        for n, (host, port) in enumerate(options.endpoints, start=1):
            # The first endpoint that answers: the client learns the cluster's other nodes
            # from it, but its first connect needs a live one.
            try:
                with session._translated("connect"):
                    session._conn = taos.connect(
                        host=host,
                        port=port,
                        user=options.user,
                        password=options.password,
                        config=config,
                    )
            except ConnectionLost:
                if n == len(options.endpoints):
                    raise
                continue
            session.endpoint = (host, port)
            return session
        raise AssertionError("a URL has at least one endpoint")

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        try:
            yield
        except self._taos.error.Error as exc:
            raise translate(
                action,
                exc,
                int(exc.errno) & 0xFFFF,
                connection_error=isinstance(exc, self._taos.error.ConnectionError),
            ) from exc

    def execute(self, sql: str) -> int:
        with self._translated("execute"):
            result = self._conn.query(sql)
            try:
                return int(result.affected_rows)
            finally:
                result.close()

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with self._translated("query"):
            result = self._conn.query(sql)
            try:
                return list(result.fetch_all())
            finally:
                result.close()

    def query_columns(self, sql: str, kinds: Sequence[blocks.Kind]) -> list[list[Any]]:
        """As :meth:`query`, read a block at a time (:mod:`.blocks`), not value by value."""
        if self._lib is None:
            self._lib = blocks.Lib(self._taos.cinterface._libtaos)
        with self._translated("query"):
            result = self._conn.query(sql)  # raises on a failed query, freeing it
            try:
                return blocks.columns(self._lib, result._result, kinds)
            except blocks.BlockError as exc:
                raise self._taos.error.ProgrammingError(str(exc), exc.code) from exc
            finally:
                result.close()

    def _statement(self, sql: str) -> Any:
        """The prepared statement of ``sql`` on this connection (prepared once, reused)."""
        stmt = self._statements.get(sql)
        if stmt is None:
            stmt = self._statements[sql] = self._conn.statement(sql)
        return stmt

    def _checked(self, stmt: Any, code: int) -> None:
        if code != 0:
            message = self._taos.cinterface.taos_stmt_errstr(stmt._stmt)
            raise self._taos.error.StatementError(msg=message, errno=code)

    def insert(self, sql: str, batches: Sequence[Batch]) -> int:
        """Binds every batch on the connection's prepared statement, then executes once:
        one submit per call to each vnode its subtables live in (libtaos copies the bound
        values as each batch is added). A call binding more than EXECUTE_BUDGET_BYTES
        executes each time it has bound that much.

        The stmt calls go to libtaos directly (``taos.cinterface._libtaos``, as taospy's own
        wrappers do): taospy's wrappers look their caller up with ``inspect.stack()`` on every
        call (about 3 ms each), and its column binders convert value by value in Python. The
        columns are bound here as TAOS_MULTI_BIND arrays built in one pass (:func:`_columns`).
        """
        return self.insert_many([(sql, batches)])[0]

    def insert_many(self, inserts: Sequence[tuple[str, Sequence[Batch]]]) -> list[int]:
        """As :meth:`insert` for each (distinct) statement, bound in turn; their last
        executes run at once, the first in this thread and the others on a helper thread
        of the session (libtaos waits for the vnodes' fsyncs without the GIL), so two
        submits wait about as long as one."""
        lib = self._taos.cinterface._libtaos
        with self._translated("insert"):
            bound: list[tuple[str, Any, int, bool]] = []  # sql, stmt, rows before, pending
            try:
                for sql, batches in inserts:
                    stmt = self._statement(sql)
                    before = int(lib.taos_stmt_affected_rows(stmt._stmt))
                    bound.append((sql, stmt, before, False))  # listed first: closed if it fails
                    bound[-1] = (sql, stmt, before, self._bind(stmt, batches))
                ready = [stmt for _, stmt, _, pending in bound if pending]
                for stmt, code in zip(ready, self._execute_all(ready), strict=True):
                    self._checked(stmt, code)
                # taos_stmt_affected_rows adds up every execute of the statement.
                return [
                    int(lib.taos_stmt_affected_rows(stmt._stmt)) - before
                    for _, stmt, before, _ in bound
                ]
            except BaseException:
                for sql, stmt, _, _ in bound:
                    self._statements.pop(sql, None)  # state unknown: prepare anew next time
                    with suppress(self._taos.error.Error):
                        stmt.close()
                raise

    def _bind(self, stmt: Any, batches: Sequence[Batch]) -> bool:
        """Binds the batches, executing each time EXECUTE_BUDGET_BYTES are bound; whether
        some are bound and not yet executed."""
        lib = self._taos.cinterface._libtaos
        handle = stmt._stmt
        pending = 0
        for batch in batches:
            tags = self._taos.new_bind_params(len(batch.tags))
            for bind, tag in zip(tags, batch.tags, strict=True):
                bind.binary(tag)
            name = ctypes.c_char_p(batch.table.encode())
            self._checked(stmt, lib.taos_stmt_set_tbname_tags(handle, name, tags))
            binds, keep = _columns(self._taos, batch.columns)
            self._checked(stmt, lib.taos_stmt_bind_param_batch(handle, binds))
            self._checked(stmt, lib.taos_stmt_add_batch(handle))
            pending += sum(map(ctypes.sizeof, keep))
            del keep  # libtaos copied the values
            if pending >= EXECUTE_BUDGET_BYTES:
                self._checked(stmt, lib.taos_stmt_execute(handle))
                pending = 0
        return pending > 0

    def _execute_all(self, stmts: Sequence[Any]) -> list[int]:
        """``taos_stmt_execute`` of each statement, all at once; their return codes."""
        execute = self._taos.cinterface._libtaos.taos_stmt_execute
        if len(stmts) <= 1:
            return [execute(stmt._stmt) for stmt in stmts]
        if self._helper is None:
            self._helper = ThreadPoolExecutor(1, thread_name_prefix="mdcache-taos-submit")
        others = [self._helper.submit(execute, stmt._stmt) for stmt in stmts[1:]]
        first = execute(stmts[0]._stmt)
        return [first, *(int(other.result()) for other in others)]

    def close(self) -> None:
        statements, self._statements = self._statements, {}
        for stmt in statements.values():
            with suppress(self._taos.error.Error):
                stmt.close()
        if self._helper is not None:
            self._helper.shutdown()
            self._helper = None
        if self._conn is not None:
            with suppress(self._taos.error.Error):
                self._conn.close()
            self._conn = None


class WebSocketSession:
    """taos-ws-py through taosAdapter (port 6041). Errors carry ``[0xXXXX]`` in their text."""

    def __init__(self, taosws: Any, conn: Any) -> None:
        self._taosws = taosws
        self._conn = conn

    @classmethod
    def open(cls, options: TDengineOptions) -> WebSocketSession:
        try:
            import taosws
        except ImportError as exc:
            raise ConfigError(f"{WEBSOCKET_MISSING} ({exc})") from exc
        session = cls(taosws, None)
        with session._translated("connect"):
            session._conn = taosws.connect(
                host=options.host,
                port=options.port,
                user=options.user,
                password=options.password,
                **dict(options.ws_params),
            )
        return session

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        # InterfaceError does not derive from taosws.Error.
        try:
            yield
        except (self._taosws.Error, self._taosws.InterfaceError) as exc:
            raise translate(
                action,
                exc,
                code_of(str(exc)),
                connection_error=isinstance(exc, self._taosws.ConnectionError),
            ) from exc

    def execute(self, sql: str) -> int:
        with self._translated("execute"):
            return int(self._conn.execute(sql))

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with self._translated("query"):
            return [tuple(row) for row in self._conn.query(sql)]

    def query_columns(self, sql: str, kinds: Sequence[blocks.Kind]) -> list[list[Any]]:
        rows = self.query(sql)
        return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in kinds]

    def _column(self, column: Column) -> Any:
        values = list(column.values)
        if column.type is ColumnType.TIMESTAMP:
            return self._taosws.millis_timestamps_to_column(values)
        if column.type is ColumnType.BIGINT:
            return self._taosws.big_ints_to_column(values)
        if column.type is ColumnType.INT:
            return self._taosws.ints_to_column(values)
        if column.type is ColumnType.DOUBLE:
            return self._taosws.doubles_to_column(values)
        return self._taosws.varchar_to_column(values)

    def insert(self, sql: str, batches: Sequence[Batch]) -> int:
        with self._translated("insert"):
            stmt = self._conn.statement()
            try:
                stmt.prepare(sql)
                written = 0
                for batch in batches:
                    tags = [self._taosws.varchar_to_tag(tag) for tag in batch.tags]
                    stmt.set_tbname_tags(batch.table, tags)
                    stmt.bind_param([self._column(c) for c in batch.columns])
                    stmt.add_batch()
                    written += int(stmt.execute())  # rows of this execute
                return written
            finally:
                stmt.close()

    def insert_many(self, inserts: Sequence[tuple[str, Sequence[Batch]]]) -> list[int]:
        return [self.insert(sql, batches) for sql, batches in inserts]

    def close(self) -> None:
        if self._conn is not None:
            with suppress(self._taosws.Error, self._taosws.InterfaceError):
                self._conn.close()
            self._conn = None


def open_session(options: TDengineOptions) -> Session:
    """A new connection of the URL's kind, on no database (every name is qualified)."""
    if options.scheme == NATIVE:
        return NativeSession.open(options)
    return WebSocketSession.open(options)
