"""Connections: create-or-return, strict bodies, portal URL rules, credentials, list and get."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from waycore.models import Connection
from waycore.sandbox import Sandbox

from .helpers import assert_error, create_connection, default_entity_id

pytestmark = pytest.mark.anyio

PASSWORD = "Hunter2-very-secret-pw"


async def test_new_connection_is_a_setup_draft(client: httpx.AsyncClient) -> None:
    entity = await default_entity_id(client)
    response = await client.post(
        "/v1/connections", json={"entityId": entity, "institutionId": "chase"}
    )
    assert response.status_code == 201
    body = response.json()
    assert re.fullmatch(r"conn_[0-9a-f]+", body["id"])
    assert body["kind"] == "setup" and body["status"] == "draft"
    assert body["entityId"] == entity
    assert body["institutionId"] == "chase" and body["institutionName"] == "JPMorgan Chase"
    assert body["portalUrl"] == "https://secure.chase.com/web/auth/dashboard"
    setup = body["setup"]
    assert setup["status"] == "awaitingDelegatedUserCreation"
    assert setup["credentialsPresent"] is False
    assert setup["actionRequiredBy"] == "endUser"
    assert setup["nextAction"] == "createDelegatedUser"
    ins = setup["instructions"]
    assert ins["firstName"] == "Waycore"
    assert re.fullmatch(r"Service \d{4}", ins["lastName"])
    assert ins["address"] == "12 New Fetter Lane, London, United Kingdom, EC4A 1JP"
    n = ins["lastName"].split()[1]
    assert ins["email"] == f"svc-{n}@delegates.waycore.example"
    assert ins["username"] == f"waycore{n}"
    assert re.fullmatch(r"\+44 20 7946 0\d{3}", ins["phoneNumber"])
    assert ins["emailProvisioningStatus"] == "pending"
    assert ins["phoneNumberProvisioningStatus"] == "pending"
    conn = Connection.from_api(body)
    assert conn.setup is not None and conn.setup.instructions is not None
    assert not conn.is_ready


async def test_same_input_returns_the_existing_one(client: httpx.AsyncClient) -> None:
    entity = await default_entity_id(client)
    body = {"entityId": entity, "institutionId": "chase"}
    first = await client.post("/v1/connections", json=body)
    again = await client.post("/v1/connections", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    portal = "https://access.jpmorgan.com/"
    other = await client.post("/v1/connections", json={**body, "portalUrl": portal})
    assert other.status_code == 201 and other.json()["portalUrl"] == portal
    same = await client.post("/v1/connections", json={**body, "portalUrl": portal})
    assert same.status_code == 200 and same.json()["id"] == other.json()["id"]
    ent2 = (await client.post("/v1/entities", json={"externalEntityId": "e2"})).json()
    third = await client.post(
        "/v1/connections", json={"entityId": ent2["entityId"], "institutionId": "chase"}
    )
    assert third.status_code == 201


async def test_portal_only_connection_keeps_the_url_exactly(client: httpx.AsyncClient) -> None:
    entity = await default_entity_id(client)
    url = "https://Business.Bank.example.com/login?next=%2Fhome#frag"
    first = await client.post("/v1/connections", json={"entityId": entity, "portalUrl": url})
    assert first.status_code == 201
    body = first.json()
    assert body["portalUrl"] == url
    assert body["institutionId"] is None and body["institutionName"] is None
    again = await client.post("/v1/connections", json={"entityId": entity, "portalUrl": url})
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    lower = await client.post(
        "/v1/connections", json={"entityId": entity, "portalUrl": url.lower()}
    )
    assert lower.status_code == 201


async def test_strict_body_rejects_host_only_fields(client: httpx.AsyncClient) -> None:
    entity = await default_entity_id(client)
    response = await client.post(
        "/v1/connections",
        json={
            "entityId": entity,
            "portalUrl": "https://bank.example.com/",
            "requestedInstitutionName": "Bank of Example",
        },
    )
    err = assert_error(response, 400, "invalid_request")
    assert "requestedInstitutionName" in err["error"]["message"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"institutionId": "chase"}, "invalid_request"),
        ({"entityId": "ENTITY"}, "invalid_request"),
        (
            {"entityId": "00000000-0000-4000-8000-000000000000", "institutionId": "chase"},
            "invalid_entity",
        ),
        ({"entityId": "ENTITY", "institutionId": "nowhere_bank"}, "invalid_institution"),
        ({"entityId": "ENTITY", "portalUrl": "http://bank.example.com/"}, "invalid_portal_url"),
        ({"entityId": "ENTITY", "portalUrl": "bank.example.com"}, "invalid_portal_url"),
        ({"entityId": "ENTITY", "portalUrl": "https://"}, "invalid_portal_url"),
        ({"entityId": "ENTITY", "portalUrl": "https://bad host/"}, "invalid_portal_url"),
        (
            {"entityId": "ENTITY", "institutionId": "chase", "portalUrl": "https://evil.example/"},
            "invalid_portal_url",
        ),
    ],
)
async def test_create_validation(
    client: httpx.AsyncClient, body: dict[str, Any], code: str
) -> None:
    entity = await default_entity_id(client)
    sent = {k: (entity if v == "ENTITY" else v) for k, v in body.items()}
    assert_error(await client.post("/v1/connections", json=sent), 400, code)


async def test_list_filters_and_get(client: httpx.AsyncClient) -> None:
    a = await create_connection(client, institutionId="chase")
    b = await create_connection(client, institutionId="barclays")
    listing = (await client.get("/v1/connections")).json()
    assert [c["id"] for c in listing["data"]] == [a["id"], b["id"]]
    by_inst = (await client.get("/v1/connections", params={"institutionId": "barclays"})).json()
    assert [c["id"] for c in by_inst["data"]] == [b["id"]]
    by_status = (await client.get("/v1/connections", params={"status": "active"})).json()
    assert by_status["data"] == []
    by_entity = await client.get("/v1/connections", params={"entityId": a["entityId"]})
    assert len(by_entity.json()["data"]) == 2
    assert_error(
        await client.get("/v1/connections", params={"status": "bogus"}), 400, "invalid_request"
    )
    got = await client.get(f"/v1/connections/{a['id']}")
    assert got.status_code == 200 and got.json()["id"] == a["id"]
    assert_error(await client.get("/v1/connections/conn_doesnotexist"), 404, "not_found")


async def test_provisioning_becomes_active(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    conn = await create_connection(client, institutionId="chase")
    sandbox.advance_clock(sandbox.config.provisioning_seconds + 0.5)
    ins = (await client.get(f"/v1/connections/{conn['id']}")).json()["setup"]["instructions"]
    assert ins["emailProvisioningStatus"] == "active"
    assert ins["phoneNumberProvisioningStatus"] == "active"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"bankUsername": "", "password": "   "},
        {"bankUsername": None, "bankCustomerId": None, "password": None},
    ],
)
async def test_blank_credentials_are_rejected(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    conn = await create_connection(client, institutionId="chase")
    response = await client.put(f"/v1/connections/{conn['id']}/credentials", json=body)
    assert_error(response, 400, "invalid_credentials")


async def test_credentials_are_accepted_and_the_password_never_leaves(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    conn = await create_connection(client, institutionId="chase")
    path = f"/v1/connections/{conn['id']}/credentials"
    extra = await client.put(path, json={"password": PASSWORD, "pin": "1234"})
    assert_error(extra, 400, "invalid_request")
    assert PASSWORD not in extra.text
    response = await client.put(path, json={"bankUsername": "acme-ops", "password": PASSWORD})
    assert response.status_code == 200
    assert response.json()["setup"]["credentialsPresent"] is True
    assert PASSWORD not in response.text
    assert PASSWORD not in (await client.get(f"/v1/connections/{conn['id']}")).text
    assert PASSWORD not in (await client.get("/v1/connections")).text
    log = await client.get("/_sandbox/requests")
    assert PASSWORD not in log.text
    sent = [r for r in log.json()["data"] if r["path"] == path and r["status"] == 200]
    assert sent[0]["body"] == {"bankUsername": "acme-ops", "password": "[redacted]"}
    assert PASSWORD not in json.dumps([r.to_api() for r in sandbox.requests])
    assert all("authorization" not in json.dumps(r.to_api()).lower() for r in sandbox.requests)


async def test_credentials_only_in_setup_or_for_reauthentication(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    from .helpers import activate

    ready = await activate(client, sandbox, institutionId="chase")
    response = await client.put(
        f"/v1/connections/{ready['id']}/credentials", json={"bankUsername": "x"}
    )
    assert_error(response, 409, "invalid_state")
    missing = await client.put("/v1/connections/conn_nope/credentials", json={"bankUsername": "x"})
    assert_error(missing, 404, "not_found")
    reauth = await activate(client, sandbox, institutionId="scenario_reauth_required")
    assert (reauth["kind"], reauth["status"]) == ("ready", "reauthRequired")
    again = await client.put(
        f"/v1/connections/{reauth['id']}/credentials", json={"password": "new-bank-password"}
    )
    assert again.status_code == 200, again.text
    body = again.json()
    assert (body["kind"], body["status"]) == ("ready", "reauthRequired")  # Waycore decides when
    assert "new-bank-password" not in again.text
