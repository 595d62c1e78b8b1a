"""The host is told, verified by a test receiver: a whole journey's flow and connection events
arrive signed, each with its own stable id, retried when the host fails, and never carrying a
secret or a bank password; the same events are structured log lines. The audit trail of the
same journey is a log line per step, with user, tenant and request id."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.datastructures import Secret
from starlette.testclient import TestClient

from config import Settings
from server import create_app
from store import Store
from tests.receiver import HOST_SECRET, HOST_URL, Receiver
from tests.support import (
    ROOT_KEY,
    SECRET_KEY,
    Browser,
    SandboxHandle,
    connection_id_from,
    finish,
    make_settings,
    start_listed,
    start_unlisted,
)
from views.guards import STATE_KEY
from waycore.webhooks import sign

WEBHOOK_SECRET = "whsec_host_events_test"
BANK_PASSWORD = "Bank-Pa55word-for-the-delegate"


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return replace(
        make_settings(tmp_path),
        host_events_url=HOST_URL,
        host_events_secret=Secret(HOST_SECRET),
        webhook_secret=Secret(WEBHOOK_SECRET),
    )


@pytest.fixture
def app(settings: Settings, receiver: Receiver) -> Starlette:
    return create_app(settings, host_events_transport=receiver.transport())


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(client: TestClient, app: Starlette) -> Clock:
    """The sender's clock, moved by the test (retries come due without waiting)."""
    fake = Clock()
    app.state.host_events.sender.clock = fake
    return fake


@pytest.fixture
def deliver(client: TestClient, app: Starlette, clock: Clock) -> Iterator[Any]:
    def run() -> int:
        assert client.portal is not None
        delivered: int = client.portal.call(app.state.host_events.sender.deliver_due)
        return delivered

    yield run


def outbox_of(client: TestClient) -> Store:
    store: Store = client.app_state[STATE_KEY].store
    return store


def test_a_whole_journey_reaches_the_host_signed_and_without_secrets(
    alice: Browser, client: TestClient, sandbox: SandboxHandle, receiver: Receiver, deliver: Any
) -> None:
    alice.get("/connections/new")
    connection_id = start_listed(alice, "chase")
    alice.get(f"/connections/{connection_id}/delegated-user")
    alice.get(f"/connections/{connection_id}/finish")
    finish(alice, connection_id, bank_username="acme-ops", password=BANK_PASSWORD)
    alice.get(f"/connections/{connection_id}/activation")
    sandbox.advance(31)
    alice.get(f"/connections/{connection_id}/activation/status", htmx=True)
    alice.post(f"/connections/{connection_id}/delete", {"confirm": "delete"})
    deliver()

    assert receiver.bad_signatures == 0
    assert receiver.types() == [
        "flow.step_viewed",
        "flow.bank_selected",
        "flow.step_viewed",
        "flow.step_viewed",
        "flow.step_viewed",
        "connection.activated",
        "connection.removed",
    ]
    steps = [e["data"]["step"] for e in receiver.of_type("flow.step_viewed")]
    assert steps == ["choose_bank", "delegated_user", "finish_setup", "activation"]
    assert receiver.of_type("flow.bank_selected")[0]["data"]["institutionId"] == "chase"
    (activated,) = receiver.of_type("connection.activated")
    assert activated["data"]["connectionId"] == connection_id
    assert activated["tenantId"] == "acme-manufacturing"
    (removed,) = receiver.of_type("connection.removed")
    assert removed["userId"] == "u-alice"
    ids = [e["id"] for e in receiver.accepted]
    assert len(ids) == len(set(ids))
    raw = receiver.raw()
    assert client.portal is not None
    kept = client.portal.call(outbox_of(client).host_events, ("pending", "delivered", "dead"))
    assert sorted(e.event_id for e in kept) == sorted(ids)
    assert {e.state for e in kept} == {"delivered"}
    bodies = "\n".join(e.body for e in kept)
    for secret in (ROOT_KEY, SECRET_KEY, HOST_SECRET, WEBHOOK_SECRET, BANK_PASSWORD, "acme-ops"):
        assert secret not in raw and secret not in bodies


