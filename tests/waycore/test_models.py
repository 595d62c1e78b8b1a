"""Parsing of Waycore `/v1` JSON into the typed models."""

from __future__ import annotations

from typing import Any

import pytest

from waycore.models import Connection, Institution, Webhook

SETUP_CONNECTION: dict[str, Any] = {
    "id": "conn_123",
    "entityId": "11111111-2222-3333-4444-555555555555",
    "status": "draft",
    "createdAt": "2023-11-07T05:31:56Z",
    "updatedAt": "2023-11-07T05:31:56Z",
    "setup": {
        "status": "awaitingDelegatedUserCreation",
        "instructions": {
            "firstName": "Waycore",
            "lastName": "Service",
            "address": "12 New Fetter Lane, London, United Kingdom, EC4A 1JP",
            "email": "svc-conn123@delegated.waycore.test",
            "username": "waycore_conn123",
            "phoneNumber": "+44 20 0000 0000",
            "emailProvisioningStatus": "pending",
            "phoneNumberProvisioningStatus": "pending",
        },
        "credentialsPresent": True,
        "actionRequiredBy": "endUser",
        "nextAction": "createDelegatedUser",
    },
    "kind": "setup",
    "portalUrl": "https://business.bank.example.com/login",
    "institutionId": None,
    "institutionName": None,
    "metadata": {},
}

READY_CONNECTION: dict[str, Any] = {
    "id": "conn_456",
    "entityId": "11111111-2222-3333-4444-555555555555",
    "institutionId": "chase",
    "institutionName": "Chase",
    "status": "active",
    "syncStatus": "idle",
    "kind": "ready",
    "portalUrl": None,
    "lastSyncedAt": "2026-03-04T12:00:00Z",
    "errorCode": None,
    "errorMessage": None,
    "createdAt": "2026-03-01T09:00:00Z",
    "updatedAt": "2026-03-04T12:00:00Z",
    "metadata": {"tenant": "t1"},
}


def test_setup_connection_carries_the_delegated_user_instructions() -> None:
    conn = Connection.from_api(SETUP_CONNECTION)
    assert (conn.id, conn.kind, conn.status) == ("conn_123", "setup", "draft")
    assert conn.institution_id is None
    assert conn.portal_url == "https://business.bank.example.com/login"
    assert conn.setup is not None
    assert conn.setup.status == "awaitingDelegatedUserCreation"
    assert conn.setup.credentials_present is True
    assert conn.setup.action_required_by == "endUser"
    assert conn.setup.next_action == "createDelegatedUser"
    ins = conn.setup.instructions
    assert ins is not None
    assert (ins.first_name, ins.last_name) == ("Waycore", "Service")
    assert ins.address == "12 New Fetter Lane, London, United Kingdom, EC4A 1JP"
    assert ins.email == "svc-conn123@delegated.waycore.test"
    assert ins.username == "waycore_conn123"
    assert ins.phone_number == "+44 20 0000 0000"
    assert ins.email_provisioning_status == "pending"
    assert ins.phone_number_provisioning_status == "pending"
    assert conn.is_ready is False


def test_ready_connection_parses_its_sync_fields() -> None:
    conn = Connection.from_api(READY_CONNECTION)
    assert conn.kind == "ready"
    assert conn.institution_id == "chase"
    assert conn.institution_name == "Chase"
    assert conn.sync_status == "idle"
    assert conn.last_synced_at == "2026-03-04T12:00:00Z"
    assert conn.setup is None
    assert conn.metadata == {"tenant": "t1"}
    assert conn.is_ready is True


@pytest.mark.parametrize(
    ("kind", "status", "ready"),
    [
        ("ready", "active", True),
        ("ready", "reauthRequired", False),
        ("ready", "errored", False),
        ("ready", "paused", False),
        ("ready", "revoked", False),
        ("ready", "invalidConfig", False),
        ("setup", "active", False),
        ("setup", "pendingActivation", False),
        ("setup", "draft", False),
    ],
)
def test_is_ready_only_for_kind_ready_and_status_active(
    kind: str, status: str, ready: bool
) -> None:
    conn = Connection.from_api({**READY_CONNECTION, "kind": kind, "status": status})
    assert conn.is_ready is ready


