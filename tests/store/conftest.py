"""Every store test runs on both engines: a SQLite file and the session's Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from store import Store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """What `Store.open` takes: a SQLite file path, or a migrated, empty Postgres database."""
    if request.param == "sqlite":
        return str(tmp_path / "app.sqlite3")
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    opened = await Store.open(database, draft_ttl_days=30)
    yield opened
    await opened.close()


@pytest.fixture
async def other_store(database: str, store: Store) -> AsyncIterator[Store]:
    """A second app instance's store on the same database."""
    opened = await Store.open(database, draft_ttl_days=30)
    yield opened
    await opened.close()
