"""Shared test setup: anyio on asyncio only, app fixtures over the embedded sandbox, and a
throwaway Postgres cluster (started once per session, only if a test asks for it).

No test reaches a real Waycore: the app runs against its in-process sandbox (or respx), and the
browser tests serve the app on a loopback port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url
from starlette.applications import Starlette
from starlette.testclient import TestClient

from config import Settings
from server import create_app
from store import Store
from store.schema import metadata
from tests.postgres import PostgresServer, PostgresUnavailable, postgres_server
from tests.support import Browser, SandboxHandle, make_settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's Postgres server (see tests/postgres.py); skipped without Postgres, except
    with `CI=true`, where that fails."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(postgres_server())
        except PostgresUnavailable as exc:
            if os.environ.get("CI") == "true":
                pytest.fail(str(exc))
            pytest.skip(str(exc))
        yield server


@pytest.fixture(scope="session")
def postgres_app_database(postgres: PostgresServer) -> str:
    """One migrated database for the session (emptied before each test that uses it)."""
    url = postgres.create_database("app")

    async def migrate() -> None:
        await (await Store.open(url, migrate=True)).close()

    asyncio.run(migrate())
    return url


@pytest.fixture
def postgres_database(postgres_app_database: str) -> str:
    """The URL of a migrated Postgres database with every table empty."""
    tables = ", ".join(f'"{name}"' for name in metadata.tables)
    conninfo = make_url(postgres_app_database).render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {tables}")  # type: ignore[arg-type]
    return postgres_app_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs a test on both engines: what `Store.open` takes, a SQLite file path or the URL of
    a migrated, empty Postgres database."""
    if request.param == "sqlite":
        return str(tmp_path / "app.sqlite3")
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def app(settings: Settings) -> Starlette:
    return create_app(settings)


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def sandbox(client: TestClient, app: Starlette) -> SandboxHandle:
    return SandboxHandle(client, app)


@pytest.fixture
def alice(client: TestClient) -> Browser:
    """Acme's admin."""
    return browser_for(client, "u-alice")


def browser_for(client: TestClient, user_id: str) -> Browser:
    browser = Browser(client)
    browser.sign_in(user_id)
    return browser


@pytest.fixture
def bob(client: TestClient) -> Browser:
    """Acme's member, in a browser of his own (same app, separate cookies)."""
    return browser_for(client, "u-bob")


@pytest.fixture
def carol(client: TestClient) -> Browser:
    """Acme's viewer."""
    return browser_for(client, "u-carol")


@pytest.fixture
def dana(client: TestClient) -> Browser:
    """Globex's admin: another tenant."""
    return browser_for(client, "u-dana")
