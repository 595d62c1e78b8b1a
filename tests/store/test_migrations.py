"""The migrations: they build the schema the queries are written against (on both engines),
adopt a SQLite file from before them, and an out-of-date Postgres database is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from store import SchemaOutOfDate, Store
from store import migrate as store_migrate
from store.engine import create_engine, database_url
from store.schema import metadata
from tests.postgres import PostgresServer

pytestmark = pytest.mark.anyio

#: The schema of the first SQLite store, before Alembic (`PRAGMA user_version = 1`).
PRE_ALEMBIC_SCHEMA = """
CREATE TABLE sessions (sid TEXT PRIMARY KEY, user_id TEXT NOT NULL, tenant_id TEXT NOT NULL,
    created_at REAL NOT NULL, expires_at REAL NOT NULL);
CREATE INDEX sessions_expiry ON sessions (expires_at);
CREATE TABLE entity_map (tenant_id TEXT PRIMARY KEY, entity_id TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL);
CREATE TABLE drafts (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, created_by TEXT NOT NULL,
    institution_id TEXT, institution_name TEXT, portal_url TEXT,
    requested_institution_name TEXT, connection_id TEXT, created_at REAL NOT NULL,
    updated_at REAL NOT NULL);
CREATE INDEX drafts_tenant ON drafts (tenant_id, updated_at);
CREATE INDEX drafts_connection ON drafts (connection_id);
CREATE TABLE connections (connection_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL,
    institution_name TEXT, requested_institution_name TEXT, sync_allowed_at REAL,
    created_at REAL NOT NULL);
CREATE INDEX connections_tenant ON connections (tenant_id);
CREATE TABLE webhook_events (event_id TEXT PRIMARY KEY, type TEXT NOT NULL,
    received_at REAL NOT NULL);
INSERT INTO connections VALUES ('conn_old', 'acme', 'Chase', NULL, NULL, 1700000000.0);
PRAGMA user_version = 1;
"""


async def test_the_migrations_build_the_schema_the_queries_use(database: str) -> None:
    """`database` was migrated from empty (SQLite: by opening it; Postgres: once per session)."""
    await (await Store.open(database)).close()
    engine = create_engine(database_url(database))
    async with engine.connect() as connection:
        differences = await connection.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
        )
    assert await store_migrate.current(engine) == store_migrate.head()
    await engine.dispose()
    assert differences == []


async def test_a_sqlite_file_from_before_the_migrations_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite3"
    with sqlite3.connect(path) as legacy:
        legacy.executescript(PRE_ALEMBIC_SCHEMA)
    legacy.close()
    store = await Store.open(str(path))
    owned = await store.owned_connection("acme", "conn_old")
    await store.settle_connection("acme", "conn_old")  # the column of revision 0002
    settled = await store.owned_connection("acme", "conn_old")
    await store.close()
    assert owned is not None and owned.institution_name == "Chase" and owned.settled_at is None
    assert settled is not None and settled.settled_at is not None


async def test_a_database_migrated_by_newer_code_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "app.sqlite3")
    await (await Store.open(path)).close()
    engine = create_engine(database_url(path))
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    await engine.dispose()
    with pytest.raises(SchemaOutOfDate, match="revision 9999, which this code does not know"):
        await Store.open(path)


@pytest.mark.postgres
async def test_postgres_is_never_migrated_by_opening_and_refused_while_behind(
    postgres: PostgresServer,
) -> None:
    url = postgres.create_database("behind")
    with pytest.raises(SchemaOutOfDate) as refused:
        await Store.open(url)
    assert str(refused.value) == (
        "the database schema has never been migrated, this code needs revision"
        f" {store_migrate.head()}: run `python manage.py migrate`"
    )
    engine = create_engine(database_url(url))
    assert await store_migrate.current(engine) is None  # opening did not migrate it
    assert await store_migrate.upgrade(engine) == (None, store_migrate.head())
    await engine.dispose()
    await (await Store.open(url)).close()
