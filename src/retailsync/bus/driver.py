"""Statements of the bus's hot path, run on the database driver under SQLAlchemy's transaction.

Publishing, claiming inbox records, fetching a delivery batch and advancing cursors send one
statement per *batch* but carry one row (or one array element) per *event*. Through
SQLAlchemy each of those rows costs parameter processing in Python (a dict per row, a bind
processor per datetime, ~10 µs per event measured in ``bench/bus.py``), so these statements
go to the driver's cursor of the same connection instead, inside the transaction SQLAlchemy
opened: they commit and roll back with everything else. Values are converted here the way
SQLAlchemy stores them (SQLite: datetimes as ``YYYY-MM-DD HH:MM:SS.ffffff`` text), so rows
written either way read back the same.

PostgreSQL receives batches as one array per column (``unnest``): a multi-row ``VALUES`` list
is a new statement text for every batch size, which psycopg re-parses in Python and the server
re-plans. SQLite receives a multi-row ``VALUES`` list (its statement cache keeps one per batch
size; the parameter limit is far above a batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa

T = TypeVar("T")

Columns = tuple[tuple[str, str], ...]  # (name, PostgreSQL type) in statement order


def is_postgres(conn: sa.Connection) -> bool:
    return conn.dialect.name == "postgresql"


def execute(conn: sa.Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """Run ``sql`` (``?`` placeholders on SQLite, ``%s``/``%b`` on PostgreSQL) on the driver
    connection of ``conn`` and return the rows (tuples; empty without a result)."""
    raw: Any = conn.connection.driver_connection
    if is_postgres(conn):
        with raw.cursor() as cursor:
            cursor.execute(sql, params, binary=True)
            return list(cursor.fetchall()) if cursor.description is not None else []
    cursor = raw.execute(sql, params)
    try:
        return list(cursor.fetchall()) if cursor.description is not None else []
    finally:
        cursor.close()


def executemany(conn: sa.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """One statement for each of ``rows`` (no result), on the driver of ``conn``."""
    if not rows:
        return
    raw: Any = conn.connection.driver_connection
    if is_postgres(conn):
        with raw.cursor() as cursor:
            cursor.executemany(sql, rows)
        return
    raw.executemany(sql, rows).close()


def placeholder(conn: sa.Connection) -> str:
    return "%s" if is_postgres(conn) else "?"


def sqlite_datetime(value: datetime) -> str:
    """A datetime as SQLAlchemy's SQLite ``DateTime`` stores it (wall clock, no offset):
    ``YYYY-MM-DD HH:MM:SS.ffffff``, the first 26 characters of ``isoformat`` (cutting the
    offset off costs less than ``replace(tzinfo=None)`` first; one call per published
    event)."""
    return value.isoformat(" ", "microseconds")[:26]


def db_datetime(conn: sa.Connection, value: datetime) -> Any:
    """``value`` as a driver parameter of a ``DateTime(timezone=True)`` column."""
    return value if is_postgres(conn) else sqlite_datetime(value)


def read_datetime(value: datetime | str) -> datetime:
    """A ``DateTime(timezone=True)`` value read through the driver, as an aware UTC datetime
    (SQLite returns SQLAlchemy's text form, PostgreSQL an aware datetime)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@functools.cache
def sqlite_values_insert(table: str, names: tuple[str, ...], rows: int, tail: str) -> str:
    """``INSERT INTO table (names) VALUES (?, ..), .. <tail>`` for ``rows`` rows."""
    one = "(" + ", ".join("?" * len(names)) + ")"
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES {', '.join([one] * rows)} {tail}"


def pg_unnest_insert(table: str, columns: Columns, tail: str) -> str:
    """``INSERT .. SELECT FROM unnest(<one binary array per column>)`` in the arrays' order."""
    names = ", ".join(name for name, _ in columns)
    arrays = ", ".join(f"%b::{kind}[]" for _, kind in columns)  # %b: binary
    # WITH ORDINALITY + ORDER BY: rows (and sequence values) follow the batch order
    return (
        f"INSERT INTO {table} ({names}) SELECT {names} FROM unnest({arrays}) "
        f"WITH ORDINALITY AS batch({names}, position) ORDER BY position {tail}"
    )


def _sqlite_chunk(conn: sa.Connection, columns: int) -> int:
    """Rows per statement within SQLite's limit on parameters (32,766 by default)."""
    raw: Any = conn.connection.driver_connection
    limit = int(raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    return max(1, min(1000, limit // columns))


def insert_rows(
    conn: sa.Connection,
    table: str,
    columns: Columns,
    rows: Sequence[tuple[Any, ...]],
    tail: str = "",
) -> list[Any]:
    """Insert ``rows`` (tuples in ``columns`` order; datetimes already converted with
    :func:`db_datetime`) with one statement (SQLite: per chunk of rows within its parameter
    limit); returns what ``tail``'s ``RETURNING`` returns, in no particular order."""
    if not rows:
        return []
    if is_postgres(conn):
        sql = pg_unnest_insert(table, columns, tail)
        arrays = [list(values) for values in zip(*rows, strict=True)]
        return execute(conn, sql, arrays)
    names = tuple(name for name, _ in columns)
    chunk = _sqlite_chunk(conn, len(names))
    found: list[Any] = []
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        flat = [value for row in part for value in row]
        found.extend(execute(conn, sqlite_values_insert(table, names, len(part), tail), flat))
    return found


def sqlite_insert_count(
    conn: sa.Connection, table: str, columns: Columns, rows: Sequence[tuple[Any, ...]], tail: str
) -> int:
    """SQLite: insert ``rows`` as :func:`insert_rows` does, without ``RETURNING`` (which
    costs SQLite ~3.5 µs per row); returns how many rows were inserted."""
    names = tuple(name for name, _ in columns)
    chunk = _sqlite_chunk(conn, len(names))
    raw: Any = conn.connection.driver_connection
    inserted = 0
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        flat = [value for row in part for value in row]
        cursor = raw.execute(sqlite_values_insert(table, names, len(part), tail), flat)
        inserted += max(0, cursor.rowcount)
        cursor.close()
    return inserted


@dataclass(frozen=True, slots=True)
class Compiled:
    """A SQLAlchemy statement compiled once for a dialect, run on the driver."""

    sql: str
    names: tuple[str, ...] | None  # parameter order for positional styles; None: by name
    defaults: dict[str, Any]  # values the statement carries itself (e.g. SQLite's OFFSET 0)

    @classmethod
    def of(cls, statement: sa.ClauseElement, dialect: sa.Dialect) -> Compiled:
        compiled: Any = statement.compile(dialect=dialect)
        defaults = {k: v for k, v in compiled.params.items() if v is not None}
        if dialect.positional:
            return cls(compiled.string, tuple(compiled.positiontup or ()), defaults)
        return cls(compiled.string, None, defaults)

    def run(self, conn: sa.Connection, params: dict[str, Any]) -> list[Any]:
        """Rows as tuples; parameters must be plain values (ints, strings)."""
        raw: Any = conn.connection.driver_connection
        merged = {**self.defaults, **params}
        values: Any = merged if self.names is None else [merged[n] for n in self.names]
        if is_postgres(conn):
            with raw.cursor() as cursor:
                cursor.execute(self.sql, values, binary=True)
                return list(cursor.fetchall())
        cursor = raw.execute(self.sql, values)
        try:
            return list(cursor.fetchall())
        finally:
            cursor.close()


SAVEPOINT = "retailsync_handler"


class HandlerSavepoints:
    """The ``SAVEPOINT``s around the handlers of one delivery batch (one at a time).

    Issued on the driver: SQLAlchemy's ``begin_nested()`` compiles the ``SAVEPOINT`` and
    ``RELEASE`` statements anew each time and runs its transaction bookkeeping (measured
    ~60 µs per handler on SQLite, more than the handler's own insert). A handler's savepoint
    is released only when the next handler opens one (``RELEASE ..; SAVEPOINT ..`` in one
    round trip on PostgreSQL) or the batch is done (:meth:`finish`): what runs in between
    (parking, exception records) just joins it, and nothing ever rolls back to a savepoint
    whose handler succeeded. Nested savepoints a handler opened with ``begin_nested()`` and
    left open are closed before its own.
    """

    __slots__ = ("_conn", "_open")

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn
        self._open = False  # a savepoint of a finished handler is not released yet

    def begin(self) -> Any:
        """Open a handler's savepoint; returns what :meth:`end` needs back."""
        conn = self._conn
        outer = conn.get_nested_transaction()
        if not self._open:
            execute(conn, f"SAVEPOINT {SAVEPOINT}")
        elif is_postgres(conn):
            raw: Any = conn.connection.driver_connection
            with raw.cursor() as cursor:  # two commands, one round trip (simple protocol)
                cursor.execute(f"RELEASE SAVEPOINT {SAVEPOINT}; SAVEPOINT {SAVEPOINT}")
        else:
            execute(conn, f"RELEASE SAVEPOINT {SAVEPOINT}")
            execute(conn, f"SAVEPOINT {SAVEPOINT}")
        self._open = True
        return outer

    def end(self, outer: Any, success: bool) -> None:
        """The handler is done: roll its effects back unless ``success``."""
        conn = self._conn
        while (nested := conn.get_nested_transaction()) is not None and nested is not outer:
            if success and nested.is_active:
                nested.commit()
            else:
                nested.rollback()
        if not success:
            execute(conn, f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")

    def finish(self) -> None:
        """Release the last handler's savepoint (before the batch's own statements)."""
        if self._open:
            self._open = False
            execute(self._conn, f"RELEASE SAVEPOINT {SAVEPOINT}")


async def off_loop(work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` in a worker thread, so other tasks of the event loop run while the
    database works. Unlike ``asyncio.to_thread`` it returns only when the work is over, also
    when the caller is cancelled: the work uses a connection the caller will roll back or
    close next, which must not happen while the thread still uses it."""
    future = asyncio.get_running_loop().run_in_executor(None, functools.partial(work, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await future
        raise
