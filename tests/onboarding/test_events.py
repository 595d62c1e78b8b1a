"""Host events on their own: payloads without secrets, stable ids, signed deliveries from the
durable outbox retried with backoff until the host answers, dead after the last attempt (and
retried on request), resumed after a restart, never sent twice by two instances. On both
engines; the sender runs on a clock the test moves (no sleeping); the host is the test
receiver."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from host import HostUser, Tenant
from onboarding import events
from onboarding.events import EventType, HostEvent, HostEvents, Sender
from store import Store
from tests.receiver import HOST_SECRET, HOST_URL, Receiver
from waycore.models import Connection
from waycore.webhooks import verify

pytestmark = pytest.mark.anyio

ACME = Tenant("acme-manufacturing", "Acme Manufacturing Ltd")
ALICE = HostUser("u-alice", "Alice Admin", "alice@acme.example", "admin", ACME)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def connection(
    status: str, kind: str = "ready", updated: str = "2026-01-02T03:04:05Z"
) -> Connection:
    return Connection(
        id="conn_1",
        entity_id="ent_1",
        kind=kind,
        status=status,
        institution_id="chase",
        updated_at=updated,
        error_code="reauth_required" if status == "reauthRequired" else None,
    )


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    opened = await Store.open(database)
    yield opened
    await opened.close()


def sender(store: Store, receiver: Receiver, clock: Clock, **options: Any) -> Sender:
    return Sender(
        HOST_URL, HOST_SECRET, store, transport=receiver.transport(), clock=clock, **options
    )


async def states(store: Store) -> dict[str, str]:
    """event id -> its state in the outbox."""
    rows = await store.host_events(("pending", "delivered", "dead"))
    return {row.event_id: row.state for row in rows}


async def test_a_delivery_is_signed_like_a_waycore_webhook(store: Store) -> None:
    receiver, clock = Receiver(), Clock()
    out = sender(store, receiver, clock)
    event = events.activated(connection("active"), ACME.id)
    assert await out.enqueue(event)
    assert await out.deliver_due() == 1
    (request,) = receiver.attempts
    assert request.method == "POST" and str(request.url) == HOST_URL
    assert request.headers["content-type"] == "application/json"
    verify(HOST_SECRET, request.headers["onboarding-signature"], request.content)
    assert request.content == event.body()
    body = json.loads(request.content)
    assert body == {
        "id": event.id,
        "type": "connection.activated",
        "createdAt": event.created_at,
        "tenantId": ACME.id,
        "userId": None,
        "requestId": None,
        "data": {
            "connectionId": "conn_1",
            "status": "active",
            "kind": "ready",
            "institutionId": "chase",
        },
    }
    assert await states(store) == {event.id: "delivered"}
    assert await out.deliver_due() == 0  # delivered once: never again
    await out.aclose()


async def test_an_event_queued_twice_is_sent_once(store: Store) -> None:
    """Stable ids de-duplicate: the same fact (a page and a webhook) is one delivery."""
    receiver, clock = Receiver(), Clock()
    out = sender(store, receiver, clock)
    reauth = connection("reauthRequired")
    assert await out.enqueue(events.needs_attention(reauth, ACME.id, previous_status="active"))
    assert not await out.enqueue(events.needs_attention(reauth, ACME.id))
    assert await out.deliver_due() == 1
    assert len(receiver.attempts) == 1
    assert receiver.accepted[0]["data"]["previousStatus"] == "active"  # the first one queued
    await out.aclose()


async def test_failed_deliveries_are_retried_with_backoff_keeping_id_and_body(
    store: Store,
) -> None:
    receiver, clock = Receiver(fail_next=3), Clock()
    out = sender(store, receiver, clock, backoff_base=2.0)
    await out.enqueue(events.removed("conn_1", ALICE))
    waits = []
    for _ in range(3):
        assert await out.deliver_due() == 0
        waits.append(await out.next_due_in())
        assert await out.deliver_due() == 0  # not due yet: nothing is sent
        clock.now += await out.next_due_in() or 0
    assert waits == [2.0, 4.0, 8.0]
    assert await out.deliver_due() == 1
    assert len(receiver.attempts) == 4
    assert len({r.content for r in receiver.attempts}) == 1  # the same body every time
    assert receiver.types() == ["connection.removed"]
    (row,) = await store.host_events(("delivered",))
    assert row.attempts == 4 and row.last_error is None
    assert await out.next_due_in() is None
    await out.aclose()


async def test_a_transport_error_is_retried_too(store: Store) -> None:
    clock = Clock()
    calls: list[httpx.Request] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("host down")
        return httpx.Response(200)

    out = Sender(HOST_URL, HOST_SECRET, store, transport=httpx.MockTransport(flaky), clock=clock)
    await out.enqueue(events.removed("conn_1", ALICE))
    assert await out.deliver_due() == 0
    (pending,) = await store.host_events(("pending",))
    assert pending.last_error == "ConnectError" and pending.attempts == 1
    clock.now += 2
    assert await out.deliver_due() == 1 and len(calls) == 2
    await out.aclose()


async def test_after_the_last_attempt_the_event_is_dead_logged_and_can_be_retried(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    receiver, clock = Receiver(fail_next=3), Clock()
    out = sender(store, receiver, clock, max_attempts=3, backoff_base=1.0)
    event = events.removed("conn_1", ALICE)
    await out.enqueue(event)
    for _ in range(3):
        await out.deliver_due()
        clock.now += 100
    assert await states(store) == {event.id: "dead"} and len(receiver.attempts) == 3
    assert await out.next_due_in() is None  # a dead event is never sent by itself
    assert f"host event {event.id} is dead after 3 attempts (last: HTTP 503)" in caplog.text
    assert await store.retry_host_event(event.id, clock())
    assert not await store.retry_host_event(event.id, clock())  # only a dead one
    assert await out.deliver_due() == 1
    assert len({r.content for r in receiver.attempts}) == 1
    assert await states(store) == {event.id: "delivered"}
    await out.aclose()


async def test_a_restart_resumes_the_pending_events(database: str) -> None:
    """What one process queued and could not deliver, the next one sends: same id, same body."""
    clock = Clock()
    down = Receiver(fail_next=99)
    first_store = await Store.open(database)
    first = sender(first_store, down, clock)
    queued = [events.removed("conn_1", ALICE), events.activated(connection("active"), ACME.id)]
    for event in queued:
        await first.enqueue(event)
    assert await first.deliver_due() == 0
    await first.aclose()
    await first_store.close()

    up = Receiver()
    second_store = await Store.open(database)
    second = sender(second_store, up, clock)
    clock.now += 2
    assert await second.deliver_due() == 2
    assert sorted(e["id"] for e in up.accepted) == sorted(e.id for e in queued)
    assert {r.content for r in up.attempts} == {r.content for r in down.attempts}
    assert {r.content for r in up.attempts} == {e.body() for e in queued}
    await second.aclose()
    await second_store.close()


async def test_an_event_claimed_by_a_stopped_instance_is_sent_after_its_claim_lapses(
    store: Store,
) -> None:
    clock = Clock()
    event = events.removed("conn_1", ALICE)
    await store.queue_host_event(event.id, str(event.type), ACME.id, event.body().decode(), 1000.0)
    assert await store.claim_host_event("snd_gone", 1000.0, 1035.0) is not None  # then it died
    out = sender(store, receiver := Receiver(), clock)
    assert await out.deliver_due() == 0
    assert await out.next_due_in() == 35.0
    clock.now += 35
    assert await out.deliver_due() == 1 and receiver.types() == ["connection.removed"]
    await out.aclose()


class SlowHost:
    """A host that takes its time (yields to the event loop) before answering, so two senders'
    passes interleave; it counts every delivery of every id."""

    def __init__(self) -> None:
        self.received: list[str] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        for _ in range(3):
            await asyncio.sleep(0)
        self.received.append(json.loads(request.content)["id"])
        return httpx.Response(204)


async def test_two_instances_never_deliver_one_event_twice(database: str, store: Store) -> None:
    clock, host = Clock(), SlowHost()
    other_store = await Store.open(database)
    one, two = (
        Sender(HOST_URL, HOST_SECRET, s, transport=httpx.MockTransport(host.handle), clock=clock)
        for s in (store, other_store)
    )
    queued = [
        events.funnel(EventType.STEP_VIEWED, ALICE, {"step": "choose_bank"}) for _ in range(12)
    ]
    for index, event in enumerate(queued):
        await (one if index % 2 else two).enqueue(event)
    delivered = await asyncio.gather(one.deliver_due(), two.deliver_due())
    assert sum(delivered) == 12
    assert sorted(host.received) == sorted(e.id for e in queued)  # each exactly once
    for out in (one, two):
        await out.aclose()
    await other_store.close()


def test_the_backoff_doubles_up_to_its_cap() -> None:
    out = Sender(HOST_URL, HOST_SECRET, None, backoff_base=2.0, backoff_cap=30.0)  # type: ignore[arg-type]
    assert [out.backoff(n) for n in range(1, 7)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert HOST_SECRET not in repr(out)


def test_connection_event_ids_are_derived_from_what_happened() -> None:
    reauth = connection("reauthRequired")
    assert events.activated(connection("active"), ACME.id).id == (
        events.activated(connection("active"), ACME.id).id
    )
    same = events.needs_attention(reauth, ACME.id, previous_status="active")
    again = events.needs_attention(reauth, ACME.id, previous_status=None)
    assert same.id == again.id  # seen by a page and by a webhook: one event for the host
    later = events.needs_attention(
        connection("reauthRequired", updated="2026-02-01T00:00:00Z"), ACME.id
    )
    assert later.id != same.id  # a second entry into the state is a second event
    assert events.removed("conn_1", ALICE).id == events.removed("conn_1", ALICE).id
    flow = [events.funnel(EventType.STEP_VIEWED, ALICE, {"step": "choose_bank"}) for _ in range(2)]
    assert flow[0].id != flow[1].id  # each view is its own occurrence


@pytest.mark.parametrize("key", ["password", "bankPassword", "api_key", "secret", "Token"])
def test_a_payload_carrying_a_secret_is_refused(key: str) -> None:
    with pytest.raises(ValueError):
        HostEvent(
            id="hev_x", type=EventType.ERROR_SHOWN, tenant_id=None, user_id=None, data={key: "x"}
        )


def test_an_unlisted_portal_is_reported_by_its_host_only() -> None:
    assert events.portal_host("https://online.bank.example/login?session=abc") == (
        "online.bank.example"
    )
    assert events.portal_host("not a url") is None


async def test_every_event_is_a_structured_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="app.events")
    event = events.funnel(EventType.BANK_SELECTED, ALICE, {"institutionId": "chase"})
    await HostEvents().emit(event)  # no sender configured: logged only
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("host_event ")]
    assert json.loads(line.removeprefix("host_event ")) == event.payload()