def test_a_failing_host_gets_the_same_event_again_later(
    alice: Browser, receiver: Receiver, clock: Clock, deliver: Any
) -> None:
    receiver.fail_next = 2
    alice.get("/connections/new")
    assert deliver() == 0
    clock.now += 2
    assert deliver() == 0
    clock.now += 4
    assert deliver() == 1
    assert len(receiver.attempts) == 3
    assert len({a.content for a in receiver.attempts}) == 1
    assert receiver.types() == ["flow.step_viewed"]


def test_events_left_pending_by_an_earlier_process_are_sent_by_the_next(
    settings: Settings, tmp_path: Path
) -> None:
    """The outbox outlives the process: what one app could not deliver, the next one sends,
    with the same id and the same signed body."""
    down, up = Receiver(fail_next=99), Receiver()
    with TestClient(create_app(settings, host_events_transport=down.transport())) as first:
        browser = Browser(first)
        browser.sign_in("u-alice")
        browser.get("/connections/new")  # one flow event, which the host refuses
        assert first.portal is not None
        first.portal.call(first.app_state[STATE_KEY].events.sender.deliver_due)
        assert down.attempts and not down.accepted
    with TestClient(create_app(settings, host_events_transport=up.transport())) as second:
        assert second.portal is not None
        sender = second.app_state[STATE_KEY].events.sender
        sender.clock = lambda: time.time() + 3600  # any retry is due by now
        second.portal.call(sender.deliver_due)
        kept = second.portal.call(outbox_of(second).host_events, ("delivered",))
    assert up.types() == ["flow.step_viewed"]  # once, whichever pass sent it
    assert up.attempts[-1].content == down.attempts[0].content
    assert [e.event_id for e in kept] == [up.accepted[0]["id"]]


def test_unlisted_bank_errors_and_exits_are_flow_events(
    alice: Browser, sandbox: SandboxHandle, receiver: Receiver, deliver: Any
) -> None:
    start_unlisted(alice, "Fjord Bank", "https://online.fjord.example/login?token=abc")
    sandbox.fault(mode="error", status=503, count=3, pathPrefix="/v1/institutions")
    failed = alice.get("/connections/new?q=chase")
    draft = alice.post("/connections/drafts", {"institution_id": "apple_bank"})
    draft_id = draft.headers["location"].split("/")[-1]
    alice.post(f"/connections/drafts/{draft_id}/discard")
    alice.get("/connections?from=delegated_user")
    alice.get("/connections?from=nowhere")  # not a step: no event
    deliver()

    (entered,) = receiver.of_type("flow.unlisted_bank_entered")
    assert entered["data"] == {"portalHost": "online.fjord.example"}
    assert "token=abc" not in receiver.raw() and "Fjord Bank" not in receiver.raw()
    errors = receiver.of_type("flow.error_shown")
    assert errors and errors[0]["data"]["context"] == "searching institutions"
    assert errors[0]["data"]["reference"] in failed.text
    # Events may arrive in any order (docs/host-events.md): compare them sorted.
    exits = sorted(
        (e["data"]["step"], e["data"]["reason"]) for e in receiver.of_type("flow.exited")
    )
    assert exits == [("choose_bank", "discarded"), ("delegated_user", "finished_later")]


