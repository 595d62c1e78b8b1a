"""`WaycoreClient` against a respx-faked Waycore `/v1`.

Every test builds the client the way the app does (`WaycoreClient.create(base_url, key, ...)`),
with a transport that routes into a respx router, and a recording `sleep` so retries cost no time.
The `api` fixture checks, after every test, that each request that left the client carried the
Bearer key, went to the configured host and used a `/v1/` path.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import respx

import waycore.client as client_module
from waycore.client import WaycoreClient
from waycore.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    WaycoreAPIError,
    WaycoreError,
    WaycoreTimeout,
    WaycoreTransportError,
    WaycoreUnavailable,
)
from waycore.models import Connection, Page

BASE = "https://api.waycore.test"
KEY = "way_test_k1x9_S3cretPartThatMustNeverLeak"
KEY_SECRET_PART = "S3cretPartThatMustNeverLeak"
ENTITY_ID = "11111111-2222-3333-4444-555555555555"
CONN_ID = "conn_123"


# ---------------------------------------------------------------------- fakes and fixtures


class RecordingSleep:
    """Stands in for `asyncio.sleep`: records each requested delay, waits for nothing."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=True, assert_all_mocked=True) as router:
        yield router
        for call in router.calls:
            request = call.request
            assert request.headers["authorization"] == f"Bearer {KEY}"
            assert request.headers["accept"] == "application/json"
            assert request.url.scheme == "https"
            assert request.url.host == "api.waycore.test"
            assert request.url.path.startswith("/v1/"), request.url.path
            assert KEY_SECRET_PART not in str(request.url)
            assert KEY_SECRET_PART.encode() not in request.content


def make_client(
    api: respx.MockRouter, sleep: RecordingSleep, base_url: str = BASE + "/v1", **options: Any
) -> WaycoreClient:
    return WaycoreClient.create(
        base_url, KEY, transport=httpx.MockTransport(api.async_handler), sleep=sleep, **options
    )


@pytest.fixture
async def client(
    api: respx.MockRouter, sleeps: RecordingSleep, anyio_backend: str
) -> Any:  # AsyncIterator[WaycoreClient]
    async with make_client(api, sleeps) as c:
        yield c


# ---------------------------------------------------------------------- response builders


def entity(external_id: str = "cust-42", entity_id: str = ENTITY_ID) -> dict[str, Any]:
    return {
        "entityId": entity_id,
        "externalEntityId": external_id,
        "isDefaultOrgEntity": False,
        "name": "Acme Ltd",
        "createdAt": "2026-03-01T09:00:00Z",
        "updatedAt": "2026-03-01T09:00:00Z",
        "metadata": {"tenant": "t1"},
    }


def institution(institution_id: str = "chase") -> dict[str, Any]:
    return {
        "institutionId": institution_id,
        "name": institution_id.title(),
        "canonicalPortalUrl": f"https://secure.{institution_id}.example/login",
        "additionalPortalUrls": [f"https://business.{institution_id}.example/"],
    }


def setup_connection(conn_id: str = CONN_ID, status: str = "draft") -> dict[str, Any]:
    return {
        "id": conn_id,
        "entityId": ENTITY_ID,
        "status": status,
        "kind": "setup",
        "institutionId": "chase",
        "institutionName": "Chase",
        "portalUrl": "https://secure.chase.example/login",
        "createdAt": "2026-03-01T09:00:00Z",
        "updatedAt": "2026-03-01T09:00:00Z",
        "setup": {
            "status": "awaitingDelegatedUserCreation",
            "instructions": {
                "firstName": "Waycore",
                "lastName": "Service",
                "address": "12 New Fetter Lane, London, United Kingdom, EC4A 1JP",
                "email": "svc@delegated.waycore.test",
                "username": "waycore_conn123",
                "phoneNumber": "+44 20 0000 0000",
            },
            "credentialsPresent": False,
            "actionRequiredBy": "endUser",
            "nextAction": "createDelegatedUser",
        },
        "metadata": {},
    }


def ready_connection(conn_id: str = CONN_ID, sync_status: str = "idle") -> dict[str, Any]:
    return {
        "id": conn_id,
        "entityId": ENTITY_ID,
        "institutionId": "chase",
        "status": "active",
        "syncStatus": sync_status,
        "kind": "ready",
        "createdAt": "2026-03-01T09:00:00Z",
        "updatedAt": "2026-03-04T12:00:00Z",
    }


def account(account_id: str = "acc_1") -> dict[str, Any]:
    return {
        "id": account_id,
        "connectionId": CONN_ID,
        "type": "checking",
        "currency": "USD",
        "name": "Operating",
        "status": "open",
        "maskedNumber": "****1234",
        "currentBalance": "1234.56",
        "availableBalance": "1200.00",
        "balanceAsOf": "2026-03-04T12:00:00Z",
    }


def balance(day: str = "2026-03-04", account_id: str = "acc_1") -> dict[str, Any]:
    return {
        "accountId": account_id,
        "connectionId": CONN_ID,
        "entityId": ENTITY_ID,
        "date": day,
        "ledgerBalance": "1234.56",
        "postedTransactionDelta": "-10.00",
        "source": "bankProvided",
        "updatedAt": "2026-03-04T12:00:00Z",
    }


def txn(txn_id: str = "txn_1") -> dict[str, Any]:
    return {
        "id": txn_id,
        "connectionId": CONN_ID,
        "accountId": "acc_1",
        "status": "posted",
        "postedDate": "2026-03-03",
        "updatedAt": "2026-03-03T10:00:00Z",
        "amount": "-42.10",
        "currency": "USD",
        "entryType": "debit",
        "description": "CARD PURCHASE",
        "rail": "card",
    }


def webhook(secret: str = "whsec_masked_****") -> dict[str, Any]:
    return {
        "id": "wh_1",
        "url": "https://host.example/waycore/webhooks",
        "events": ["connection.status_changed"],
        "secret": secret,
        "active": True,
        "createdAt": "2026-03-04T12:00:00Z",
        "updatedAt": "2026-03-04T12:00:00Z",
    }


def page(items: list[dict[str, Any]], next_cursor: str | None = None) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "data": items,
            "pagination": {"hasMore": next_cursor is not None, "nextCursor": next_cursor},
            "meta": {"requestId": "req_list"},
        },
    )


def paged(pages: dict[str | None, tuple[list[dict[str, Any]], str | None]]) -> Callable[..., Any]:
    """A side effect serving `pages[cursor]`; an unexpected cursor fails the test (KeyError)."""

    def serve(request: httpx.Request) -> httpx.Response:
        items, next_cursor = pages[request.url.params.get("cursor")]
        return page(items, next_cursor)

    return serve


