"""Every store test runs on both engines (the `database` fixture of tests/conftest.py): a
SQLite file and the session's Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from store import Store


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
