"""The store's audit trail (kept per tenant, read newest first by keyset, ties broken by id),
what each user last saw of each connection, and the purge of what is no longer needed. On both
engines. (The host-event outbox is tested with its sender: tests/onboarding/test_events.py.)"""

from __future__ import annotations

import time

import pytest

from store import DELIVERED_EVENTS_KEEP_SECONDS, Store

pytestmark = pytest.mark.anyio


async def _entry(store: Store, tenant_id: str, at: float, action: str = "sync.requested") -> str:
    return await store.add_audit_entry(
        tenant_id,
        action=action,
        user_id="u-alice",
        user_name="Alice Admin",
        at=at,
        request_id="rid_1",
        connection_id="conn_1",
        fields="bankUsername,password",
        outcome="started",
    )


async def test_the_trail_is_read_newest_first_in_pages_of_one_tenant(store: Store) -> None:
    # Three entries share one instant: the id orders them, so no page repeats or skips one.
    ids = [await _entry(store, "acme", at) for at in (1.0, 2.0, 2.0, 2.0, 3.0)]
    await _entry(store, "globex", 2.5)
    newest_first = [e.id for e in await store.audit_entries("acme", limit=10)]
    assert len(newest_first) == 5 and set(newest_first) == set(ids)
    assert newest_first[0] == ids[4] and newest_first[-1] == ids[0]

    pages, cursor = [], None
    while True:
        page = await store.audit_entries("acme", limit=2, before=cursor)
        if not page:
            break
        pages.append([e.id for e in page])
        cursor = page[-1].id
    assert [e for page in pages for e in page] == newest_first

    newer = await store.audit_entries("acme", limit=2, after=newest_first[3])
    assert [e.id for e in newer] == newest_first[1:3]
    (entry, *_) = await store.audit_entries("acme", limit=1)
    assert entry.field_names == ["bankUsername", "password"] and entry.user_name == "Alice Admin"


async def test_a_cursor_of_another_tenant_reads_nothing(store: Store) -> None:
    acme = await _entry(store, "acme", 1.0)
    await _entry(store, "globex", 0.5)
    assert await store.audit_entries("globex", limit=10, before=acme) == []
    assert await store.audit_entries("globex", limit=10, after=acme) == []


async def test_what_each_user_saw_is_kept_per_user_and_updated(store: Store) -> None:
    await store.mark_seen("acme", "u-alice", {"conn_1": "pendingActivation", "conn_2": "draft"})
    await store.mark_seen("acme", "u-bob", {"conn_1": "pendingActivation"})
    await store.mark_seen("acme", "u-alice", {"conn_1": "active"})
    await store.mark_seen("acme", "u-alice", {})
    assert await store.seen_statuses("acme", "u-alice") == {"conn_1": "active", "conn_2": "draft"}
    assert await store.seen_statuses("acme", "u-bob") == {"conn_1": "pendingActivation"}
    assert await store.seen_statuses("globex", "u-alice") == {}


async def test_the_purge_drops_old_deliveries_and_what_was_seen_of_forgotten_connections(
    store: Store,
) -> None:
    now = time.time()
    old = now - DELIVERED_EVENTS_KEEP_SECONDS - 60
    for event_id in ("hev_old", "hev_recent", "hev_dead", "hev_pending"):
        await store.queue_host_event(event_id, "connection.removed", "acme", "{}", old)
    await store.host_event_delivered("hev_old", 1, old)
    await store.host_event_delivered("hev_recent", 1, now)
    claimed = await store.claim_host_event("snd_1", now, now + 30)
    assert claimed is not None and claimed.event_id == "hev_dead"
    await store.host_event_failed("hev_dead", "snd_1", attempts=8, error="HTTP 503", retry_at=None)
    await store.record_connection("acme", "conn_kept")
    await store.mark_seen("acme", "u-alice", {"conn_kept": "active", "conn_gone": "active"})

    await store.purge_expired()

    left = await store.host_events(("pending", "delivered", "dead"))
    assert {(e.event_id, e.state) for e in left} == {
        ("hev_recent", "delivered"),
        ("hev_dead", "dead"),
        ("hev_pending", "pending"),
    }
    assert await store.seen_statuses("acme", "u-alice") == {"conn_kept": "active"}
