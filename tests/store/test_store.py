"""The store on both engines: tenant scoping, draft expiry, ownership, sessions."""

from __future__ import annotations

import time

import pytest

import store as store_module
from store import SessionUser, Store

pytestmark = pytest.mark.anyio
ALICE = SessionUser("u-alice", "Alice Admin", "alice@acme.example", "admin", "acme", "Acme")


async def test_drafts_are_scoped_by_tenant(store: Store) -> None:
    draft = await store.create_draft("acme", "u1", institution_id="chase", institution_name="C")
    assert await store.get_draft("acme", draft.id) == draft
    assert await store.get_draft("globex", draft.id) is None
    assert await store.open_drafts("globex", 100) == []
    await store.update_draft("globex", draft.id, portal_url="https://x.example")
    assert not await store.delete_draft("globex", draft.id)
    unchanged = await store.get_draft("acme", draft.id)
    assert unchanged is not None and unchanged.portal_url is None


async def test_drafts_expire_after_the_ttl(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    draft = await store.create_draft("acme", "u1", requested_institution_name="Old Bank")
    fresh = await store.create_draft("acme", "u1", requested_institution_name="New Bank")
    later = time.time() + 29 * 24 * 3600
    monkeypatch.setattr(store_module.time, "time", lambda: later)
    await store.update_draft("acme", fresh.id, portal_url="https://new.example")
    monkeypatch.setattr(store_module.time, "time", lambda: later + 2 * 24 * 3600)
    assert await store.get_draft("acme", draft.id) is None  # 31 days untouched
    assert [d.id for d in await store.open_drafts("acme", 100)] == [fresh.id]
    assert await store.purge_expired() == 1


async def test_draft_fields_are_an_allow_list(store: Store) -> None:
    draft = await store.create_draft("acme", "u1")
    with pytest.raises(ValueError):
        await store.update_draft("acme", draft.id, password="x")
    with pytest.raises(ValueError):
        await store.update_draft("acme", draft.id, created_by="u2")


async def test_a_connection_never_moves_between_tenants(store: Store) -> None:
    assert await store.record_connection("acme", "conn_1", institution_name="Chase")
    assert not await store.record_connection("globex", "conn_1")
    assert await store.owned_connection("globex", "conn_1") is None
    owned = await store.owned_connection("acme", "conn_1")
    assert owned is not None and owned.institution_name == "Chase"
    await store.forget_connection("globex", "conn_1")
    assert await store.owned_connection("acme", "conn_1") is not None


async def test_recording_again_keeps_host_only_names(store: Store) -> None:
    await store.record_connection("acme", "conn_1", requested_institution_name="Fjord Bank")
    await store.record_connection("acme", "conn_1")
    owned = await store.owned_connection("acme", "conn_1")
    assert owned is not None and owned.requested_institution_name == "Fjord Bank"


async def test_forgetting_a_connection_clears_its_drafts(store: Store) -> None:
    draft = await store.create_draft("acme", "u1", institution_id="chase")
    await store.record_connection("acme", "conn_1")
    await store.update_draft("acme", draft.id, connection_id="conn_1")
    await store.forget_connection("acme", "conn_1")
    assert await store.get_draft("acme", draft.id) is None


async def test_the_entity_mapping_is_first_writer_wins(store: Store) -> None:
    assert await store.map_entity("acme", "ent-1") == "ent-1"
    assert await store.map_entity("acme", "ent-2") == "ent-1"
    assert await store.entity_for("acme") == "ent-1"
    assert await store.entity_for("globex") is None


async def test_sessions_end_when_deleted_or_expired(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = await store.create_session(ALICE, max_age=60)
    record = await store.get_session(sid)
    assert record is not None and record.user_id == "u-alice"
    assert (record.user_name, record.role, record.tenant_name) == ("Alice Admin", "admin", "Acme")
    other = await store.create_session(ALICE, max_age=60)
    assert other != sid
    await store.delete_session(sid)
    assert await store.get_session(sid) is None
    later = time.time() + 61
    monkeypatch.setattr(store_module.time, "time", lambda: later)
    assert await store.get_session(other) is None


async def test_a_webhook_event_is_processed_once(store: Store) -> None:
    assert await store.first_delivery("evt_1", "connection.status_changed")
    assert not await store.first_delivery("evt_1", "connection.status_changed")


async def test_reopening_keeps_data_and_schema(database: str) -> None:
    first = await Store.open(database)
    draft = await first.create_draft("acme", "u1", institution_id="chase")
    await first.close()
    second = await Store.open(database)
    assert await second.get_draft("acme", draft.id) is not None
    await second.close()


async def test_a_handoff_token_id_is_claimed_once_and_forgotten_after_it_expires(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    expires = time.time() + 120
    assert await store.claim_token("jti-1", expires)
    assert not await store.claim_token("jti-1", expires)
    later = expires + 1
    monkeypatch.setattr(store_module.time, "time", lambda: later)
    await store.purge_expired()
    assert await store.claim_token("jti-1", later + 120)


async def test_a_state_saved_over_another_instances_save_counts_from_it(
    store: Store, other_store: Store
) -> None:
    """Each instance starts a save from the state as it last saw it; when another instance
    saved since, the save is made again over that one: versions only move forward, and a page
    change or new data the other instance recorded is never lost."""

    def resource(status: str) -> dict[str, str]:
        return {"id": "conn_1", "kind": "setup", "status": status}

    first, changed = await store.save_state("acme", "conn_1", resource("pendingActivation"), "poll")
    assert (first.version, first.data_version, changed) == (1, 1, True)
    await other_store.mark_sync_available("conn_1")
    theirs, changed = await other_store.save_state("acme", "conn_1", resource("active"), "webhook")
    assert (theirs.version, theirs.data_version, changed) == (2, 2, True)

    same, changed = await store.save_state(
        "acme", "conn_1", resource("active"), "poll", data_changed=True
    )
    assert (same.version, same.data_version, changed) == (2, 3, False)
    moved, changed = await store.save_state("acme", "conn_1", resource("errored"), "poll")
    assert (moved.version, moved.data_version, changed) == (3, 3, True)
    assert await other_store.reload_state("conn_1") == moved
