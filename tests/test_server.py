"""Starting the app as an operator would (`python server.py`) against a Postgres database that
has not been migrated: it refuses, in one line, before serving anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from store import migrate as store_migrate
from tests.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.postgres
def test_the_app_refuses_to_start_on_an_unmigrated_postgres(postgres: PostgresServer) -> None:
    url = postgres.create_database("unmigrated")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAYCORE_")}
    env.update(SECRET_KEY="k" * 40, DATABASE_URL=url, PORT="1", WAYCORE_BASE_URL="")
    done = subprocess.run(
        [sys.executable, "server.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "server.py: the database schema has never been migrated, this code needs revision"
        f" {store_migrate.head()}: run `python manage.py migrate`"
    ]
    assert done.stdout == ""
