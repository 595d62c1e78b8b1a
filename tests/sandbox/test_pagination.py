"""List pagination: limit bounds, opaque cursors bound to their query, complete walks."""

from __future__ import annotations

import httpx
import pytest

from waycore.sandbox import Sandbox

from .helpers import activate, assert_error, walk

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("limit", ["0", "501", "-1", "ten", "1.5"])
async def test_limit_bounds(client: httpx.AsyncClient, limit: str) -> None:
    assert_error(
        await client.get("/v1/institutions", params={"limit": limit}), 400, "invalid_limit"
    )


@pytest.mark.parametrize("limit", ["1", "500"])
async def test_limit_edges_are_allowed(client: httpx.AsyncClient, limit: str) -> None:
    from waycore.sandbox.catalog import INSTITUTIONS

    page = (await client.get("/v1/institutions", params={"limit": limit})).json()
    assert len(page["data"]) == min(int(limit), len(INSTITUTIONS))


async def test_default_limit_and_last_page(client: httpx.AsyncClient) -> None:
    page = (await client.get("/v1/institutions")).json()
    assert len(page["data"]) <= 100
    assert page["pagination"] == {"hasMore": False, "nextCursor": None}


@pytest.mark.parametrize("cursor", ["garbage", "e30", "eyJmIjoxfQ", "%%%"])
async def test_malformed_cursor(client: httpx.AsyncClient, cursor: str) -> None:
    assert_error(
        await client.get("/v1/institutions", params={"cursor": cursor}), 400, "invalid_cursor"
    )


async def test_cursor_is_bound_to_its_query(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    a = await activate(client, sandbox, institutionId="chase")
    b = await activate(client, sandbox, institutionId="barclays")
    first = (
        await client.get("/v1/transactions", params={"connectionId": a["id"], "limit": 2})
    ).json()
    cursor = first["pagination"]["nextCursor"]
    assert cursor
    other = await client.get(
        "/v1/transactions", params={"connectionId": b["id"], "limit": 2, "cursor": cursor}
    )
    assert_error(other, 400, "invalid_cursor")
    wrong_endpoint = await client.get(
        "/v1/balances", params={"connectionId": a["id"], "cursor": cursor}
    )
    assert_error(wrong_endpoint, 400, "invalid_cursor")
    other_limit = await client.get(
        "/v1/transactions", params={"connectionId": a["id"], "limit": 5, "cursor": cursor}
    )
    assert other_limit.status_code == 200  # a new page size is the same query


@pytest.mark.parametrize("limit", [1, 7, 100])
async def test_walk_gives_every_item_once(
    client: httpx.AsyncClient, sandbox: Sandbox, limit: int
) -> None:
    conn = await activate(client, sandbox, institutionId="chase")
    everything = await walk(client, "/v1/transactions", connectionId=conn["id"], limit=500)
    paged = await walk(client, "/v1/transactions", connectionId=conn["id"], limit=limit)
    assert [t["id"] for t in paged] == [t["id"] for t in everything]
    assert len({t["id"] for t in paged}) == len(paged)
    balances = await walk(client, "/v1/balances", connectionId=conn["id"], limit=limit)
    keys = [(b["date"], b["accountId"]) for b in balances]
    assert len(set(keys)) == len(keys)
    assert keys == sorted(keys, key=lambda k: (-int(k[0].replace("-", "")), k[1]))


async def test_transactions_order(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    conn = await activate(client, sandbox, institutionId="chase")
    txns = await walk(client, "/v1/transactions", connectionId=conn["id"], status="posted")
    keys = [(t["postedDate"], t["id"]) for t in txns]
    assert keys == sorted(keys, key=lambda k: (-int(k[0].replace("-", "")), k[1]))


async def test_entities_pages(client: httpx.AsyncClient) -> None:
    for n in range(5):
        await client.post("/v1/entities", json={"externalEntityId": f"p{n}"})
    items = await walk(client, "/v1/entities", limit=2)
    assert len(items) == 6