def error(
    status: int,
    code: str = "some_code",
    message: str = "something is wrong",
    request_id: str | None = "req_err_1",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if request_id is not None:
        body["meta"] = {"requestId": request_id}
    return httpx.Response(status, json=body, headers=headers)


def fresh(failure: Any) -> Any:
    """A parametrized failure: an exception class as is, or a new response from its factory.

    Responses are built per request (a `functools.partial`), never shared between tests.
    """
    return failure if isinstance(failure, type) else failure()


def body_of(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


def params_of(route: respx.Route, index: int = -1) -> dict[str, str]:
    return dict(route.calls[index].request.url.params)


# ---------------------------------------------------------------------- construction


@pytest.mark.anyio
@pytest.mark.parametrize(
    "base_url", [BASE, BASE + "/", BASE + "/v1", BASE + "/v1/"], ids=["bare", "slash", "v1", "v1/"]
)
async def test_base_url_with_or_without_v1_reaches_the_same_path(
    api: respx.MockRouter, sleeps: RecordingSleep, base_url: str
) -> None:
    route = api.get("/v1/entities/" + ENTITY_ID, name="get_entity").respond(json=entity())
    async with make_client(api, sleeps, base_url=base_url) as c:
        await c.get_entity(ENTITY_ID)
    assert route.calls.last.request.url == f"{BASE}/v1/entities/{ENTITY_ID}"


@pytest.mark.anyio
async def test_wrapping_an_existing_httpx_client(api: respx.MockRouter, anyio_backend: str) -> None:
    route = api.get("/v1/connections/" + CONN_ID, name="get_connection").respond(
        json=ready_connection()
    )
    http = httpx.AsyncClient(
        base_url=BASE,
        headers={"Authorization": f"Bearer {KEY}", "Accept": "application/json"},
        transport=httpx.MockTransport(api.async_handler),
    )
    async with WaycoreClient(http) as c:
        conn = await c.get_connection(CONN_ID)
    assert conn.is_ready
    assert route.call_count == 1
    assert http.is_closed


# ---------------------------------------------------------------------- entities


@pytest.mark.anyio
async def test_list_entities_sends_the_external_id_filter(
    client: WaycoreClient, api: respx.MockRouter
) -> None:
    route = api.get("/v1/entities", name="list_entities").mock(return_value=page([entity()]))
    found = await client.list_entities("cust-42")
    assert params_of(route) == {"externalEntityId": "cust-42"}
    assert [(e.entity_id, e.external_entity_id) for e in found] == [(ENTITY_ID, "cust-42")]
    assert found[0].name == "Acme Ltd"
    assert found[0].metadata == {"tenant": "t1"}


@pytest.mark.anyio
async def test_list_entities_without_filter_sends_no_filter(
    client: WaycoreClient, api: respx.MockRouter
) -> None:
    route = api.get("/v1/entities", name="list_entities").mock(return_value=page([]))
    assert await client.list_entities() == []
    assert params_of(route) == {}


@pytest.mark.anyio
async def test_get_entity(client: WaycoreClient, api: respx.MockRouter) -> None:
    api.get(f"/v1/entities/{ENTITY_ID}", name="get_entity").respond(json=entity())
    got = await client.get_entity(ENTITY_ID)
    assert got.entity_id == ENTITY_ID
    assert got.external_entity_id == "cust-42"
    assert got.is_default_org_entity is False


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, {"externalEntityId": "cust-42"}),
        ({"name": "Acme Ltd"}, {"externalEntityId": "cust-42", "name": "Acme Ltd"}),
        (
            {"name": "Acme Ltd", "metadata": {"tenant": "t1"}},
            {"externalEntityId": "cust-42", "name": "Acme Ltd", "metadata": {"tenant": "t1"}},
        ),
    ],
    ids=["id-only", "with-name", "with-metadata"],
)
async def test_create_entity_sends_only_given_fields(
    client: WaycoreClient,
    api: respx.MockRouter,
    kwargs: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    route = api.post("/v1/entities", name="create_entity").respond(201, json=entity())
    created = await client.create_entity("cust-42", **kwargs)
    assert created.entity_id == ENTITY_ID
    assert body_of(route) == expected
    assert route.calls.last.request.headers["content-type"] == "application/json"


@pytest.mark.anyio
async def test_create_entity_duplicate_is_a_conflict_and_not_retried(
    client: WaycoreClient, api: respx.MockRouter, sleeps: RecordingSleep
) -> None:
    route = api.post("/v1/entities", name="create_entity").mock(
        return_value=error(409, "conflict", "externalEntityId already exists")
    )
    with pytest.raises(Conflict) as caught:
        await client.create_entity("cust-42")
    assert caught.value.code == "conflict"
    assert route.call_count == 1
    assert sleeps.delays == []


# ---------------------------------------------------------------------- institutions


@pytest.mark.anyio
async def test_search_institutions_returns_one_page_with_portal_urls(
    client: WaycoreClient, api: respx.MockRouter
) -> None:
    route = api.get("/v1/institutions", name="search_institutions").mock(
        return_value=page([institution("chase"), institution("chime")], next_cursor="more")
    )
    found = await client.search_institutions("ch", limit=2)
    assert params_of(route) == {"query": "ch", "limit": "2"}
    assert route.call_count == 1  # the first page only, even though more exist
    assert [i.institution_id for i in found] == ["chase", "chime"]
    assert found[0].canonical_portal_url == "https://secure.chase.example/login"
    assert found[0].additional_portal_urls == ("https://business.chase.example/",)


@pytest.mark.anyio
async def test_get_institution_reads_portal_urls(
    client: WaycoreClient, api: respx.MockRouter
) -> None:
    api.get("/v1/institutions/chase", name="get_institution").respond(json=institution())
    inst = await client.get_institution("chase")
    assert inst.name == "Chase"
    assert inst.portal_urls == (
        "https://secure.chase.example/login",
        "https://business.chase.example/",
    )


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.anyio
async def test_get_institution_is_remembered_for_its_ttl(
    api: respx.MockRouter, sleeps: RecordingSleep
) -> None:
    route = api.get("/v1/institutions/chase", name="get_institution").respond(json=institution())
    clock = Clock()
    async with make_client(api, sleeps, clock=clock) as client:
        first = await client.get_institution("chase")
        assert await client.get_institution("chase") == first
        assert route.call_count == 1
        clock.now += client.institution_ttl + 1
        await client.get_institution("chase")
    assert route.call_count == 2


@pytest.mark.anyio
async def test_a_search_is_remembered_briefly_per_query(
    api: respx.MockRouter, sleeps: RecordingSleep
) -> None:
    route = api.get("/v1/institutions", name="search").respond(
        json={"data": [institution()], "pagination": {"hasMore": False, "nextCursor": None}}
    )
    clock = Clock()
    async with make_client(api, sleeps, clock=clock) as client:
        first = await client.search_institutions("chase")
        assert await client.search_institutions(" Chase ") == first
        assert route.call_count == 1
        await client.search_institutions("chase", limit=5)  # another question
        assert route.call_count == 2
        clock.now += client.search_ttl + 1
        await client.search_institutions("chase")
    assert route.call_count == 3


@pytest.mark.anyio
async def test_customers_typing_the_same_query_at_once_share_one_search(
    client: WaycoreClient, api: respx.MockRouter
) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        page = {"data": [institution()], "pagination": {"hasMore": False, "nextCursor": None}}
        return httpx.Response(200, json=page)

    route = api.get("/v1/institutions", name="search").mock(side_effect=slow)
    found = await asyncio.gather(*(client.search_institutions("chas") for _ in range(20)))
    assert route.call_count == 1
    assert all(f == found[0] and f is not found[0] for f in found[1:])  # each its own list
    found[0].clear()
    assert await client.search_institutions("chas") == found[1]  # the kept answer is intact


# ---------------------------------------------------------------------- connections

PORTAL = "https://Business.Example-Bank.com/Login/?next=%2Fhome&lang=en"


@pytest.mark.anyio
async def test_create_connection_201_is_new_with_setup_instructions(
    client: WaycoreClient, api: respx.MockRouter
) -> None:
    api.post("/v1/connections", name="create_connection").respond(201, json=setup_connection())
    result = await client.create_connection(ENTITY_ID, institution_id="chase")
    assert result.created is True
    assert result.connection.id == CONN_ID
    assert result.connection.kind == "setup"
    setup = result.connection.setup
    assert setup is not None and setup.instructions is not None
    assert setup.instructions.username == "waycore_conn123"


@pytest.mark.anyio
async def test_create_connection_200_is_the_existing_one(
    client: WaycoreClient, api: respx.MockRouter
) -> None:
    api.post("/v1/connections", name="create_connection").respond(200, json=ready_connection())
    result = await client.create_connection(ENTITY_ID, institution_id="chase")
    assert result.created is False
    assert result.connection.id == CONN_ID
    assert result.connection.is_ready


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"institution_id": "chase"}, {"entityId": ENTITY_ID, "institutionId": "chase"}),
        ({"portal_url": PORTAL}, {"entityId": ENTITY_ID, "portalUrl": PORTAL}),
        (
            {"institution_id": "chase", "portal_url": PORTAL},
            {"entityId": ENTITY_ID, "institutionId": "chase", "portalUrl": PORTAL},
        ),
    ],
    ids=["institution", "portal-url", "both"],
)
async def test_create_connection_sends_only_the_documented_fields(
    client: WaycoreClient,
    api: respx.MockRouter,
    kwargs: dict[str, str],
    expected: dict[str, str],
) -> None:
    route = api.post("/v1/connections", name="create_connection").respond(
        201, json=setup_connection()
    )
    await client.create_connection(ENTITY_ID, **kwargs)
    assert body_of(route) == expected  # never requestedInstitutionName or anything else
    if "portal_url" in kwargs:
        # byte-for-byte: no lower-casing, no trailing-slash or query normalisation
        assert PORTAL.encode() in route.calls.last.request.content