def test_a_connection_without_kind_but_with_a_setup_record_is_not_ready() -> None:
    """`kind` defaults to "ready" only on the ready schema; a setup record means setup."""
    data = {k: v for k, v in SETUP_CONNECTION.items() if k != "kind"}
    data["status"] = "active"
    conn = Connection.from_api(data)
    assert conn.kind == "setup"
    assert conn.is_ready is False


def test_a_ready_connection_without_kind_defaults_to_ready() -> None:
    data = {k: v for k, v in READY_CONNECTION.items() if k != "kind"}
    assert Connection.from_api(data).kind == "ready"


def test_unknown_extra_fields_are_ignored() -> None:
    data = {
        **READY_CONNECTION,
        "statements": [{"id": "st_1"}],
        "someFutureField": {"nested": True},
        "fields": None,
    }
    assert Connection.from_api(data) == Connection.from_api(READY_CONNECTION)
    inst = Institution.from_api(
        {
            "institutionId": "chase",
            "name": "Chase",
            "canonicalPortalUrl": "https://secure.chase.com",
            "additionalPortalUrls": ["https://jpmorgan.chase.com", "https://secure.chase.com"],
            "logoUrl": "https://cdn.example/chase.png",
        }
    )
    assert inst.canonical_portal_url == "https://secure.chase.com"
    assert inst.additional_portal_urls == (
        "https://jpmorgan.chase.com",
        "https://secure.chase.com",
    )
    assert inst.portal_urls == ("https://secure.chase.com", "https://jpmorgan.chase.com")


def test_institution_without_portal_urls() -> None:
    inst = Institution.from_api({"institutionId": "acme_bank", "name": "Acme Bank"})
    assert inst.canonical_portal_url is None
    assert inst.additional_portal_urls == ()
    assert inst.portal_urls == ()


def test_webhook_repr_and_str_hide_the_secret() -> None:
    secret = "whsec_full_secret_shown_once_9f8e7d"
    hook = Webhook.from_api(
        {
            "id": "wh_1",
            "url": "https://host.example/waycore/webhooks",
            "events": ["connection.status_changed", "transactions.sync_available"],
            "secret": secret,
            "active": True,
            "createdAt": "2026-03-04T12:00:00Z",
            "updatedAt": "2026-03-04T12:00:00Z",
        }
    )
    assert hook.secret == secret
    assert hook.events == ("connection.status_changed", "transactions.sync_available")
    assert secret not in repr(hook)
    assert secret not in str(hook)
    assert secret not in f"{hook!r} {[hook]}"
    assert "wh_1" in repr(hook)


def test_a_connection_goes_back_to_waycores_shape_unchanged() -> None:
    from waycore.models import Connection

    setup = {
        "id": "conn_1",
        "entityId": "ent_1",
        "kind": "setup",
        "status": "draft",
        "institutionId": "chase",
        "institutionName": "JPMorgan Chase",
        "portalUrl": "https://secure.chase.com/login?x=1",
        "createdAt": "2026-11-26T10:00:00Z",
        "setup": {
            "status": "awaitingDelegatedUserCreation",
            "instructions": {
                "firstName": "Waycore",
                "username": "wc-acme-7",
                "email": "a@b.c",
                "emailProvisioningStatus": "pending",
            },
            "credentialsPresent": False,
            "nextAction": "createDelegatedUser",
        },
        "metadata": {"k": "v"},
    }
    ready = {
        "id": "conn_2",
        "entityId": "ent_1",
        "kind": "ready",
        "status": "active",
        "syncStatus": "idle",
        "lastSyncedAt": "2026-11-26T11:00:00Z",
        "errorCode": None,
    }
    for data in (setup, ready):
        connection = Connection.from_api(data)
        assert Connection.from_api(connection.to_api()) == connection
