"""What `DATABASE_URL` / `DATABASE_PATH` select: the engine and its async driver."""

from __future__ import annotations

import pytest

from config import Settings
from store import Store
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