@pytest.mark.anyio
async def test_create_connection_non_ascii_portal_url_is_sent_unchanged(
    client: WaycoreClient, api: respx.MockRouter
) -> None:
    portal = "https://bänk.example/Login "
    route = api.post("/v1/connections", name="create_connection").respond(
        201, json=setup_connection()
    )
    await client.create_connection(ENTITY_ID, portal_url=portal)
    assert body_of(route)["portalUrl"] == portal


@pytest.mark.anyio
async def test_create_connection_needs_institution_or_portal(
    client: WaycoreClient, api: respx.MockRouter
) -> None:
    with pytest.raises(ValueError):
        await client.create_connection(ENTITY_ID)
    with pytest.raises(ValueError):
        await client.create_connection(ENTITY_ID, institution_id="", portal_url="")
    assert api.calls.call_count == 0


@pytest.mark.anyio
async def test_get_connection(client: WaycoreClient, api: respx.MockRouter) -> None:
    api.get(f"/v1/connections/{CONN_ID}", name="get_connection").respond(
        json=setup_connection(status="pendingActivation")
    )
    conn = await client.get_connection(CONN_ID)
    assert (conn.id, conn.kind, conn.status, conn.is_ready) == (
        CONN_ID,
        "setup",
        "pendingActivation",
        False,
    )


@pytest.mark.anyio
async def test_list_connections_sends_filters(client: WaycoreClient, api: respx.MockRouter) -> None:
    route = api.get("/v1/connections", name="list_connections").mock(
        return_value=page([ready_connection("conn_1"), setup_connection("conn_2")])
    )
    conns = await client.list_connections(entity_id=ENTITY_ID, status="active")
    assert params_of(route) == {"entityId": ENTITY_ID, "status": "active"}
    assert [(c.id, c.kind) for c in conns] == [("conn_1", "ready"), ("conn_2", "setup")]


@pytest.mark.anyio
@pytest.mark.parametrize("status", [200, 202, 204])
async def test_delete_connection(client: WaycoreClient, api: respx.MockRouter, status: int) -> None:
    route = api.delete(f"/v1/connections/{CONN_ID}", name="delete_connection").respond(status)
    assert await client.delete_connection(CONN_ID) is None
    assert route.call_count == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"bank_username": "ops-user"}, {"bankUsername": "ops-user"}),
        (
            {"bank_customer_id": "CUST-9", "password": "pw"},
            {"bankCustomerId": "CUST-9", "password": "pw"},
        ),
        (
            {"bank_username": "", "bank_customer_id": "CUST-9", "password": None},
            {"bankCustomerId": "CUST-9"},
        ),
        (
            {"bank_username": "  ", "password": " p w "},
            {"password": " p w "},  # populated values go unchanged, blanks are dropped
        ),
        (
            {"bank_username": "u", "bank_customer_id": "c", "password": "p"},
            {"bankUsername": "u", "bankCustomerId": "c", "password": "p"},
        ),
    ],
    ids=["username", "customer+password", "blank-dropped", "whitespace", "all"],
)
async def test_update_credentials_sends_only_populated_fields(
    client: WaycoreClient,
    api: respx.MockRouter,
    kwargs: dict[str, str | None],
    expected: dict[str, str],
) -> None:
    route = api.put(f"/v1/connections/{CONN_ID}/credentials", name="credentials").respond(
        json=setup_connection()
    )
    conn = await client.update_credentials(CONN_ID, **kwargs)
    assert conn.id == CONN_ID
    assert body_of(route) == expected


@pytest.mark.anyio
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"bank_username": None, "bank_customer_id": None, "password": None},
        {"bank_username": "", "bank_customer_id": "", "password": ""},
        {"bank_username": "  ", "bank_customer_id": "\t", "password": "\n"},
    ],
    ids=["nothing", "none", "empty", "whitespace"],
)
async def test_update_credentials_refuses_all_blank_without_a_request(
    client: WaycoreClient, api: respx.MockRouter, kwargs: dict[str, str | None]
) -> None:
    with pytest.raises(ValueError):
        await client.update_credentials(CONN_ID, **kwargs)
    assert api.calls.call_count == 0


