"""Host events on their own: payloads without secrets, stable ids, signed deliveries retried with
backoff until the host answers, and dropped after the last attempt. The sender runs on a clock
the test moves (no sleeping); the host is the test receiver."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from host import HostUser, Tenant
from onboarding import events
from onboarding.events import EventType, HostEvent, HostEvents, Sender
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


def sender(receiver: Receiver, clock: Clock, **options: object) -> Sender:
    return Sender(HOST_URL, HOST_SECRET, transport=receiver.transport(), clock=clock, **options)  # type: ignore[arg-type]


async def test_a_delivery_is_signed_like_a_waycore_webhook() -> None:
    receiver, clock = Receiver(), Clock()
    out = sender(receiver, clock)
    event = events.activated(connection("active"), ACME.id)
    out.enqueue(event)
    assert await out.deliver_due() == 1
    (request,) = receiver.attempts
    assert request.method == "POST" and str(request.url) == HOST_URL
    assert request.headers["content-type"] == "application/json"
    verify(HOST_SECRET, request.headers["onboarding-signature"], request.content)
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
    assert out.delivered == [event.id]
    await out.aclose()


async def test_failed_deliveries_are_retried_with_backoff_keeping_id_and_body() -> None:
    receiver, clock = Receiver(fail_next=3), Clock()
    out = sender(receiver, clock, backoff_base=2.0)
    out.enqueue(events.removed("conn_1", ALICE))
    waits = []
    for _ in range(3):
        assert await out.deliver_due() == 0
        waits.append(out.next_due_in())
        assert await out.deliver_due() == 0  # not due yet: nothing is sent
        clock.now += out.next_due_in() or 0
    assert waits == [2.0, 4.0, 8.0]
    assert await out.deliver_due() == 1
    assert len(receiver.attempts) == 4
    assert len({r.content for r in receiver.attempts}) == 1  # the same body every time
    assert receiver.types() == ["connection.removed"]
    assert out.pending == 0
    await out.aclose()


async def test_a_transport_error_is_retried_too() -> None:
    clock = Clock()
    calls: list[httpx.Request] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("host down")
        return httpx.Response(200)

    out = Sender(HOST_URL, HOST_SECRET, transport=httpx.MockTransport(flaky), clock=clock)
    out.enqueue(events.removed("conn_1", ALICE))
    assert await out.deliver_due() == 0
    clock.now += 2
    assert await out.deliver_due() == 1 and len(calls) == 2
    await out.aclose()


async def test_after_the_last_attempt_the_event_is_dropped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver, clock = Receiver(fail_next=99), Clock()
    out = sender(receiver, clock, max_attempts=3, backoff_base=1.0)
    event = events.removed("conn_1", ALICE)
    out.enqueue(event)
    for _ in range(3):
        await out.deliver_due()
        clock.now += 100
    assert out.dropped == [event.id] and out.pending == 0 and len(receiver.attempts) == 3
    assert f"host event {event.id} dropped after 3 attempts" in caplog.text
    await out.aclose()


def test_the_backoff_doubles_up_to_its_cap() -> None:
    out = Sender(HOST_URL, HOST_SECRET, backoff_base=2.0, backoff_cap=30.0)
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
    flow = [events.funnel(EventType.STEP_VIEWED, ALICE, step="choose_bank") for _ in range(2)]
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
    event = events.funnel(EventType.BANK_SELECTED, ALICE, institutionId="chase")
    await HostEvents().emit(event)  # no sender configured: logged only
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("host_event ")]
    assert json.loads(line.removeprefix("host_event ")) == event.payload()
