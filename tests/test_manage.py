"""The operator entry point, run as an operator would: `python manage.py ...`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from store import Store
from store import migrate as store_migrate
from store.engine import create_engine, database_url
from store.schema import drafts
from tests.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_drafts_purge_deletes_only_expired_drafts(tmp_path: Path) -> None:
    path = str(tmp_path / "app.sqlite3")

    async def seed() -> tuple[str, str]:
        store = await Store.open(path)
        old = await store.create_draft("acme", "u-alice", institution_id="chase")
        fresh = await store.create_draft("acme", "u-alice", institution_id="apple_bank")
        await store._write(
            update(drafts).where(drafts.c.id == old.id).values(updated_at=time.time() - 31 * 86400)
        )
        await store.close()
        return old.id, fresh.id

    old_id, fresh_id = asyncio.run(seed())
    done = run(
        "drafts", "purge", env={"SECRET_KEY": "k" * 40, "DATABASE_PATH": path, "DATABASE_URL": ""}
    )
    assert done.returncode == 0, done.stderr
    assert "purged 1 expired draft" in done.stdout

    async def left() -> list[str]:
        store = await Store.open(path)
        drafts = [d.id for d in await store.list_drafts("acme")]
        await store.close()
        return drafts

    assert asyncio.run(left()) == [fresh_id]


def test_an_unknown_command_is_a_usage_error() -> None:
    done = run("frobnicate", env={"SECRET_KEY": "k" * 40})
    assert done.returncode == 2 and "invalid choice" in done.stderr


@pytest.mark.postgres
def test_migrate_brings_a_postgres_database_to_the_code(postgres: PostgresServer) -> None:
    url = postgres.create_database("manage")
    env = {"SECRET_KEY": "k" * 40, "DATABASE_URL": url}
    check = run("migrate", "--check", env=env)
    assert check.returncode == 1
    assert check.stdout.strip() == (
        f"database at revision (none), this code needs {store_migrate.head()}"
    )
    done = run("migrate", env=env)
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.strip() == f"database migrated from revision (none) to {store_migrate.head()}"
    )
    again = run("migrate", env=env)
    assert again.stdout.strip() == f"database already at revision {store_migrate.head()}"

    async def revision() -> str | None:
        engine = create_engine(database_url(url))
        try:
            return await store_migrate.current(engine)
        finally:
            await engine.dispose()

    assert asyncio.run(revision()) == store_migrate.head()