@pytest.mark.anyio
async def test_complete_setup_puts_an_empty_object(
    client: WaycoreClient, api: respx.MockRouter
) -> None:
    route = api.put(f"/v1/connections/{CONN_ID}/setupCompletion", name="setup_completion").respond(
        json=setup_connection(status="pendingActivation")
    )
    conn = await client.complete_setup(CONN_ID)
    assert conn.status == "pendingActivation"
    assert body_of(route) == {}


@pytest.mark.anyio
async def test_sync_202_with_an_empty_body(client: WaycoreClient, api: respx.MockRouter) -> None:
    route = api.put(f"/v1/connections/{CONN_ID}/sync", name="sync").respond(202)
    assert await client.sync_connection(CONN_ID) is None
    assert route.call_count == 1


@pytest.mark.anyio
async def test_sync_202_with_the_connection(client: WaycoreClient, api: respx.MockRouter) -> None:
    api.put(f"/v1/connections/{CONN_ID}/sync", name="sync").respond(
        202, json=ready_connection(sync_status="syncing")
    )
    conn = await client.sync_connection(CONN_ID)
    assert isinstance(conn, Connection)
    assert conn.sync_status == "syncing"


@pytest.mark.anyio
async def test_sync_while_syncing_is_a_conflict(
    client: WaycoreClient, api: respx.MockRouter
) -> None:
    api.put(f"/v1/connections/{CONN_ID}/sync", name="sync").mock(
        return_value=error(409, "sync_in_progress", "a sync is already running")
    )
    with pytest.raises(Conflict) as caught:
        await client.sync_connection(CONN_ID)
    assert caught.value.code == "sync_in_progress"


@pytest.mark.anyio
async def test_sync_in_cooldown_is_rate_limited_with_retry_after_and_not_waited_for(
    client: WaycoreClient, api: respx.MockRouter, sleeps: RecordingSleep
) -> None:
    route = api.put(f"/v1/connections/{CONN_ID}/sync", name="sync").mock(
        return_value=error(429, "sync_cooldown", headers={"Retry-After": "2700"})
    )
    with pytest.raises(RateLimited) as caught:
        await client.sync_connection(CONN_ID)
    assert caught.value.retry_after == 2700.0
    assert route.call_count == 1
    assert sleeps.delays == []


# ---------------------------------------------------------------------- data


@pytest.mark.anyio
async def test_list_accounts(client: WaycoreClient, api: respx.MockRouter) -> None:
    route = api.get("/v1/accounts", name="accounts").mock(
        return_value=page([account("acc_1"), account("acc_2")])
    )
    accounts = await client.list_accounts(CONN_ID)
    assert params_of(route) == {"connectionId": CONN_ID}
    assert [a.id for a in accounts] == ["acc_1", "acc_2"]
    first = accounts[0]
    assert (first.type, first.currency, first.current_balance, first.masked_number) == (
        "checking",
        "USD",
        "1234.56",
        "****1234",
    )


@pytest.mark.anyio
async def test_list_balances_sends_filters(client: WaycoreClient, api: respx.MockRouter) -> None:
    route = api.get("/v1/balances", name="balances").mock(
        return_value=page([balance("2026-03-04"), balance("2026-03-03")])
    )
    rows = await client.list_balances(
        connection_id=CONN_ID, account_id="acc_1", date_gte="2026-03-01", date_lt="2026-03-05"
    )
    assert params_of(route) == {
        "connectionId": CONN_ID,
        "accountId": "acc_1",
        "dateGte": "2026-03-01",
        "dateLt": "2026-03-05",
    }
    assert [(b.date, b.ledger_balance, b.source) for b in rows] == [
        ("2026-03-04", "1234.56", "bankProvided"),
        ("2026-03-03", "1234.56", "bankProvided"),
    ]


@pytest.mark.anyio
async def test_transactions_page_passes_cursor_and_limit(
    client: WaycoreClient, api: respx.MockRouter
) -> None:
    route = api.get("/v1/transactions", name="transactions").mock(
        side_effect=paged({None: ([txn("t1"), txn("t2")], "cur_2"), "cur_2": ([txn("t3")], None)})
    )
    first = await client.transactions_page(connection_id=CONN_ID, limit=2)
    assert isinstance(first, Page)
    assert [t.id for t in first.items] == ["t1", "t2"]
    assert (first.next_cursor, first.has_more, first.request_id) == ("cur_2", True, "req_list")
    assert params_of(route) == {"connectionId": CONN_ID, "limit": "2"}

    second = await client.transactions_page(connection_id=CONN_ID, cursor=first.next_cursor)
    assert [t.id for t in second.items] == ["t3"]
    assert (second.next_cursor, second.has_more) == (None, False)
    assert params_of(route) == {"connectionId": CONN_ID, "cursor": "cur_2", "limit": "25"}
    t1 = first.items[0]
    assert (t1.amount, t1.currency, t1.entry_type, t1.posted_date) == (
        "-42.10",
        "USD",
        "debit",
        "2026-03-03",
    )


@pytest.mark.anyio
async def test_list_transactions_reads_every_page(
    client: WaycoreClient, api: respx.MockRouter
) -> None:
    route = api.get("/v1/transactions", name="transactions").mock(
        side_effect=paged(
            {
                None: ([txn("t1")], "c2"),
                "c2": ([txn("t2")], "c3"),
                "c3": ([txn("t3")], None),
            }
        )
    )
    txns = await client.list_transactions(account_id="acc_1")
    assert [t.id for t in txns] == ["t1", "t2", "t3"]
    assert route.call_count == 3
    assert all(params_of(route, i)["accountId"] == "acc_1" for i in range(3))


# ---------------------------------------------------------------------- webhooks


@pytest.mark.anyio
async def test_create_webhook_returns_the_full_secret_once(
    client: WaycoreClient, api: respx.MockRouter
) -> None:
    route = api.post("/v1/webhooks", name="create_webhook").respond(
        json={"webhook": webhook("whsec_full_secret"), "meta": {"requestId": "req_wh"}}
    )
    hook = await client.create_webhook(
        "https://host.example/waycore/webhooks", ["connection.status_changed"]
    )
    assert body_of(route) == {
        "url": "https://host.example/waycore/webhooks",
        "events": ["connection.status_changed"],
    }
    assert (hook.id, hook.secret, hook.active) == ("wh_1", "whsec_full_secret", True)


@pytest.mark.anyio
async def test_list_webhooks(client: WaycoreClient, api: respx.MockRouter) -> None:
    api.get("/v1/webhooks", name="list_webhooks").mock(return_value=page([webhook()]))
    hooks = await client.list_webhooks()
    assert [(h.id, h.events) for h in hooks] == [("wh_1", ("connection.status_changed",))]


