"""Small helpers shared by the sandbox tests (plain functions, no fixtures)."""

from __future__ import annotations

from typing import Any

import httpx

from waycore.sandbox import Sandbox

ROOT_KEY = "way_test_root_5f1c0ffee0ddba11"
BASE_URL = "http://waycore-sandbox"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["meta"]["requestId"] == response.headers["X-Request-Id"]
    assert body["meta"]["requestId"].startswith("req_")
    return body


async def default_entity_id(client: httpx.AsyncClient) -> str:
    page = (await client.get("/v1/entities")).json()
    return str(next(e["entityId"] for e in page["data"] if e["isDefaultOrgEntity"]))


async def create_connection(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    if "entityId" not in body:
        body["entityId"] = await default_entity_id(client)
    response = await client.post("/v1/connections", json=body)
    assert response.status_code in (200, 201), response.text
    data: dict[str, Any] = response.json()
    return data


async def activate(client: httpx.AsyncClient, sandbox: Sandbox, **body: Any) -> dict[str, Any]:
    """Create a connection, complete setup, advance past activation and the first sync."""
    conn = await create_connection(client, **body)
    response = await client.put(f"/v1/connections/{conn['id']}/setupCompletion")
    assert response.status_code == 200, response.text
    cfg = sandbox.config
    sandbox.advance_clock(cfg.activation_seconds + cfg.sync_seconds + 1)
    data: dict[str, Any] = (await client.get(f"/v1/connections/{conn['id']}")).json()
    return data


async def walk(client: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list endpoint, following `nextCursor`."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["data"])
        cursor = page["pagination"]["nextCursor"]
        assert page["pagination"]["hasMore"] is (cursor is not None)
        if cursor is None:
            return items
