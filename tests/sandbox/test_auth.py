"""Auth, scopes, request ids and the error body."""

from __future__ import annotations

import re

import httpx
import pytest

from waycore.sandbox import Sandbox

from .helpers import ROOT_KEY, assert_error, auth, default_entity_id

pytestmark = pytest.mark.anyio

#: (method, path, body, scope the endpoint needs)
ENDPOINTS: list[tuple[str, str, object, str]] = [
    ("GET", "/v1/entities", None, "entities:read"),
    ("GET", "/v1/entities/00000000-0000-4000-8000-000000000000", None, "entities:read"),
    ("POST", "/v1/entities", {"externalEntityId": "x"}, "entities:write"),
    ("GET", "/v1/institutions", None, "connections:read"),
    ("GET", "/v1/institutions/chase", None, "connections:read"),
    ("GET", "/v1/connections", None, "connections:read"),
    ("GET", "/v1/connections/conn_missing", None, "connections:read"),
    ("POST", "/v1/connections", {"entityId": "x", "institutionId": "chase"}, "connections:write"),
    ("PUT", "/v1/connections/conn_missing/credentials", {"password": "x"}, "connections:write"),
    ("PUT", "/v1/connections/conn_missing/setupCompletion", {}, "connections:write"),
    ("PUT", "/v1/connections/conn_missing/sync", None, "connections:write"),
    ("DELETE", "/v1/connections/conn_missing", None, "connections:write"),
    ("GET", "/v1/accounts", None, "accounts:read"),
    ("GET", "/v1/accounts/acct_missing", None, "accounts:read"),
    ("GET", "/v1/balances", None, "accounts:read"),
    ("GET", "/v1/transactions", None, "transactions:read"),
    ("GET", "/v1/webhooks", None, "webhooks:read"),
    ("POST", "/v1/webhooks", {"url": "https://h.example/x", "events": ["test"]}, "webhooks:write"),
    ("PATCH", "/v1/webhooks/wh_missing", {"active": False}, "webhooks:write"),
    ("DELETE", "/v1/webhooks/wh_missing", None, "webhooks:write"),
]


async def _mint(client: httpx.AsyncClient, scopes: list[str]) -> str:
    response = await client.post("/_sandbox/keys", json={"scopes": scopes})
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


async def test_missing_and_unknown_keys_are_401(client: httpx.AsyncClient) -> None:
    no_key = await client.get("/v1/entities", headers={"Authorization": ""})
    assert_error(no_key, 401, "unauthorized")
    wrong = await client.get("/v1/entities", headers=auth("way_test_nope_0000"))
    assert_error(wrong, 401, "unauthorized")
    basic = await client.get("/v1/entities", headers={"Authorization": f"Basic {ROOT_KEY}"})
    assert_error(basic, 401, "unauthorized")
    assert ROOT_KEY not in wrong.text


async def test_minted_key_format(client: httpx.AsyncClient) -> None:
    key = await _mint(client, ["entities:read"])
    assert re.fullmatch(r"way_test_[0-9a-f]+_[0-9a-f]+", key)
    assert (await client.get("/v1/entities", headers=auth(key))).status_code == 200


@pytest.mark.parametrize(("method", "path", "body", "scope"), ENDPOINTS)
async def test_each_endpoint_needs_its_scope(
    client: httpx.AsyncClient, method: str, path: str, body: object, scope: str
) -> None:
    others = await _mint(client, [s for s in _all_scopes() if s != scope])
    denied = await client.request(method, path, json=body, headers=auth(others))
    err = assert_error(denied, 403, "insufficient_scope")
    assert scope in err["error"]["message"]
    only = await _mint(client, [scope])
    allowed = await client.request(method, path, json=body, headers=auth(only))
    assert allowed.status_code not in (401, 403), allowed.text


def _all_scopes() -> list[str]:
    from waycore.sandbox.config import SCOPES

    return list(SCOPES)


async def test_control_api_needs_the_root_key(client: httpx.AsyncClient) -> None:
    every = await _mint(client, _all_scopes())
    assert_error(
        await client.get("/_sandbox/requests", headers=auth(every)), 403, "insufficient_scope"
    )
    assert_error(
        await client.post(
            "/_sandbox/clock", json={"advanceSeconds": 1}, headers={"Authorization": ""}
        ),
        401,
        "unauthorized",
    )
    assert (await client.get("/_sandbox/requests")).status_code == 200


async def test_every_response_has_a_request_id(client: httpx.AsyncClient) -> None:
    listing = await client.get("/v1/institutions", params={"limit": 1})
    rid = listing.headers["X-Request-Id"]
    assert re.fullmatch(r"req_[0-9a-f]+", rid)
    assert listing.json()["meta"]["requestId"] == rid
    entity = await client.get(f"/v1/entities/{await default_entity_id(client)}")
    assert entity.headers["X-Request-Id"].startswith("req_")
    assert (await client.get("/_sandbox/clock")).headers["X-Request-Id"].startswith("req_")
    assert_error(await client.get("/v1/no-such-thing"), 404, "not_found")


async def test_bad_json_and_unknown_fields(client: httpx.AsyncClient) -> None:
    garbage = await client.post(
        "/v1/entities", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_error(garbage, 400, "invalid_request")
    extra = await client.post("/v1/entities", json={"externalEntityId": "a", "colour": "red"})
    assert "colour" in assert_error(extra, 400, "invalid_request")["error"]["message"]
    assert_error(await client.post("/v1/entities", json=[1]), 400, "invalid_request")


async def test_root_key_works_in_process(sandbox: Sandbox) -> None:
    key = sandbox.mint_key(["connections:read"])
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sb") as c:
        assert (await c.get("/v1/institutions", headers=auth(key))).status_code == 200
        assert_error(await c.get("/v1/entities", headers=auth(key)), 403, "insufficient_scope")