# ---------------------------------------------------------------------- pagination

LIST_CALLS: list[tuple[str, str, Callable[[WaycoreClient], Awaitable[list[Any]]], Any]] = [
    ("entities", "/v1/entities", lambda c: c.list_entities("cust-42"), entity),
    ("connections", "/v1/connections", lambda c: c.list_connections(), ready_connection),
    ("accounts", "/v1/accounts", lambda c: c.list_accounts(CONN_ID), account),
    ("balances", "/v1/balances", lambda c: c.list_balances(), balance),
    ("transactions", "/v1/transactions", lambda c: c.list_transactions(), txn),
    ("webhooks", "/v1/webhooks", lambda c: c.list_webhooks(), lambda: webhook()),
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "path", "call", "item"), LIST_CALLS, ids=[c[0] for c in LIST_CALLS]
)
async def test_list_calls_follow_next_cursor_until_has_more_is_false(
    client: WaycoreClient,
    api: respx.MockRouter,
    name: str,
    path: str,
    call: Callable[[WaycoreClient], Awaitable[list[Any]]],
    item: Callable[[], dict[str, Any]],
) -> None:
    route = api.get(path, name=name).mock(
        side_effect=paged(
            {
                None: ([item(), item()], "cursor_p2"),
                "cursor_p2": ([item()], "cursor_p3"),
                "cursor_p3": ([item()], None),
            }
        )
    )
    results = await call(client)
    assert len(results) == 4
    assert route.call_count == 3
    assert [route.calls[i].request.url.params.get("cursor") for i in range(3)] == [
        None,
        "cursor_p2",
        "cursor_p3",
    ]
    for i in range(3):  # filters are repeated on every page
        assert {k: v for k, v in params_of(route, i).items() if k != "cursor"} == params_of(
            route, 0
        )


@pytest.mark.anyio
async def test_list_stops_when_has_more_is_false_even_with_a_cursor(
    client: WaycoreClient, api: respx.MockRouter
) -> None:
    route = api.get("/v1/connections", name="list_connections").mock(
        return_value=httpx.Response(
            200,
            json={
                "data": [ready_connection()],
                "pagination": {"hasMore": False, "nextCursor": "ignored"},
                "meta": {"requestId": "r"},
            },
        )
    )
    assert len(await client.list_connections()) == 1
    assert route.call_count == 1


@pytest.mark.anyio
async def test_list_gives_up_on_a_repeated_cursor_instead_of_looping_forever(
    client: WaycoreClient, api: respx.MockRouter
) -> None:
    route = api.get("/v1/transactions", name="transactions").mock(
        side_effect=paged({None: ([txn("t1")], "c2"), "c2": ([txn("t2")], "c2")})
    )
    with pytest.raises(WaycoreError, match="cursor repeated"):
        await client.list_transactions()
    assert route.call_count == 2


@pytest.mark.anyio
async def test_list_item_without_its_id_is_a_waycore_error(
    client: WaycoreClient, api: respx.MockRouter
) -> None:
    api.get("/v1/accounts", name="accounts").mock(return_value=page([{"name": "no id"}]))
    with pytest.raises(WaycoreError):
        await client.list_accounts(CONN_ID)


@pytest.mark.anyio
async def test_list_response_without_data_is_a_waycore_error(
    client: WaycoreClient, api: respx.MockRouter
) -> None:
    api.get("/v1/accounts", name="accounts").respond(json={"items": []})
    with pytest.raises(WaycoreError):
        await client.list_accounts(CONN_ID)


# ---------------------------------------------------------------------- refused paths and ids

ID_CALLS: dict[str, Callable[[WaycoreClient, str], Awaitable[Any]]] = {
    "get_entity": lambda c, i: c.get_entity(i),
    "get_institution": lambda c, i: c.get_institution(i),
    "get_connection": lambda c, i: c.get_connection(i),
    "delete_connection": lambda c, i: c.delete_connection(i),
    "update_credentials": lambda c, i: c.update_credentials(i, bank_username="u"),
    "complete_setup": lambda c, i: c.complete_setup(i),
    "sync_connection": lambda c, i: c.sync_connection(i),
}
BAD_IDS = [
    "",
    ".",
    "..",
    "../admin",
    "conn_1/../../admin",
    "a/b",
    "conn_1?delete=true",
    "conn_1#frag",
    "%2e%2e",
    "..%2fadmin",
    "conn\\1",
]


@pytest.mark.anyio
@pytest.mark.parametrize("bad_id", BAD_IDS)
@pytest.mark.parametrize("method", list(ID_CALLS))
async def test_ids_that_could_leave_their_segment_are_refused_before_any_request(
    client: WaycoreClient, api: respx.MockRouter, method: str, bad_id: str
) -> None:
    with pytest.raises(ValueError, match="invalid Waycore id"):
        await ID_CALLS[method](client, bad_id)
    assert api.calls.call_count == 0


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path",
    [
        "/admin",
        "/v2/entities",
        "/v1",
        "v1/entities",
        "/V1/entities",
        "https://evil.example/v1/entities",
        "//evil.example/v1/entities",
        "/v1/../admin",
        "/v1/entities/../../admin",
        "/v1/./entities",
        "/v1/entities?externalEntityId=x",
        "/v1/entities#x",
    ],
)
async def test_request_refuses_anything_but_a_plain_v1_path(
    client: WaycoreClient, api: respx.MockRouter, path: str
) -> None:
    with pytest.raises(ValueError, match="refusing"):
        await client._request("GET", path, retry_safe=True)
    assert api.calls.call_count == 0


# ---------------------------------------------------------------------- error mapping

ERROR_CLASSES = [
    (400, BadRequest),
    (401, Unauthorized),
    (403, Forbidden),
    (404, NotFound),
    (409, Conflict),
    (422, BadRequest),
    (429, RateLimited),
    (500, ServerError),
    (503, ServerError),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("status", "cls"), ERROR_CLASSES)
async def test_error_status_maps_to_its_class_with_details(
    api: respx.MockRouter,
    sleeps: RecordingSleep,
    status: int,
    cls: type[WaycoreAPIError],
) -> None:
    response = error(status, "the_code", "The message.", "req_body_1", headers={"Retry-After": "7"})
    route = api.get(f"/v1/connections/{CONN_ID}", name="get_connection").mock(return_value=response)
    async with make_client(api, sleeps, retries=0) as c:
        with pytest.raises(cls) as caught:
            await c.get_connection(CONN_ID)
    exc = caught.value
    assert type(exc) is cls
    assert isinstance(exc, WaycoreAPIError) and isinstance(exc, WaycoreError)
    assert exc.status == status
    assert exc.code == "the_code"
    assert exc.message == "The message."
    assert exc.request_id == "req_body_1"
    assert exc.retry_after == 7.0
    assert json.loads(exc.raw_body) == json.loads(response.content)
    assert (exc.method, exc.path) == ("GET", f"/v1/connections/{CONN_ID}")
    assert str(status) in str(exc) and "the_code" in str(exc) and "req_body_1" in str(exc)
    assert route.call_count == 1


