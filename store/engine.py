"""Which database the store talks to, and opening it: a SQLite file (aiosqlite) or Postgres
(psycopg 3), both through one SQLAlchemy async engine.

`database_url(...)` accepts what the settings hold: a `sqlite:///…` or `postgresql://…` URL
(`DATABASE_URL`), or a plain SQLite file path (`DATABASE_PATH`), and picks the async driver.
SQLite connections get the pragmas the app relies on: WAL, a busy timeout and
`synchronous=FULL`, so a write is acknowledged to the user only after its commit is durable;
their statements each make one trip to the connection's thread (`store.sqlite_driver`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from sqlalchemy import URL, event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from store import sqlite_driver

SQLITE_DRIVER = "sqlite+aiosqlite"
POSTGRES_DRIVER = "postgresql+psycopg"
#: Milliseconds a SQLite connection waits for another writer before failing.
SQLITE_BUSY_TIMEOUT_MS = 5000


def database_url(database: str) -> URL:
    """The SQLAlchemy URL, with its async driver, for a URL or a SQLite file path."""
    if "://" not in database:
        return URL.create(SQLITE_DRIVER, database=None if database == ":memory:" else database)
    url = make_url(database)
    backend, _, driver = url.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "aiosqlite"):
        return url.set(drivername=SQLITE_DRIVER)
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        return url.set(drivername=POSTGRES_DRIVER)
    raise ValueError(
        f"unsupported database URL scheme {url.drivername!r}: use sqlite:///path or postgresql://…"
    )


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def sqlite_file(url: URL) -> str | None:
    """The SQLite file of `url`, or None for an in-memory database."""
    if url.database in (None, "", ":memory:"):
        return None
    return str(Path(str(url.database)).resolve())


def create_engine(url: URL) -> AsyncEngine:
    """An async engine for `url`; SQLite files get their parent directory and pragmas."""
    if not is_sqlite(url):
        return create_async_engine(url)
    file = sqlite_file(url)
    module = sqlite_driver.dbapi()  # one trip to the connection's thread per statement
    if file is None:
        # One shared connection: a second one would see another, empty, in-memory database.
        engine = create_async_engine(url, poolclass=StaticPool, module=module)
    else:
        Path(file).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, module=module)
    event.listen(engine.sync_engine, "connect", functools.partial(_sqlite_pragmas, wal=bool(file)))
    _skip_idle_rollbacks(engine)
    return engine


def _skip_idle_rollbacks(engine: AsyncEngine) -> None:
    """Python's sqlite3 opens no transaction for a read, yet every pooled use ends with a
    ROLLBACK that makes a round trip to the connection's thread: skip it when no transaction is
    open (the same check sqlite3 itself makes, done before the trip)."""
    dialect = engine.dialect
    rollback = dialect.do_rollback

    def do_rollback(dbapi_connection: Any) -> None:
        if dbapi_connection.driver_connection.in_transaction:
            rollback(dbapi_connection)

    setattr(dialect, "do_rollback", do_rollback)  # noqa: B010 (an instance override)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, wal: bool) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    if wal:
        cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def libpq_conninfo(url: URL) -> str:
    """A libpq connection string (URI form) for a Postgres `url`, for psycopg used directly."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)
