"""The service layer's hardest rules, without a web request: the entity repair, the 409
recovery of setup completion, the sync cooldown, settling a ready connection once, and what each
rule records (audit entries) and reports (host events).
Waycore is faked on the wire with respx; the store is a real SQLite file."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from host import HostUser, Tenant
from onboarding import service
from onboarding.entities import EntityResolver
from store import Store
from tests.support import RecordedAudit, RecordedEvents
from waycore.client import WaycoreClient
from waycore.errors import BadRequest, Conflict

BASE = "https://api.waycore.test"
ACME = Tenant("acme-manufacturing", "Acme Manufacturing Ltd")
ALICE = HostUser("u-alice", "Alice Admin", "alice@acme.example", "admin", ACME)

pytestmark = pytest.mark.anyio


def connection(status: str = "draft", kind: str = "setup", **extra: Any) -> dict[str, Any]:
    return {"id": "conn_1", "entityId": "ent_new", "kind": kind, "status": status, **extra}


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(str(tmp_path / "app.sqlite3"))
    yield opened
    await opened.close()


@pytest.fixture
async def waycore() -> AsyncIterator[WaycoreClient]:
    client = WaycoreClient.create(BASE, "way_test_k_secret")
    client._sleep = _no_sleep  # no real waiting in retries
    yield client
    await client.aclose()


@pytest.fixture
def events() -> RecordedEvents:
    return RecordedEvents()


@pytest.fixture
def audit() -> RecordedAudit:
    return RecordedAudit()


@pytest.fixture
def api() -> Any:
    with respx.mock(base_url=BASE, assert_all_called=True, assert_all_mocked=True) as router:
        yield router


async def test_a_lost_entity_is_remapped_once_and_the_connection_created(
    store: Store, waycore: WaycoreClient, api: Any, events: RecordedEvents, audit: RecordedAudit
) -> None:
    await store.map_entity(ACME.id, "ent_gone")
    draft = await store.create_draft(ACME.id, ALICE.id, portal_url="https://bank.example/login")
    lost = {"error": {"code": "invalid_entity", "message": "unknown entity"}}
    create = api.post("/v1/connections").mock(
        side_effect=[httpx.Response(400, json=lost), httpx.Response(201, json=connection())]
    )
    api.get("/v1/entities").respond(json={"data": [], "pagination": {"hasMore": False}})
    api.post("/v1/entities").respond(201, json={"entityId": "ent_new", "externalEntityId": ACME.id})
    entities = EntityResolver(store, waycore)
    choice = service.BankChoice(draft, None, "https://bank.example/login")

    result = await service.create_connection(store, waycore, entities, events, audit, ALICE, choice)

    assert result.created and result.connection.id == "conn_1"
    sent = [json.loads(call.request.content)["entityId"] for call in create.calls]
    assert sent == ["ent_gone", "ent_new"]
    assert await store.entity_for(ACME.id) == "ent_new"
    assert (await store.owned_connection(ACME.id, "conn_1")) is not None
    assert (await store.get_draft(ACME.id, draft.id)).connection_id == "conn_1"  # type: ignore[union-attr]
    [entry] = audit.entries
    assert (entry.action, entry.user_id, entry.tenant_id) == (
        "connection.created",
        ALICE.id,
        ACME.id,
    )
    assert (entry.connection_id, entry.draft_id) == ("conn_1", draft.id)
    assert events.emitted == []  # nothing for the host until it activates
    await entities.aclose()


async def test_a_second_invalid_entity_is_not_retried_again(
    store: Store, waycore: WaycoreClient, api: Any, events: RecordedEvents, audit: RecordedAudit
) -> None:
    await store.map_entity(ACME.id, "ent_gone")
    draft = await store.create_draft(ACME.id, ALICE.id, portal_url="https://bank.example/login")
    lost = {"error": {"code": "invalid_entity", "message": "unknown entity"}}
    create = api.post("/v1/connections").respond(400, json=lost)
    api.get("/v1/entities").respond(json={"data": [], "pagination": {"hasMore": False}})
    api.post("/v1/entities").respond(201, json={"entityId": "ent_new", "externalEntityId": ACME.id})
    entities = EntityResolver(store, waycore)
    with pytest.raises(BadRequest) as raised:
        choice = service.BankChoice(draft, None, "https://b.example/")
        await service.create_connection(store, waycore, entities, events, audit, ALICE, choice)
    assert raised.value.code == "invalid_entity" and create.call_count == 2
    assert audit.entries == []  # nothing was created
    await entities.aclose()


async def test_finish_after_another_tab_finished_first_is_success(
    store: Store, waycore: WaycoreClient, api: Any, audit: RecordedAudit
) -> None:
    api.put("/v1/connections/conn_1/setupCompletion").respond(
        409, json={"error": {"code": "conflict", "message": "not a draft"}}
    )
    api.get("/v1/connections/conn_1").respond(json=connection("pendingActivation"))
    await service.finish_setup(store, waycore, audit, ALICE, "conn_1", service.Credentials())
    assert [(e.action, e.outcome) for e in audit.entries] == [
        ("setup.completed", "already completed")
    ]
    # what was read is the connection's state from now on (no older one is shown)
    state = await store.connection_state("conn_1")
    assert state is not None and state.resource["status"] == "pendingActivation"


async def test_finish_conflict_on_a_connection_still_in_draft_is_raised(
    store: Store, waycore: WaycoreClient, api: Any, audit: RecordedAudit
) -> None:
    api.put("/v1/connections/conn_1/setupCompletion").respond(
        409, json={"error": {"code": "conflict", "message": "busy"}}
    )
    api.get("/v1/connections/conn_1").respond(json=connection("draft"))
    with pytest.raises(Conflict):
        await service.finish_setup(store, waycore, audit, ALICE, "conn_1", service.Credentials())
    assert audit.entries == []


async def test_blank_credentials_are_not_sent_and_filled_ones_are(
    store: Store, waycore: WaycoreClient, api: Any, audit: RecordedAudit
) -> None:
    complete = api.put("/v1/connections/conn_1/setupCompletion").respond(
        json=connection("pendingActivation")
    )
    await service.finish_setup(store, waycore, audit, ALICE, "conn_1", service.Credentials())
    credentials = api.put("/v1/connections/conn_1/credentials").respond(json=connection())
    filled = service.Credentials(bank_username="acme-ops", password="hunter2-bank")
    await service.finish_setup(store, waycore, audit, ALICE, "conn_1", filled)
    assert json.loads(credentials.calls.last.request.content) == {
        "bankUsername": "acme-ops",
        "password": "hunter2-bank",
    }
    assert complete.call_count == 2
    assert audit.actions() == ["setup.completed", "credentials.submitted", "setup.completed"]
    assert audit.entries[1].fields == ("bankUsername", "password")  # names, never values
    assert "hunter2-bank" not in repr(audit.entries) and "acme-ops" not in repr(audit.entries)


async def test_inside_a_cooldown_no_sync_is_sent(
    store: Store, waycore: WaycoreClient, api: Any, audit: RecordedAudit
) -> None:
    await store.record_connection(ACME.id, "conn_1")
    sync = api.put("/v1/connections/conn_1/sync").respond(
        429,
        headers={"Retry-After": "2700"},
        json={"error": {"code": "rate_limited", "message": "cooldown"}},
    )
    first = await service.start_sync(store, waycore, audit, ALICE, "conn_1")
    assert first.result == "cooling_down"
    allowed_at = service.cooldown_until(first.owned)
    assert allowed_at is not None
    second = await service.start_sync(store, waycore, audit, ALICE, "conn_1")
    assert second.result == "cooling_down" and sync.call_count == 1
    assert service.cooldown_until(second.owned, now=allowed_at + 1) is None
    assert [(e.action, e.outcome) for e in audit.entries] == [
        ("sync.requested", "cooling_down"),
        ("sync.requested", "cooling_down"),
    ]


async def test_a_ready_connection_is_settled_once(store: Store, events: RecordedEvents) -> None:
    await store.record_connection(ACME.id, "conn_1")
    draft = await store.create_draft(ACME.id, ALICE.id, institution_id="chase")
    await store.update_draft(ACME.id, draft.id, connection_id="conn_1")
    owned = await store.owned_connection(ACME.id, "conn_1")
    assert owned is not None and owned.settled_at is None
    ready = service.Connection.from_api(connection("active", "ready"))

    settled = await service.settle(store, events, owned, ready)

    assert settled.settled_at is not None
    assert await store.get_draft(ACME.id, draft.id) is None
    again = await store.create_draft(ACME.id, ALICE.id)  # unrelated draft, kept
    assert await service.settle(store, events, settled, ready) is settled
    assert await store.get_draft(ACME.id, again.id) is not None
    [activated] = events.emitted  # told once, when first seen ready
    assert activated.type == "connection.activated" and activated.tenant_id == ACME.id
    assert activated.data["connectionId"] == "conn_1"