@pytest.mark.anyio
async def test_request_id_falls_back_to_the_x_request_id_header(
    client: WaycoreClient, api: respx.MockRouter
) -> None:
    api.get(f"/v1/connections/{CONN_ID}", name="get_connection").mock(
        return_value=error(404, "not_found", request_id=None, headers={"X-Request-Id": "hdr_9"})
    )
    with pytest.raises(NotFound) as caught:
        await client.get_connection(CONN_ID)
    assert caught.value.request_id == "hdr_9"
    assert caught.value.code == "not_found"


@pytest.mark.anyio
async def test_body_request_id_wins_over_the_header(
    client: WaycoreClient, api: respx.MockRouter
) -> None:
    api.get(f"/v1/connections/{CONN_ID}", name="get_connection").mock(
        return_value=error(404, request_id="from_body", headers={"X-Request-Id": "from_header"})
    )
    with pytest.raises(NotFound) as caught:
        await client.get_connection(CONN_ID)
    assert caught.value.request_id == "from_body"


@pytest.mark.anyio
async def test_retry_after_as_an_http_date(client: WaycoreClient, api: respx.MockRouter) -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    api.put(f"/v1/connections/{CONN_ID}/sync", name="sync").mock(
        return_value=error(429, "sync_cooldown", headers={"Retry-After": when})
    )
    with pytest.raises(RateLimited) as caught:
        await client.sync_connection(CONN_ID)
    assert caught.value.retry_after is not None
    assert 115 <= caught.value.retry_after <= 120


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: retry now
        ("soon", None),
        ("1.5", None),
        ("-5", None),
        ("\u00b2", None),
        ("", None),
    ],
    ids=["past-date", "word", "fraction", "negative", "unicode-digit", "empty"],
)
async def test_odd_retry_after_values(
    client: WaycoreClient, api: respx.MockRouter, header: str, expected: float | None
) -> None:
    response = httpx.Response(
        429,
        json={"error": {"code": "rate_limited", "message": "slow down"}},
        headers=[(b"Retry-After", header.encode("utf-8"))],
    )
    api.put(f"/v1/connections/{CONN_ID}/sync", name="sync").mock(return_value=response)
    with pytest.raises(RateLimited) as caught:
        await client.sync_connection(CONN_ID)
    assert caught.value.retry_after == expected


@pytest.mark.anyio
async def test_non_json_error_body_keeps_status_and_raw_body(
    client: WaycoreClient, api: respx.MockRouter
) -> None:
    html = "<html><body>502 Bad Gateway</body></html>"
    api.delete(f"/v1/connections/{CONN_ID}", name="delete_connection").respond(
        502, text=html, headers={"Content-Type": "text/html"}
    )
    with pytest.raises(ServerError) as caught:
        await client.delete_connection(CONN_ID)
    exc = caught.value
    assert exc.status == 502
    assert exc.raw_body == html
    assert (exc.code, exc.message, exc.request_id) == (None, None, None)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            {"error": "not_found", "message": "No such connection"},
            "not_found",
            "No such connection",
        ),
        ({"detail": "Not Found"}, None, None),
        ([1, 2, 3], None, None),
        ("just a string", None, None),
    ],
    ids=["flat", "other-object", "array", "string"],
)
async def test_other_json_error_shapes_fall_back_to_status_and_raw_body(
    client: WaycoreClient,
    api: respx.MockRouter,
    body: Any,
    code: str | None,
    message: str | None,
) -> None:
    api.get(f"/v1/connections/{CONN_ID}", name="get_connection").respond(404, json=body)
    with pytest.raises(NotFound) as caught:
        await client.get_connection(CONN_ID)
    exc = caught.value
    assert (exc.status, exc.code, exc.message) == (404, code, message)
    assert json.loads(exc.raw_body) == body


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body",
    [
        pytest.param("<html>captive portal</html>", id="html"),
        pytest.param('{"entityId": ', id="truncated-json"),
        pytest.param('{"name": "no id"}', id="missing-required-field"),
        pytest.param("[]", id="array"),
    ],
)
async def test_unreadable_success_body_is_a_waycore_error(
    client: WaycoreClient, api: respx.MockRouter, body: str
) -> None:
    api.get(f"/v1/entities/{ENTITY_ID}", name="get_entity").respond(200, text=body)
    with pytest.raises(WaycoreError):
        await client.get_entity(ENTITY_ID)


# ---------------------------------------------------------------------- transport errors


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (httpx.ConnectError, WaycoreUnavailable),
        (httpx.ConnectTimeout, WaycoreTimeout),
        (httpx.ReadTimeout, WaycoreTimeout),
        (httpx.WriteTimeout, WaycoreTimeout),
        (httpx.PoolTimeout, WaycoreTimeout),
        (httpx.ReadError, WaycoreUnavailable),
        (httpx.RemoteProtocolError, WaycoreUnavailable),
        (httpx.DecodingError, WaycoreUnavailable),
    ],
)
async def test_transport_failures_map_to_our_exceptions(
    api: respx.MockRouter,
    sleeps: RecordingSleep,
    failure: type[httpx.TransportError],
    expected: type[WaycoreTransportError],
) -> None:
    api.get(f"/v1/connections/{CONN_ID}", name="get_connection").mock(side_effect=failure)
    async with make_client(api, sleeps, retries=0) as c:
        with pytest.raises(expected) as caught:
            await c.get_connection(CONN_ID)
    exc = caught.value
    assert isinstance(exc, WaycoreTransportError)
    assert not isinstance(exc, httpx.HTTPError)
    assert (exc.method, exc.path) == ("GET", f"/v1/connections/{CONN_ID}")


# ---------------------------------------------------------------------- retries


@pytest.mark.anyio
@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_read_is_retried_on_5xx_then_succeeds(
    client: WaycoreClient, api: respx.MockRouter, sleeps: RecordingSleep, status: int
) -> None:
    route = api.get(f"/v1/connections/{CONN_ID}", name="get_connection").mock(
        side_effect=[error(status), httpx.Response(200, json=ready_connection())]
    )
    assert (await client.get_connection(CONN_ID)).is_ready
    assert route.call_count == 2
    assert len(sleeps.delays) == 1


@pytest.mark.anyio
async def test_read_is_retried_on_read_timeout_and_connect_error(
    client: WaycoreClient, api: respx.MockRouter, sleeps: RecordingSleep
) -> None:
    route = api.get("/v1/accounts", name="accounts").mock(
        side_effect=[httpx.ReadTimeout, httpx.ConnectError, page([account()])]
    )
    assert len(await client.list_accounts(CONN_ID)) == 1
    assert route.call_count == 3
    assert len(sleeps.delays) == 2


