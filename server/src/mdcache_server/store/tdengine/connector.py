"""One small session interface over TDengine's two Python connectors.

:class:`NativeSession` uses taospy (``import taos``, which needs libtaos.so);
:class:`WebSocketSession` uses taos-ws-py (``import taosws``, self-contained,
through taosAdapter). Each driver is imported only when a session of its kind is
opened, and every driver error is translated here, where the driver is called
(see :mod:`~mdcache_server.store.tdengine.failures`).

Inserts go through parameter binding (TDengine's stmt API), one subtable per
execute as in TDengine's own examples: table name, tags and rows are bound, so no
caller's string is ever parsed as SQL.
"""

from __future__ import annotations

import enum
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mdcache_server.errors import ConfigError
from mdcache_server.store.tdengine.failures import code_of, translate
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


@dataclass(frozen=True, slots=True)
class Column:
    """One bound column: its type and a value per row."""

    type: ColumnType
    values: Sequence[int] | Sequence[str]


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

    def insert(self, sql: str, batches: Sequence[Batch]) -> int:
        """Binds each batch to the prepared INSERT and executes it; returns rows written."""

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


class NativeSession:
    """taospy over libtaos (port 6030). Errors carry ``errno``, the raw negative code."""

    def __init__(self, taos: Any, conn: Any) -> None:
        self._taos = taos
        self._conn = conn

    @classmethod
    def open(cls, options: TDengineOptions) -> NativeSession:
        try:
            import taos
        except Exception as exc:  # taospy raises its own InterfaceError when libtaos is missing
            raise ConfigError(f"{NATIVE_MISSING} ({type(exc).__name__}: {exc})") from exc
        session = cls(taos, None)
        with session._translated("connect"):
            session._conn = taos.connect(
                host=options.host,
                port=options.port,
                user=options.user,
                password=options.password,
                config=client_config_dir(options),
            )
        return session

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

    def _bind(self, binds: Any, columns: Sequence[Column]) -> None:
        for bind, column in zip(binds, columns, strict=True):
            values = list(column.values)
            if column.type is ColumnType.TIMESTAMP:
                bind.timestamp(values)  # ints are raw epoch values in the database's precision
            elif column.type is ColumnType.BIGINT:
                bind.bigint(values)
            else:
                bind.binary(values)

    def insert(self, sql: str, batches: Sequence[Batch]) -> int:
        with self._translated("insert"):
            stmt = self._conn.statement(sql)
            try:
                for batch in batches:
                    tags = self._taos.new_bind_params(len(batch.tags))
                    for bind, tag in zip(tags, batch.tags, strict=True):
                        bind.binary([tag])
                    stmt.set_tbname_tags(batch.table, tags)
                    binds = self._taos.new_multi_binds(len(batch.columns))
                    self._bind(binds, batch.columns)
                    stmt.bind_param_batch(binds)  # adds the batch
                    stmt.execute()
                # taos_stmt_affected_rows adds up every execute of the statement.
                return int(stmt.affected_rows)
            finally:
                stmt.close()

    def close(self) -> None:
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

    def _column(self, column: Column) -> Any:
        values = list(column.values)
        if column.type is ColumnType.TIMESTAMP:
            return self._taosws.millis_timestamps_to_column(values)
        if column.type is ColumnType.BIGINT:
            return self._taosws.big_ints_to_column(values)
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
