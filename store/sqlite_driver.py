"""SQLite statements in one trip to the connection's thread.

aiosqlite runs each SQLite connection in a thread of its own, and every call to it is a trip
there and back (a queue put, the thread waking, the event loop woken with the answer). SQLAlchemy's
aiosqlite adapter makes four such trips per statement: open a cursor, execute, fetch the rows,
close the cursor. On this app's hot paths (a status check's claim and save, a cache miss) the
trips, not SQLite, were most of a statement's time: about 0.6 ms for a one-row read.

`dbapi()` is the same adapter, except that a statement is executed, fetched and closed in one
function run in the connection's thread: one trip per statement (a commit is one more). It is
passed to the engine as its DBAPI module (`create_async_engine(..., module=dbapi())`), so
everything else (the pool, transactions, errors, server-side cursors) is SQLAlchemy's own.
Written against `sqlalchemy>=2.0.30,<2.1` and `aiosqlite>=0.21,<0.23` (the pins in
pyproject.toml); `tests/store/test_engine.py` checks the trips.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)


def _run(
    connection: sqlite3.Connection, operation: str, parameters: Any
) -> tuple[Any, list[Any], int | None, int]:
    """In the connection's thread: execute, fetch every row, close. Returns the cursor's
    description, its rows, and (for a statement without rows) its lastrowid and rowcount."""
    cursor = connection.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        if cursor.description:
            return cursor.description, cursor.fetchall(), -1, -1
        return None, [], cursor.lastrowid, cursor.rowcount
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        try:
            description, rows, lastrowid, rowcount = self.await_(
                connection._execute(_run, connection._conn, operation, parameters)  # type: ignore[no-untyped-call]
            )
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self.description = description
        self.lastrowid = lastrowid
        self.rowcount = rowcount
        self._rows.clear()
        self._rows.extend(rows)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()

    def cursor(self, server_side: bool = False) -> AsyncAdapt_aiosqlite_cursor:
        if server_side:
            return super().cursor(server_side=True)
        return OneTripCursor(self)


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        if type(adapted) is AsyncAdapt_aiosqlite_connection:
            return OneTripConnection(self, adapted._connection)
        return adapted  # the sync fallback (not used by this app) keeps its own cursor


def dbapi() -> OneTripDBAPI:
    """The DBAPI module for a SQLite engine of the store."""
    return OneTripDBAPI(aiosqlite, sqlite3)