@pytest.mark.anyio
@pytest.mark.parametrize("retries", [0, 1, 3])
async def test_read_gives_up_after_retries(
    api: respx.MockRouter, sleeps: RecordingSleep, retries: int
) -> None:
    route = api.get(f"/v1/connections/{CONN_ID}", name="get_connection").mock(
        return_value=error(503, "unavailable")
    )
    async with make_client(api, sleeps, retries=retries) as c:
        with pytest.raises(ServerError):
            await c.get_connection(CONN_ID)
    assert route.call_count == retries + 1
    assert len(sleeps.delays) == retries


@pytest.mark.anyio
async def test_read_timeout_gives_up_after_retries(
    client: WaycoreClient, api: respx.MockRouter, sleeps: RecordingSleep
) -> None:
    route = api.get("/v1/webhooks", name="list_webhooks").mock(side_effect=httpx.ReadTimeout)
    with pytest.raises(WaycoreTimeout):
        await client.list_webhooks()
    assert route.call_count == 3  # default retries=2
    assert len(sleeps.delays) == 2


@pytest.mark.anyio
async def test_backoff_is_full_jitter_over_a_capped_exponential(
    api: respx.MockRouter, sleeps: RecordingSleep, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[tuple[float, float]] = []

    def fake_uniform(low: float, high: float) -> float:
        drawn.append((low, high))
        return high / 2

    monkeypatch.setattr(client_module.random, "uniform", fake_uniform)
    api.get(f"/v1/connections/{CONN_ID}", name="get_connection").mock(return_value=error(500))
    async with make_client(api, sleeps, retries=6, backoff_base=0.2, backoff_cap=2.0) as c:
        with pytest.raises(ServerError):
            await c.get_connection(CONN_ID)
    assert [low for low, _ in drawn] == [0] * 6
    assert [high for _, high in drawn] == pytest.approx([0.2, 0.4, 0.8, 1.6, 2.0, 2.0])
    assert sleeps.delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


@pytest.mark.anyio
async def test_backoff_delays_vary_and_stay_under_the_cap(
    api: respx.MockRouter, sleeps: RecordingSleep
) -> None:
    api.get(f"/v1/connections/{CONN_ID}", name="get_connection").mock(
        side_effect=httpx.ConnectError
    )
    async with make_client(api, sleeps, retries=12, backoff_base=0.5, backoff_cap=1.0) as c:
        with pytest.raises(WaycoreUnavailable):
            await c.get_connection(CONN_ID)
    assert len(sleeps.delays) == 12
    assert all(0 <= d <= 1.0 for d in sleeps.delays)
    assert len(set(sleeps.delays)) > 1  # jittered, not a fixed schedule


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "retry_after"),
    [(503, "3"), (429, "1"), (429, "0"), (429, "5")],
    ids=["503", "429", "429-now", "429-at-max_retry_after"],
)
async def test_short_retry_after_is_honoured_on_reads(
    client: WaycoreClient,
    api: respx.MockRouter,
    sleeps: RecordingSleep,
    status: int,
    retry_after: str,
) -> None:
    route = api.get("/v1/entities", name="list_entities").mock(
        side_effect=[error(status, headers={"Retry-After": retry_after}), page([entity()])]
    )
    assert len(await client.list_entities()) == 1
    assert route.call_count == 2
    assert sleeps.delays == [float(retry_after)]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "cls", "retry_after"),
    [(429, RateLimited, "3600"), (429, RateLimited, "6"), (503, ServerError, "3600")],
    ids=["429-hour", "429-just-over-max", "503-hour"],
)
async def test_long_retry_after_is_not_waited_for(
    client: WaycoreClient,
    api: respx.MockRouter,
    sleeps: RecordingSleep,
    status: int,
    cls: type[WaycoreAPIError],
    retry_after: str,
) -> None:
    route = api.get(f"/v1/connections/{CONN_ID}", name="get_connection").mock(
        return_value=error(status, headers={"Retry-After": retry_after})
    )
    with pytest.raises(cls) as caught:
        await client.get_connection(CONN_ID)
    assert caught.value.retry_after == float(retry_after)
    assert route.call_count == 1
    assert sleeps.delays == []


@pytest.mark.anyio
@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_client_errors_are_never_retried(
    client: WaycoreClient, api: respx.MockRouter, sleeps: RecordingSleep, status: int
) -> None:
    route = api.get(f"/v1/connections/{CONN_ID}", name="get_connection").mock(
        return_value=error(status)
    )
    with pytest.raises(WaycoreAPIError):
        await client.get_connection(CONN_ID)
    assert route.call_count == 1
    assert sleeps.delays == []


# (name, method, path, status on success, the call)
WRITES: list[tuple[str, str, str, int, Callable[[WaycoreClient], Awaitable[Any]]]] = [
    (
        # It may carry the bank password: sent once, never repeated after it may have arrived.
        "credentials",
        "PUT",
        f"/v1/connections/{CONN_ID}/credentials",
        200,
        lambda c: c.update_credentials(CONN_ID, password="hunter2-secret"),
    ),
    (
        "setupCompletion",
        "PUT",
        f"/v1/connections/{CONN_ID}/setupCompletion",
        200,
        lambda c: c.complete_setup(CONN_ID),
    ),
    ("sync", "PUT", f"/v1/connections/{CONN_ID}/sync", 202, lambda c: c.sync_connection(CONN_ID)),
    (
        "delete",
        "DELETE",
        f"/v1/connections/{CONN_ID}",
        204,
        lambda c: c.delete_connection(CONN_ID),
    ),
    ("create_entity", "POST", "/v1/entities", 201, lambda c: c.create_entity("cust-42")),
    (
        "create_webhook",
        "POST",
        "/v1/webhooks",
        200,
        lambda c: c.create_webhook("https://host.example/hook", ["test"]),
    ),
]
SUCCESS_BODIES = {
    "credentials": setup_connection(),
    "setupCompletion": setup_connection(status="pendingActivation"),
    "sync": None,
    "delete": None,
    "create_entity": entity(),
    "create_webhook": {"webhook": webhook("whsec_x"), "meta": {"requestId": "r"}},
}


def _success(name: str, status: int) -> httpx.Response:
    body = SUCCESS_BODIES[name]
    return httpx.Response(status) if body is None else httpx.Response(status, json=body)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (functools.partial(error, 500), ServerError),
        (functools.partial(error, 503, headers={"Retry-After": "1"}), ServerError),
        (functools.partial(error, 429, headers={"Retry-After": "1"}), RateLimited),
        (httpx.ReadTimeout, WaycoreTimeout),
        (httpx.WriteTimeout, WaycoreTimeout),
        (httpx.ReadError, WaycoreUnavailable),
        (httpx.RemoteProtocolError, WaycoreUnavailable),
    ],
    ids=["500", "503", "429", "read-timeout", "write-timeout", "read-error", "disconnect"],
)
@pytest.mark.parametrize(
    ("name", "method", "path", "ok", "call"), WRITES, ids=[w[0] for w in WRITES]
)
async def test_non_idempotent_writes_are_not_retried_once_the_request_may_have_arrived(
    client: WaycoreClient,
    api: respx.MockRouter,
    sleeps: RecordingSleep,
    name: str,
    method: str,
    path: str,
    ok: int,
    call: Callable[[WaycoreClient], Awaitable[Any]],
    failure: Any,
    expected: type[WaycoreError],
) -> None:
    route = api.route(method=method, path=path, name=name).mock(
        side_effect=[fresh(failure), _success(name, ok)]
    )
    with pytest.raises(expected):
        await call(client)
    assert route.call_count == 1
    assert sleeps.delays == []
    await call(client)  # consume the queued success so assert_all_called holds meaningfully


