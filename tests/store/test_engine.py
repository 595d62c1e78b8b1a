"""What `DATABASE_URL` / `DATABASE_PATH` select: the engine and its async driver."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy.exc import IntegrityError

from config import Settings
from store import Store
from store import engine as engine_module
from store.engine import database_url, libpq_conninfo
from tests.support import make_settings


@pytest.mark.parametrize(
    ("database", "driver", "name"),
    [
        ("var/app.sqlite3", "sqlite+aiosqlite", "var/app.sqlite3"),
        (":memory:", "sqlite+aiosqlite", None),
        ("sqlite:////srv/app.sqlite3", "sqlite+aiosqlite", "/srv/app.sqlite3"),
        ("sqlite+aiosqlite:///app.db", "sqlite+aiosqlite", "app.db"),
        ("postgresql://app:pw@db.internal:5433/onboarding", "postgresql+psycopg", "onboarding"),
        ("postgres://app@db/onboarding", "postgresql+psycopg", "onboarding"),
        ("postgresql+psycopg://app@db/onboarding", "postgresql+psycopg", "onboarding"),
    ],
)
def test_the_database_setting_selects_the_engine_and_driver(
    database: str, driver: str, name: str | None
) -> None:
    url = database_url(database)
    assert (url.drivername, url.database) == (driver, name)


@pytest.mark.parametrize(
    "database", ["mysql://db/app", "postgresql+asyncpg://db/app", "sqlite+pysqlite:///x.db"]
)
def test_other_databases_and_drivers_are_refused(database: str) -> None:
    with pytest.raises(ValueError, match="unsupported database URL scheme"):
        database_url(database)


def test_database_url_wins_over_the_sqlite_path(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings: Settings = make_settings(tmp_path)
    assert settings.database == str(tmp_path / "app.sqlite3")
    url = "postgresql://app@db/onboarding"
    assert make_settings(tmp_path, database_url=url).database == url


def test_the_listener_connects_with_the_same_credentials() -> None:
    url = database_url("postgresql://app:s3cret@db.internal:5433/onboarding?sslmode=require")
    assert libpq_conninfo(url) == (
        "postgresql://app:s3cret@db.internal:5433/onboarding?sslmode=require"
    )


@pytest.mark.anyio
async def test_sqlite_connections_get_wal_a_busy_timeout_and_full_sync(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = await Store.open(str(tmp_path / "app.sqlite3"))
    async with store._engine.connect() as connection:
        pragmas = [
            (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")
        ]
    await store.close()
    assert pragmas == ["wal", 5000, 2, 1]  # synchronous 2 = FULL


@pytest.mark.anyio
async def test_a_sqlite_statement_is_one_trip_to_its_connections_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read is one trip to the aiosqlite thread and a write two (the statement, the commit),
    with rows, row counts and errors as SQLAlchemy gives them."""
    trips: list[str] = []
    real = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(getattr(fn, "__name__", "?"))
        return await real(self, fn, *args, **kwargs)

    store = await Store.open(str(tmp_path / "app.sqlite3"))
    try:
        await store.record_connection("acme", "conn_1", institution_name="Chase")
        await store.save_state("acme", "conn_1", {"id": "conn_1", "status": "draft"}, "poll")
        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
        state = await store.reload_state("conn_1")
        assert state is not None and state.resource["status"] == "draft"
        assert trips == ["_run"]
        trips.clear()
        await store.release_refresh("conn_1")
        assert trips == ["_run", "commit"]

        async with store._engine.connect() as connection:
            await connection.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            inserted = await connection.exec_driver_sql("INSERT INTO t (v) VALUES ('a'), ('b')")
            assert inserted.rowcount == 2
            with pytest.raises(IntegrityError):
                await connection.exec_driver_sql("INSERT INTO t (id, v) VALUES (1, 'c')")
            rows = (await connection.exec_driver_sql("SELECT id, v FROM t ORDER BY id")).all()
            assert [tuple(row) for row in rows] == [(1, "a"), (2, "b")]
    finally:
        await store.close()


@pytest.mark.anyio
async def test_sqlite_writes_of_one_process_take_turns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent writes never meet inside SQLite (where the loser would sleep in the busy
    handler): with no busy timeout at all, none of them is refused as locked."""
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 0)
    store = await Store.open(str(tmp_path / "app.sqlite3"))
    try:
        ids = [f"conn_{n}" for n in range(40)]
        await asyncio.gather(*(store.record_connection("acme", cid) for cid in ids))
        await asyncio.gather(
            *(store.save_state("acme", cid, {"id": cid, "status": "draft"}, "poll") for cid in ids),
            *(store.settle_connection("acme", cid) for cid in ids),
        )
        states = [await store.reload_state(cid) for cid in ids]
        assert all(state is not None and state.version == 1 for state in states)
    finally:
        await store.close()
