"""The tenant's Waycore entity: resolved server-side, lazily, once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
import respx
from starlette.testclient import TestClient

from host import Tenant
from onboarding.entities import EntityResolver, EntityUnavailable
from store import Store
from tests.support import ROOT_KEY, Browser, SandboxHandle, soup
from waycore.client import WaycoreClient
from waycore.sandbox import Sandbox, SandboxConfig

ACME = Tenant("acme-manufacturing", "Acme Manufacturing Ltd")


def wait_for(predicate: object, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_opening_the_flow_creates_the_entity_in_the_background(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    response = alice.get("/connections")
    assert response.status_code == 200
    wait_for(lambda: sandbox.calls("POST", "/v1/entities"))
    (created,) = sandbox.calls("POST", "/v1/entities")
    assert created.body["externalEntityId"] == "acme-manufacturing"
    assert created.body["name"] == "Acme Manufacturing Ltd"
    alice.get("/connections/new")
    alice.get("/connections")
    assert len(sandbox.calls("POST", "/v1/entities")) == 1


def test_an_entity_that_already_exists_at_waycore_is_found_and_mapped(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    _, existing = sandbox.control(
        "POST", "/v1/entities", {"externalEntityId": "globex-treasury", "name": "Globex"}
    )
    sandbox.clear()
    dana = Browser(alice.client)
    dana.sign_in("u-dana")
    dana.get("/connections")
    wait_for(lambda: sandbox.calls("GET", "/v1/entities"))
    draft = dana.post("/connections/drafts", {"institution_id": "chase"}).headers["location"]
    dana.post("/connections/continue", {"draft_id": draft.split("/")[-1], "mode": "listed"})
    # (Acme's own entity may still be created in the background, from Alice's sign-in.)
    created = [c.body["externalEntityId"] for c in sandbox.calls("POST", "/v1/entities")]
    assert "globex-treasury" not in created
    (create,) = sandbox.calls("POST", "/v1/connections")
    assert create.body["entityId"] == existing["entityId"]


def test_when_the_entity_cannot_be_resolved_the_flow_stops_before_any_connection(
    client: TestClient, sandbox: SandboxHandle
) -> None:
    sandbox.fault(mode="error", status=503, count=50, pathPrefix="/v1/entities")
    alice = Browser(client)
    alice.sign_in("u-alice")
    draft = alice.post("/connections/drafts", {"institution_id": "chase"}).headers["location"]
    response = alice.post(
        "/connections/continue", {"draft_id": draft.split("/")[-1], "mode": "listed"}, htmx=True
    )
    assert response.status_code == 503
    page = soup(response)
    assert "could not be prepared" in page.get_text()
    assert page.select_one(".alert-danger .reference code") is not None
    assert not sandbox.calls("POST", "/v1/connections")
    # the choice is kept as a draft to resume later
    assert alice.get(draft).status_code == 200


@pytest.fixture
async def resolver(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = await Store.open(str(tmp_path / "app.sqlite3"))
    async with Sandbox(SandboxConfig(api_key=ROOT_KEY)) as sandbox:
        client = WaycoreClient.create(
            "http://sandbox", ROOT_KEY, transport=httpx.ASGITransport(app=sandbox.app)
        )
        yield EntityResolver(store, client), store, sandbox
        await client.aclose()
    await store.close()


@pytest.mark.anyio
async def test_two_tabs_at_once_never_create_two_entities(resolver) -> None:  # type: ignore[no-untyped-def]
    entities, store, sandbox = resolver
    await entities.prefetch(ACME)
    ids = await asyncio.gather(*(entities.resolve(ACME) for _ in range(5)))
    assert len(set(ids)) == 1
    assert [r.method for r in sandbox.requests if r.path == "/v1/entities"].count("POST") == 1
    assert await store.entity_for(ACME.id) == ids[0]


@pytest.mark.anyio
async def test_two_instances_racing_create_the_entity_once(database: str) -> None:
    """Two app instances (two stores on one database, two resolvers, one Waycore) resolve the
    same tenant at the same moment: one finds-or-creates under the lock, the other waits and
    uses its mapping, with no Waycore call of its own."""
    stores = [await Store.open(database), await Store.open(database)]
    async with Sandbox(SandboxConfig(api_key=ROOT_KEY)) as sandbox:
        clients = [
            WaycoreClient.create(
                "http://sandbox", ROOT_KEY, transport=httpx.ASGITransport(app=sandbox.app)
            )
            for _ in stores
        ]
        resolvers = [
            EntityResolver(store, client) for store, client in zip(stores, clients, strict=True)
        ]
        ids = await asyncio.gather(*(resolver.resolve(ACME) for resolver in resolvers))
        entity_calls = [r for r in sandbox.requests if r.path == "/v1/entities"]
        for client in clients:
            await client.aclose()
    for store in stores:
        await store.close()
    assert ids[0] == ids[1]
    assert [r.method for r in entity_calls] == ["GET", "POST"]  # one lookup, one create


@pytest.mark.anyio
async def test_a_create_race_lost_to_another_process_falls_back_to_the_lookup(
    tmp_path: Path,
) -> None:
    store = await Store.open(str(tmp_path / "app.sqlite3"))
    entity = {
        "entityId": "11111111-2222-3333-4444-555555555555",
        "externalEntityId": ACME.id,
        "isDefaultOrgEntity": False,
    }
    empty = {"data": [], "pagination": {"hasMore": False, "nextCursor": None}, "meta": {}}
    found = {**empty, "data": [entity]}
    with respx.mock(base_url="https://api.waycore.test", assert_all_called=True) as mock:
        mock.get("/v1/entities", name="list").mock(
            side_effect=[httpx.Response(200, json=empty), httpx.Response(200, json=found)]
        )
        mock.post("/v1/entities", name="create").respond(
            409, json={"error": {"code": "conflict", "message": "exists"}}
        )
        client = WaycoreClient.create("https://api.waycore.test", "key")
        resolved = await EntityResolver(store, client).resolve(ACME)
        await client.aclose()
    assert resolved == entity["entityId"]
    assert await store.entity_for(ACME.id) == entity["entityId"]
    await store.close()


@pytest.mark.anyio
async def test_resolution_failure_raises_and_a_later_attempt_retries(tmp_path: Path) -> None:
    store = await Store.open(str(tmp_path / "app.sqlite3"))
    with respx.mock(base_url="https://api.waycore.test") as mock:
        route = mock.get("/v1/entities").respond(401, json={"error": {"code": "unauthorized"}})
        client = WaycoreClient.create("https://api.waycore.test", "key")
        entities = EntityResolver(store, client)
        with pytest.raises(EntityUnavailable):
            await entities.resolve(ACME)
        with pytest.raises(EntityUnavailable):
            await entities.resolve(ACME)
        assert route.call_count == 2
        await client.aclose()
    assert await store.entity_for(ACME.id) is None
    await store.close()


def test_a_mapping_to_an_entity_waycore_no_longer_has_is_repaired_once(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    wait_for(lambda: sandbox.calls("POST", "/v1/entities"))
    _, listed = sandbox.control("GET", "/v1/entities?externalEntityId=acme-manufacturing")
    stale = listed["data"][0]["entityId"]
    assert sandbox.control("DELETE", f"/v1/entities/{stale}")[0] == 204
    draft = alice.post("/connections/drafts", {"institution_id": "chase"}).headers["location"]
    response = alice.post(
        "/connections/continue", {"draft_id": draft.split("/")[-1], "mode": "listed"}
    )
    assert response.status_code == 303, response.text
    creates = sandbox.calls("POST", "/v1/connections")
    assert [c.status for c in creates] == [400, 201]
    assert creates[0].body["entityId"] == stale
    assert creates[1].body["entityId"] != stale
    assert len(sandbox.calls("POST", "/v1/entities")) == 2