@pytest.mark.anyio
@pytest.mark.parametrize("failure", [httpx.ConnectError, httpx.ConnectTimeout])
@pytest.mark.parametrize(
    ("name", "method", "path", "ok", "call"), WRITES, ids=[w[0] for w in WRITES]
)
async def test_non_idempotent_writes_are_retried_when_the_request_never_left(
    client: WaycoreClient,
    api: respx.MockRouter,
    sleeps: RecordingSleep,
    name: str,
    method: str,
    path: str,
    ok: int,
    call: Callable[[WaycoreClient], Awaitable[Any]],
    failure: type[httpx.TransportError],
) -> None:
    route = api.route(method=method, path=path, name=name).mock(
        side_effect=[fresh(failure), _success(name, ok)]
    )
    await call(client)
    assert route.call_count == 2
    assert len(sleeps.delays) == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    "failure",
    [
        functools.partial(error, 500),
        functools.partial(error, 503),
        httpx.ReadTimeout,
        httpx.ConnectError,
        httpx.RemoteProtocolError,
    ],
    ids=["500", "503", "read-timeout", "connect-error", "disconnect"],
)
@pytest.mark.parametrize("which", ["create_connection"])
async def test_create_or_return_connection_is_retried(
    client: WaycoreClient,
    api: respx.MockRouter,
    sleeps: RecordingSleep,
    which: str,
    failure: Any,
) -> None:
    route = api.post("/v1/connections", name=which).mock(
        side_effect=[fresh(failure), httpx.Response(200, json=setup_connection())]
    )
    result = await client.create_connection(ENTITY_ID, portal_url=PORTAL)
    assert result.connection.id == CONN_ID
    assert route.call_count == 2
    assert len(sleeps.delays) == 1
    assert route.calls[0].request.content == route.calls[1].request.content


# ---------------------------------------------------------------------- key redaction


def _everything_about(exc: BaseException) -> str:
    return " ".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])


@pytest.mark.anyio
async def test_client_repr_and_str_hide_the_key(client: WaycoreClient) -> None:
    for text in (repr(client), str(client), f"{client}"):
        assert KEY_SECRET_PART not in text
        assert "Bearer" not in text
    assert "api.waycore.test" in repr(client)


FAILURES: list[Any] = [functools.partial(error, status) for status, _ in ERROR_CLASSES] + [
    functools.partial(httpx.Response, 502, text="<html>bad gateway</html>"),
    httpx.ConnectError,
    httpx.ReadTimeout,
    httpx.ConnectTimeout,
    httpx.RemoteProtocolError,
]


@pytest.mark.anyio
@pytest.mark.parametrize("failure", FAILURES, ids=[str(i) for i in range(len(FAILURES))])
async def test_raised_exceptions_never_contain_the_key(
    api: respx.MockRouter, sleeps: RecordingSleep, failure: Any
) -> None:
    api.get(f"/v1/connections/{CONN_ID}", name="get_connection").mock(side_effect=[fresh(failure)])
    async with make_client(api, sleeps, retries=0) as c:
        with pytest.raises(WaycoreError) as caught:
            await c.get_connection(CONN_ID)
    text = _everything_about(caught.value)
    assert KEY_SECRET_PART not in text
    assert "Bearer" not in text
    assert CONN_ID in text  # the summary is still useful


@pytest.mark.anyio
async def test_key_and_secrets_never_reach_a_log_record(
    api: respx.MockRouter, sleeps: RecordingSleep, caplog: pytest.LogCaptureFixture
) -> None:
    for logger in (None, "httpx", "httpcore", "waycore", "waycore.client"):
        caplog.set_level(logging.DEBUG, logger=logger)
    password = "Pa55word-never-logged"
    hook_secret = "whsec_full_value_never_logged"
    api.get("/v1/entities", name="list_entities").mock(
        side_effect=[error(503), page([entity()], "c2"), page([entity("cust-43")])]
    )
    api.get(f"/v1/connections/{CONN_ID}", name="get_connection").mock(
        side_effect=[error(404, "not_found"), httpx.ConnectError, httpx.ConnectError]
    )
    api.put(f"/v1/connections/{CONN_ID}/credentials", name="credentials").mock(
        side_effect=[httpx.ReadTimeout, httpx.Response(200, json=setup_connection())]
    )
    api.put(f"/v1/connections/{CONN_ID}/sync", name="sync").mock(
        side_effect=[httpx.ReadTimeout, error(429, headers={"Retry-After": "2700"})]
    )
    api.post("/v1/webhooks", name="create_webhook").respond(
        json={"webhook": webhook(hook_secret), "meta": {"requestId": "r"}}
    )
    async with make_client(api, sleeps, retries=1) as c:
        await c.list_entities()
        with pytest.raises(NotFound) as not_found:
            await c.get_connection(CONN_ID)
        with pytest.raises(WaycoreUnavailable) as unavailable:
            await c.get_connection(CONN_ID)
        with pytest.raises(WaycoreTimeout) as credentials_timed_out:
            await c.update_credentials(CONN_ID, bank_username="ops", password=password)
        await c.update_credentials(CONN_ID, bank_username="ops", password=password)
        with pytest.raises(WaycoreTimeout) as timed_out:
            await c.sync_connection(CONN_ID)
        with pytest.raises(RateLimited) as limited:
            await c.sync_connection(CONN_ID)
        await c.create_webhook("https://host.example/hook", ["test"])
        # an app that logs what it caught, traceback included
        for caught in (not_found, unavailable, credentials_timed_out, timed_out, limited):
            logging.getLogger("app").exception("waycore failed", exc_info=caught.value)

    loggers = {r.name for r in caplog.records}
    assert "waycore.client" in loggers  # the client's own lines were captured...
    assert "httpx" in loggers  # ...and httpx's request lines
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    for record in caplog.records:
        text = " ".join(
            [record.getMessage(), repr(record.args), record.exc_text or "", str(record.__dict__)]
        )
        for secret in (KEY_SECRET_PART, password, hook_secret):
            assert secret not in text, (record.name, record.getMessage())
    assert KEY_SECRET_PART not in caplog.text
