"""State on a SQLite file survives stopping one sandbox and starting another on the same file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest

from waycore.sandbox import Sandbox, SandboxConfig

from .helpers import BASE_URL, ROOT_KEY, activate, assert_error, auth, walk

pytestmark = pytest.mark.anyio

PASSWORD = "persisted-never-0xC0FFEE"


def _client(sb: Sandbox) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sb.app), base_url=BASE_URL, headers=auth(ROOT_KEY)
    )


async def test_state_survives_a_restart(config: SandboxConfig, tmp_path: Path) -> None:
    db = tmp_path / "sandbox.sqlite3"
    cfg = dataclasses.replace(config, database=str(db))
    async with Sandbox(cfg) as first, _client(first) as client:
        entity = (await client.post("/v1/entities", json={"externalEntityId": "keep"})).json()
        conn = await activate(client, first, entityId=entity["entityId"], institutionId="chase")
        draft = (
            await client.post(
                "/v1/connections", json={"entityId": entity["entityId"], "institutionId": "tide"}
            )
        ).json()
        creds = await client.put(
            f"/v1/connections/{draft['id']}/credentials", json={"password": PASSWORD}
        )
        assert creds.status_code == 200
        assert (await client.put(f"/v1/connections/{conn['id']}/sync")).status_code == 202
        first.advance_clock(cfg.sync_seconds)
        hook = (
            await client.post(
                "/v1/webhooks", json={"url": "https://hooks.example.test/p", "events": ["test"]}
            )
        ).json()["webhook"]
        key = first.mint_key(["accounts:read"])
        clock = first.now()
        before = {
            path: await walk(client, path, connectionId=conn["id"])
            for path in ("/v1/accounts", "/v1/balances", "/v1/transactions")
        }
        entities = (await client.get("/v1/entities")).json()["data"]
    assert PASSWORD.encode() not in db.read_bytes()

    async with Sandbox(cfg) as second, _client(second) as client:
        assert second.now() >= clock
        assert (await client.get("/v1/entities")).json()["data"] == entities
        got = (await client.get(f"/v1/connections/{conn['id']}")).json()
        assert (got["kind"], got["status"], got["syncStatus"]) == ("ready", "active", "idle")
        again = (await client.get(f"/v1/connections/{draft['id']}")).json()
        assert again["setup"]["credentialsPresent"] is True
        for path, items in before.items():
            assert await walk(client, path, connectionId=conn["id"]) == items
        assert (await client.get(f"/v1/webhooks/{hook['id']}")).json()["url"] == hook["url"]
        listed = await client.get("/v1/accounts", headers=auth(key))
        assert listed.status_code == 200 and listed.json()["data"]
        cooling = await client.put(f"/v1/connections/{conn['id']}/sync")
        assert_error(cooling, 429, "sync_cooldown")


async def test_pending_activation_completes_after_restart(
    config: SandboxConfig, tmp_path: Path
) -> None:
    cfg = dataclasses.replace(config, database=str(tmp_path / "s.sqlite3"))
    async with Sandbox(cfg) as first, _client(first) as client:
        entity = (await client.get("/v1/entities")).json()["data"][0]["entityId"]
        conn = (
            await client.post("/v1/connections", json={"entityId": entity, "institutionId": "bmo"})
        ).json()
        await client.put(f"/v1/connections/{conn['id']}/setupCompletion")
    async with Sandbox(cfg) as second, _client(second) as client:
        second.advance_clock(cfg.activation_seconds + 1)
        got = (await client.get(f"/v1/connections/{conn['id']}")).json()
        assert (got["kind"], got["status"]) == ("ready", "active")


async def test_missing_directories_are_created(config: SandboxConfig, tmp_path: Path) -> None:
    db = tmp_path / "var" / "nested" / "sandbox.sqlite3"
    async with Sandbox(dataclasses.replace(config, database=str(db))) as sb, _client(sb) as client:
        assert (await client.get("/v1/entities")).status_code == 200
    assert db.exists()


async def test_memory_database_keeps_nothing(config: SandboxConfig) -> None:
    async with Sandbox(config) as first, _client(first) as client:
        await client.post("/v1/entities", json={"externalEntityId": "gone"})
    async with Sandbox(config) as second, _client(second) as client:
        found = await client.get("/v1/entities", params={"externalEntityId": "gone"})
        assert found.json()["data"] == []


async def test_start_and_stop_are_idempotent(config: SandboxConfig) -> None:
    sb = Sandbox(config)
    async with _client(sb) as client:  # works before start(): ASGITransport runs no lifespan
        assert (await client.get("/v1/institutions", params={"limit": 1})).status_code == 200
    await sb.start()
    await sb.start()
    await sb.stop()
    await sb.stop()


async def test_requests_property(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    await client.get("/v1/institutions", params={"query": "chase"})
    await client.get("/_sandbox/clock")
    [recorded] = sandbox.requests
    assert (recorded.method, recorded.path, recorded.status) == ("GET", "/v1/institutions", 200)
    assert recorded.query == {"query": "chase"}
    sandbox.clear_requests()
    assert sandbox.requests == []
