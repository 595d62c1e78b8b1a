"""`POST /webhooks/waycore`: signed deliveries only, each event once."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.datastructures import Secret
from starlette.testclient import TestClient

from config import Settings
from server import create_app
from tests.support import Browser, SandboxHandle, connection_id_from, make_settings, start_listed
from waycore.webhooks import sign

SECRET = "whsec_test_receiver_secret"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return replace(make_settings(tmp_path), webhook_secret=Secret(SECRET))


def deliver(client: TestClient, event: dict[str, object], secret: str = SECRET) -> int:
    body = json.dumps(event).encode()
    response = client.post(
        "/webhooks/waycore",
        content=body,
        headers={"Content-Type": "application/json", "Waycore-Signature": sign(secret, body)},
    )
    return response.status_code


def status_changed(event_id: str, connection_id: str) -> dict[str, object]:
    return {
        "id": event_id,
        "type": "connection.status_changed",
        "createdAt": "2026-11-25T12:00:00Z",
        "data": {
            "connectionId": connection_id,
            "status": "active",
            "previousStatus": "pendingActivation",
            "kind": "ready",
        },
    }


def test_a_signed_activation_event_clears_the_drafts_without_a_csrf_token(
    alice: Browser, client: TestClient, sandbox: SandboxHandle
) -> None:
    location = alice.post("/connections/drafts", {"institution_id": "chase"}).headers["location"]
    connection_id = start_listed(alice, "chase")
    draft_id = location.split("/")[-1]
    alice.post("/connections/continue", {"draft_id": draft_id, "mode": "listed"})
    # it has a connection: its page shows what was chosen and the way on
    assert alice.get(f"/connections/drafts/{draft_id}").status_code == 200
    sandbox.set_status(connection_id, "active", "ready")  # what the event reports, at Waycore
    assert deliver(client, status_changed("evt_1", connection_id)) == 200
    assert alice.get(f"/connections/drafts/{draft_id}").status_code == 404


def test_an_event_is_checked_against_waycore_before_acting(
    alice: Browser, client: TestClient, sandbox: SandboxHandle
) -> None:
    """The event says active, Waycore says still a draft: nothing is settled."""
    location = alice.post("/connections/drafts", {"institution_id": "chase"}).headers["location"]
    draft_id = location.split("/")[-1]
    connection_id = connection_id_from(
        alice.post("/connections/continue", {"draft_id": draft_id, "mode": "listed"})
    )
    assert deliver(client, status_changed("evt_1", connection_id)) == 200
    assert sandbox.calls("GET", f"/v1/connections/{connection_id}")
    assert alice.get(f"/connections/drafts/{draft_id}").status_code == 200  # kept


def test_the_same_event_twice_is_processed_once(client: TestClient) -> None:
    event = status_changed("evt_dup", "conn_nobody")
    assert deliver(client, event) == 200
    response = client.post(
        "/webhooks/waycore",
        content=json.dumps(event).encode(),
        headers={"Waycore-Signature": sign(SECRET, json.dumps(event).encode())},
    )
    assert response.json() == {"status": "duplicate"}


@pytest.mark.parametrize("header", [None, "t=1,v1=00", "garbage"])
def test_unsigned_or_badly_signed_deliveries_are_refused(
    client: TestClient, header: str | None
) -> None:
    headers = {"Waycore-Signature": header} if header else {}
    response = client.post("/webhooks/waycore", content=b"{}", headers=headers)
    assert response.status_code == 400


def test_a_delivery_signed_with_another_secret_is_refused(client: TestClient) -> None:
    assert deliver(client, status_changed("evt_2", "conn_x"), secret="whsec_other") == 400


def test_without_a_secret_the_receiver_is_off(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as client:
        assert deliver(client, status_changed("evt_3", "conn_x")) == 404


def test_the_embedded_sandbox_gets_a_registration_for_the_receiver(tmp_path: Path) -> None:
    url = "http://127.0.0.1:8000/webhooks/waycore"
    app = create_app(replace(make_settings(tmp_path), webhook_url=url))
    with TestClient(app) as client:
        sandbox = SandboxHandle(client, app)
        (created,) = sandbox.calls("POST", "/v1/webhooks")
        assert created.body == {
            "url": url,
            "events": ["connection.status_changed", "transactions.sync_available", "test"],
        }
        _, listed = sandbox.control("GET", "/v1/webhooks")
        assert [w["url"] for w in listed["data"]] == [url]


def test_a_test_event_is_acknowledged_and_changes_nothing(client: TestClient) -> None:
    event = {"id": "evt_t", "type": "test", "createdAt": "2026-11-25T12:00:00Z", "data": {}}
    assert deliver(client, event) == 200


def test_an_absurd_timestamp_or_body_is_refused_not_a_crash(client: TestClient) -> None:
    response = client.post(
        "/webhooks/waycore",
        content=b"{}",
        headers={"Waycore-Signature": "t=" + "9" * 400 + ",v1=00"},
    )
    assert response.status_code == 400
    big = b"{" + b" " * (300 * 1024) + b"}"
    response = client.post(
        "/webhooks/waycore", content=big, headers={"Waycore-Signature": sign(SECRET, big)}
    )
    assert response.status_code == 413
