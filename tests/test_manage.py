"""The operator entry point: run as an operator would (`python manage.py ...`), and its Waycore
commands in-process against the sandbox (keys minted with chosen scopes, webhook deliveries
caught without a network)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from starlette.datastructures import Secret

import manage as manage_py
from config import Settings
from store import Store
from store import migrate as store_migrate
from store.engine import create_engine, database_url
from store.schema import drafts
from tests.postgres import PostgresServer
from tests.support import make_settings
from waycore.sandbox import Sandbox, SandboxConfig
from waycore.webhooks import verify

SIX_SCOPES = (
    "entities:read",
    "entities:write",
    "connections:read",
    "connections:write",
    "accounts:read",
    "transactions:read",
)

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
        drafts = [d.id for d in await store.open_drafts("acme", 100)]
        await store.close()
        return drafts

    assert asyncio.run(left()) == [fresh_id]


def test_events_list_shows_pending_and_dead_ones_and_retry_queues_a_dead_one_again(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "app.sqlite3")
    env = {"SECRET_KEY": "k" * 40, "DATABASE_PATH": path, "DATABASE_URL": ""}

    async def seed() -> None:
        store = await Store.open(path)
        for event_id in ("hev_dead", "hev_pending", "hev_sent"):
            await store.queue_host_event(event_id, "connection.removed", "acme", "{}", 1.0)
        assert await store.claim_host_event("snd_1", 1.0, 31.0) is not None  # hev_dead
        await store.host_event_failed(
            "hev_dead", "snd_1", attempts=8, error="HTTP 503", retry_at=None
        )
        await store.host_event_delivered("hev_sent", 1, 2.0)
        await store.close()

    asyncio.run(seed())
    listed = run("events", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["hev_dead", "dead"],
        ["hev_pending", "pending"],
    ]
    assert "attempts=8" in lines[0] and "last=HTTP 503" in lines[0]
    assert "hev_sent" in run("events", "list", "--state", "all", env=env).stdout

    retried = run("events", "retry", "hev_dead", env=env)
    assert retried.returncode == 0 and "hev_dead queued again" in retried.stdout
    assert "no HOST_EVENTS_URL" in retried.stdout
    again = run("events", "retry", "hev_dead", "hev_nope", env=env)
    assert again.returncode == 1 and "hev_nope is not a dead host event" in again.stderr
    pending = run("events", "list", "--state", "pending", env=env).stdout
    assert "hev_dead  pending" in pending and "attempts=0" in pending


def test_an_unknown_command_is_a_usage_error() -> None:
    done = run("frobnicate", env={"SECRET_KEY": "k" * 40})
    assert done.returncode == 2 and "invalid choice" in done.stderr


# ---------------------------------------------------------------------------- against a Waycore

SANDBOX_ROOT = "way_test_manageroot_0123456789abcdef"
RECEIVER = "https://app.example/webhooks/waycore"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[Sandbox, list[httpx.Request]]]:
    """A sandbox whose webhook deliveries land in a list (no network), ticked by the test."""
    delivered: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        delivered.append(request)
        return httpx.Response(200)

    config = SandboxConfig(api_key=SANDBOX_ROOT, tick_seconds=3600)
    async with Sandbox(config, delivery_transport=httpx.MockTransport(receive)) as started:
        yield started, delivered


def waycore_settings(tmp_path: Path, key: str, **overrides: Any) -> Settings:
    return replace(
        make_settings(tmp_path),
        waycore_base_url="http://sandbox.test",
        waycore_api_key=Secret(key),
        **overrides,
    )


async def manage(
    sandbox: Sandbox, settings: Settings, *argv: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    code = await manage_py.run(
        argv, settings, waycore_transport=httpx.ASGITransport(app=sandbox.app)
    )
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.anyio
async def test_check_passes_with_every_scope(
    sandbox: tuple[Sandbox, list[httpx.Request]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    box, _ = sandbox
    settings = waycore_settings(tmp_path, SANDBOX_ROOT, support_email="help@acme.example")
    code, output, _ = await manage(box, settings, "check", capsys=capsys)
    assert code == 0, output
    assert "ok    Waycore is reachable and accepts the key" in output
    for scope in SIX_SCOPES:
        assert f"ok    scope {scope}\n" in output
    assert "support contact: help@acme.example" in output
    assert SANDBOX_ROOT not in output
    # nothing was created by the write checks
    assert [r.status for r in box.requests if r.method == "POST"] == [400, 400, 400]


@pytest.mark.anyio
async def test_check_names_each_missing_scope(
    sandbox: tuple[Sandbox, list[httpx.Request]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    box, _ = sandbox
    key = box.mint_key([s for s in SIX_SCOPES if s not in ("connections:write", "accounts:read")])
    code, output, _ = await manage(box, waycore_settings(tmp_path, key), "check", capsys=capsys)
    assert code == 1
    failed = [line for line in output.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 2
    assert failed[0].startswith("FAIL  scope connections:write is missing")
    assert "lacks the `connections:write` scope" in failed[0]  # what Waycore's 403 said
    assert failed[1].startswith("FAIL  scope accounts:read is missing")
    assert "note  scope webhooks:read is missing (only `manage.py webhooks` needs it)" in output
    assert key not in output


@pytest.mark.anyio
async def test_check_reports_a_refused_key_and_an_unreachable_waycore(
    sandbox: tuple[Sandbox, list[httpx.Request]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    box, _ = sandbox
    wrong = waycore_settings(tmp_path, "way_test_nobody_0000")
    code, output, _ = await manage(box, wrong, "check", capsys=capsys)
    assert code == 1 and "FAIL  Waycore refused the API key (401)" in output

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    code = await manage_py.run(
        ["check"],
        waycore_settings(tmp_path, SANDBOX_ROOT),
        waycore_transport=httpx.MockTransport(down),
    )
    assert code == 1 and "FAIL  Waycore is not reachable" in capsys.readouterr().out


@pytest.mark.anyio
async def test_webhooks_register_list_and_test_round_trip(
    sandbox: tuple[Sandbox, list[httpx.Request]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    box, delivered = sandbox
    settings = waycore_settings(tmp_path, SANDBOX_ROOT, webhook_url=RECEIVER)
    code, output, _ = await manage(box, settings, "webhooks", "register", capsys=capsys)
    assert code == 0, output
    secret = next(
        line.split("=", 1)[1] for line in output.splitlines() if line.startswith("WAYCORE_")
    )
    assert secret.startswith("whsec_")
    # registering again replaces the registration instead of adding a second one
    code, again, _ = await manage(box, settings, "webhooks", "register", capsys=capsys)
    secret = next(line.split("=", 1)[1] for line in again.splitlines() if line.startswith("WAY"))

    code, listing, _ = await manage(box, settings, "webhooks", "list", capsys=capsys)
    (line,) = listing.splitlines()
    assert RECEIVER in line and "active" in line and "test" in line
    assert "whsec_" not in listing

    code, tested, _ = await manage(box, settings, "webhooks", "test", capsys=capsys)
    assert code == 0 and "queued a test event" in tested
    assert [r.path for r in box.requests if r.path.endswith("/test")] == [
        f"/v1/webhooks/{line.split()[0]}/test"
    ]
    await box.tick()
    (delivery,) = delivered
    assert str(delivery.url) == RECEIVER
    verify(secret, delivery.headers["waycore-signature"], delivery.content)
    assert json.loads(delivery.content)["type"] == "test"


@pytest.mark.anyio
async def test_webhook_commands_need_a_configured_waycore(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await manage_py.run(["webhooks", "list"], make_settings(tmp_path))
    assert code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "WAYCORE_BASE_URL" in line


@pytest.mark.anyio
async def test_check_with_the_embedded_sandbox_checks_settings_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await manage_py.run(["check"], make_settings(tmp_path))
    output = capsys.readouterr().out
    assert code == 0 and "the embedded sandbox" in output
    assert "note  no HOST_EVENTS_URL" in output


# ---------------------------------------------------------------------------- no SECRET_KEY


@pytest.mark.parametrize("program", [["manage.py", "check"], ["server.py"]])
def test_without_a_secret_key_it_is_one_line_and_status_2(program: list[str]) -> None:
    # An empty value wins over the worktree's .env, so the key is really missing here.
    done = subprocess.run(
        [sys.executable, *program],
        cwd=ROOT,
        env={**os.environ, "SECRET_KEY": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert "SECRET_KEY is not set" in line and "Traceback" not in done.stderr


def test_a_missing_secret_key_in_process_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import config
    import server

    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setattr(server, "load_settings", lambda: config.load_settings(env_file=None))
    with pytest.raises(SystemExit) as exited:
        server.main()
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("server.py: configuration error: SECRET_KEY")


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