def test_a_poll_failing_check_after_check_tells_the_host_once(
    alice: Browser,
    sandbox: SandboxHandle,
    receiver: Receiver,
    deliver: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Waycore down while a page waits: the page says so at every check, the host hears it once."""
    monkeypatch.setattr("views.errors.POLL_ERROR_EVENT_SECONDS", 10**9)  # one window, surely
    connection_id = start_listed(alice, "scenario_slow")
    finish(alice, connection_id)
    sandbox.fault(mode="error", status=500, count=20, pathPrefix=f"/v1/connections/{connection_id}")
    url = f"/connections/{connection_id}/activation/status?seen=pendingActivation"
    for _ in range(4):
        sandbox.expire_app_state()  # each check is due, so each one asks Waycore and fails
        region = alice.get(url, htmx=True, target="activation-status")
        assert "could not" in region.text.lower() or "still" in region.text.lower()
    deliver()
    shown = [e for e in receiver.of_type("flow.error_shown") if connection_id in str(e["data"])]
    assert len(shown) == 1, shown


def _status_changed(event_id: str, connection_id: str, status: str) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "type": "connection.status_changed",
            "createdAt": "2026-11-25T12:00:00Z",
            "data": {"connectionId": connection_id, "status": status, "kind": "ready"},
        }
    ).encode()


def test_a_break_seen_by_a_page_and_by_a_webhook_is_one_event_for_the_host(
    alice: Browser,
    client: TestClient,
    sandbox: SandboxHandle,
    receiver: Receiver,
    deliver: Any,
) -> None:
    connection_id = start_listed(alice, "chase")
    finish(alice, connection_id)
    region_url = f"/connections/{connection_id}/activation/status?seen=pendingActivation"
    sandbox.set_status(connection_id, "errored")
    alice.get(region_url, htmx=True, target="activation-status")  # the page sees the break
    body = _status_changed("evt_break", connection_id, "errored")
    delivered = client.post(
        "/webhooks/waycore",
        content=body,
        headers={"Waycore-Signature": sign(WEBHOOK_SECRET, body)},
    )
    assert delivered.status_code == 200
    deliver()
    (broke,) = receiver.of_type("connection.needs_attention")  # one id: queued once, sent once
    assert broke["data"]["status"] == "errored"
    assert broke["data"]["previousStatus"] == "pendingActivation"


def test_a_webhook_about_an_activation_nobody_watched_tells_the_host(
    alice: Browser, client: TestClient, sandbox: SandboxHandle, receiver: Receiver, deliver: Any
) -> None:
    connection_id = start_listed(alice, "chase")
    finish(alice, connection_id)
    sandbox.advance(31)  # activated at Waycore; no page polls
    body = _status_changed("evt_ready", connection_id, "active")
    client.post(
        "/webhooks/waycore", content=body, headers={"Waycore-Signature": sign(WEBHOOK_SECRET, body)}
    )
    deliver()
    (activated,) = receiver.of_type("connection.activated")
    assert activated["data"]["connectionId"] == connection_id


def test_events_are_structured_log_lines_too(
    alice: Browser, caplog: pytest.LogCaptureFixture, receiver: Receiver, deliver: Any
) -> None:
    caplog.set_level(logging.INFO, logger="app.events")
    response = alice.get("/connections/new")
    deliver()
    lines = [
        json.loads(r.getMessage().removeprefix("host_event "))
        for r in caplog.records
        if r.getMessage().startswith("host_event ")
    ]
    assert lines == receiver.accepted
    assert lines[0]["requestId"] == response.headers["x-request-id"]


def test_the_audit_trail_of_a_journey(
    alice: Browser, sandbox: SandboxHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.audit")
    draft = alice.post("/connections/drafts", {"institution_id": "apple_bank"})
    discarded = alice.post(f"{draft.headers['location']}/discard")
    created = alice.post(
        "/connections/continue",
        {
            "draft_id": alice.post("/connections/drafts", {"institution_id": "chase"})
            .headers["location"]
            .split("/")[-1],
            "mode": "listed",
        },
    )
    connection_id = connection_id_from(created)
    finish(alice, connection_id, bank_username="acme-ops", password=BANK_PASSWORD)
    sandbox.advance(36)
    alice.post(f"/connections/{connection_id}/sync")
    alice.post(f"/connections/{connection_id}/delete", {"confirm": "delete"})

    entries = [
        json.loads(r.getMessage().removeprefix("audit "))
        for r in caplog.records
        if r.name == "app.audit"
    ]
    assert [e["action"] for e in entries] == [
        "draft.discarded",
        "connection.created",
        "credentials.submitted",
        "setup.completed",
        "sync.requested",
        "connection.deleted",
    ]
    assert {(e["user_id"], e["tenant_id"]) for e in entries} == {("u-alice", "acme-manufacturing")}
    assert entries[0]["request_id"] == discarded.headers["x-request-id"]
    assert entries[1]["request_id"] == created.headers["x-request-id"]
    assert entries[1]["connection_id"] == connection_id
    assert entries[2]["fields"] == "bankUsername,password"
    assert entries[4]["outcome"] == "started"
    text = caplog.text
    assert BANK_PASSWORD not in text and "acme-ops" not in text
