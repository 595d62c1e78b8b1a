"""Bringing a database to the schema this code needs, or refusing to run on an old one.

The migrations are Alembic revisions under `store/migrations/versions/`. `upgrade(engine)` runs
the missing ones in one transaction; on Postgres it first takes an advisory lock, so two
`python manage.py migrate` runs never interleave. `check(engine)` raises `SchemaOutOfDate` (a
one-line message naming the command to run) unless the database is exactly at the head revision.

SQLite files written before Alembic carried their version in `PRAGMA user_version`; such a file
is stamped with the matching revision before upgrading, so its data is kept.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from store.coordination import lock_key

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: `PRAGMA user_version` of pre-Alembic SQLite files -> the revision holding that schema.
LEGACY_SQLITE_VERSIONS = {1: "0001", 2: "0002", 3: "0003"}
#: The advisory lock taken on Postgres while migrating.
MIGRATE_LOCK = "store:migrate"


class SchemaOutOfDate(RuntimeError):
    """The database is not at the schema revision this code needs."""


@functools.cache
def scripts() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def head() -> str:
    """The newest revision: the schema this code is written against."""
    revision = scripts().get_current_head()
    assert revision is not None
    return revision


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _current(connection: Connection) -> str | None:
    heads = MigrationContext.configure(connection).get_current_heads()
    return heads[0] if heads else None


def _describe(revision: str | None) -> str:
    return "has never been migrated" if revision is None else f"is at revision {revision}"


def _adopt_legacy_sqlite(connection: Connection) -> None:
    if connection.dialect.name != "sqlite" or inspect(connection).has_table("alembic_version"):
        return
    version = connection.exec_driver_sql("PRAGMA user_version").scalar()
    if version:
        command.stamp(_config(connection), LEGACY_SQLITE_VERSIONS[int(version)])


def _upgrade(connection: Connection) -> tuple[str | None, str]:
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(lock_key(MIGRATE_LOCK))))
    else:
        # Python's sqlite3 commits each DDL statement on its own; one explicit transaction makes
        # the migration atomic (and spares a disk sync per statement).
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    _adopt_legacy_sqlite(connection)
    before = _current(connection)
    if before == head():
        return before, before
    if before is not None and before not in {rev.revision for rev in scripts().walk_revisions()}:
        raise SchemaOutOfDate(
            f"the database is at revision {before}, which this code does not know"
            " (was it migrated by a newer version?)"
        )
    command.upgrade(_config(connection), "head")
    return before, head()


async def upgrade(engine: AsyncEngine) -> tuple[str | None, str]:
    """Run the missing migrations; returns (revision before, revision now)."""
    async with engine.begin() as connection:
        return await connection.run_sync(_upgrade)


async def current(engine: AsyncEngine) -> str | None:
    """The database's revision (None: never migrated)."""
    async with engine.connect() as connection:
        return await connection.run_sync(_current)


async def check(engine: AsyncEngine) -> None:
    """Raise `SchemaOutOfDate` unless the database is at `head()`."""
    revision = await current(engine)
    if revision != head():
        raise SchemaOutOfDate(
            f"the database schema {_describe(revision)}, this code needs revision {head()}:"
            " run `python manage.py migrate`"
        )
