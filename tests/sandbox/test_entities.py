"""Entities: the default org entity, create, duplicate, filter, get, delete."""

from __future__ import annotations

import uuid

import httpx
import pytest

from waycore.models import Entity

from .helpers import assert_error, default_entity_id

pytestmark = pytest.mark.anyio


async def test_default_org_entity_exists(client: httpx.AsyncClient) -> None:
    page = (await client.get("/v1/entities")).json()
    defaults = [e for e in page["data"] if e["isDefaultOrgEntity"]]
    assert len(defaults) == 1
    entity = Entity.from_api(defaults[0])
    assert uuid.UUID(entity.entity_id)
    assert entity.external_entity_id


async def test_create_get_filter(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/entities",
        json={"externalEntityId": "cust-42", "name": "Acme Ltd", "metadata": {"tier": "gold"}},
    )
    assert response.status_code == 201
    created = response.json()
    assert set(created) == {
        "entityId",
        "externalEntityId",
        "isDefaultOrgEntity",
        "name",
        "metadata",
        "createdAt",
        "updatedAt",
    }
    assert created["isDefaultOrgEntity"] is False
    assert created["metadata"] == {"tier": "gold"}
    assert created["createdAt"].endswith("Z")
    got = await client.get(f"/v1/entities/{created['entityId']}")
    assert got.status_code == 200 and got.json() == created
    await client.post("/v1/entities", json={"externalEntityId": "cust-43"})
    filtered = (await client.get("/v1/entities", params={"externalEntityId": "cust-42"})).json()
    assert [e["entityId"] for e in filtered["data"]] == [created["entityId"]]
    everything = (await client.get("/v1/entities")).json()["data"]
    assert len(everything) == 3


async def test_duplicate_external_id_is_409(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/entities", json={"externalEntityId": "dup"})).status_code == 201
    assert_error(
        await client.post("/v1/entities", json={"externalEntityId": "dup"}), 409, "conflict"
    )


@pytest.mark.parametrize(
    "body",
    [{}, {"externalEntityId": ""}, {"externalEntityId": 5}, {"externalEntityId": "a", "name": 3}],
)
async def test_invalid_bodies(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    assert_error(await client.post("/v1/entities", json=body), 400, "invalid_request")


async def test_unknown_entity_is_404(client: httpx.AsyncClient) -> None:
    assert_error(await client.get(f"/v1/entities/{uuid.uuid4()}"), 404, "not_found")


async def test_delete(client: httpx.AsyncClient) -> None:
    created = (await client.post("/v1/entities", json={"externalEntityId": "gone"})).json()
    conn = await client.post(
        "/v1/connections", json={"entityId": created["entityId"], "institutionId": "chase"}
    )
    assert (await client.delete(f"/v1/entities/{created['entityId']}")).status_code == 204
    assert_error(await client.get(f"/v1/entities/{created['entityId']}"), 404, "not_found")
    assert_error(await client.get(f"/v1/connections/{conn.json()['id']}"), 404, "not_found")
    default = await default_entity_id(client)
    assert_error(await client.delete(f"/v1/entities/{default}"), 409, "conflict")
