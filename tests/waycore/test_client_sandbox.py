"""`WaycoreClient` against the real local sandbox over real HTTP.

The sandbox app is served by uvicorn on 127.0.0.1 (a free port, lifespan on) in a background
thread for this module; the client under test talks to it exactly as it would talk to Waycore.
Time-dependent steps (activation, sync duration, the sync cooldown) move the sandbox clock with
`POST /_sandbox/clock` instead of waiting.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from waycore.client import WaycoreClient
from waycore.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthorized,
)
from waycore.sandbox import Sandbox, SandboxConfig

ROOT_KEY = "way_test_root01_" + "5ecre7" * 5
ROOT_SECRET_PART = "5ecre7" * 5
ACTIVATION_SECONDS = 30.0
SYNC_SECONDS = 10.0
COOLDOWN_SECONDS = 45 * 60.0


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@dataclass
class Served:
    base_url: str
    sandbox: Sandbox


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    sandbox = Sandbox(
        SandboxConfig(
            api_key=ROOT_KEY,
            activation_seconds=ACTIVATION_SECONDS,
            sync_seconds=SYNC_SECONDS,
            sync_cooldown_seconds=COOLDOWN_SECONDS,
            webhook_max_attempts=1,
        )
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            sandbox.app,
            lifespan="on",
            log_config=None,
            log_level="warning",
            loop="asyncio",
            http="h11",
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="sandbox-uvicorn", daemon=True
    )
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            assert thread.is_alive(), "uvicorn exited during startup"
            try:
                answer = httpx.get(
                    f"{base_url}/_sandbox/clock",
                    headers={"Authorization": f"Bearer {ROOT_KEY}"},
                    timeout=1,
                )
                if server.started and answer.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the sandbox did not answer within 15 s"
            time.sleep(0.05)
        yield Served(base_url, sandbox)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
    assert not thread.is_alive(), "uvicorn did not shut down"


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
async def client(
    served: Served, sleeps: RecordingSleep, anyio_backend: str
) -> AsyncIterator[WaycoreClient]:
    async with WaycoreClient.create(served.base_url + "/v1", ROOT_KEY, sleep=sleeps) as c:
        yield c


@pytest.fixture
async def control(served: Served, anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    """The sandbox's own control API (`/_sandbox/*`), root key only."""
    async with httpx.AsyncClient(
        base_url=served.base_url, headers={"Authorization": f"Bearer {ROOT_KEY}"}, timeout=10
    ) as http:
        yield http


async def advance(control: httpx.AsyncClient, seconds: float) -> None:
    answer = await control.post("/_sandbox/clock", json={"advanceSeconds": seconds})
    assert answer.status_code == 200, answer.text


async def mint(control: httpx.AsyncClient, scopes: list[str]) -> str:
    answer = await control.post("/_sandbox/keys", json={"scopes": scopes})
    assert answer.status_code in (200, 201), answer.text
    key = answer.json()["key"]
    assert isinstance(key, str) and key.startswith("way_test_")
    return key


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------------- the whole journey


@pytest.mark.anyio
async def test_the_whole_onboarding_journey(
    client: WaycoreClient,
    control: httpx.AsyncClient,
    sleeps: RecordingSleep,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for logger in (None, "httpx", "httpcore", "waycore"):
        caplog.set_level(logging.DEBUG, logger=logger)
    password = "Bank-Pa55word-not-for-logs"

    # entity: create, duplicate -> 409, then find it by the list filter
    external_id = unique("cust")
    entity = await client.create_entity(external_id, name="Acme Ltd")
    assert entity.external_entity_id == external_id
    with pytest.raises(Conflict) as duplicate:
        await client.create_entity(external_id, name="Acme Ltd")
    assert duplicate.value.code == "conflict"
    assert duplicate.value.request_id  # from the body's meta.requestId
    found = await client.list_entities(external_id)
    assert [e.entity_id for e in found] == [entity.entity_id]

    # institutions
    matches = await client.search_institutions("chase")
    chase = next(i for i in matches if i.institution_id == "chase")
    assert chase.canonical_portal_url is not None
    assert chase.additional_portal_urls  # Chase has several login portals
    assert await client.get_institution("chase") == chase

    # connection: 201 new, then 200 with the same id
    first = await client.create_connection(entity.entity_id, institution_id="chase")
    assert first.created is True
    conn_id = first.connection.id
    assert (first.connection.kind, first.connection.status) == ("setup", "draft")
    setup = first.connection.setup
    assert setup is not None and setup.instructions is not None
    assert setup.instructions.username and setup.instructions.email
    again = await client.create_connection(entity.entity_id, institution_id="chase")
    assert again.created is False
    assert again.connection.id == conn_id

    # credentials, setupCompletion
    with_credentials = await client.update_credentials(
        conn_id, bank_username="ops-user", password=password
    )
    assert with_credentials.setup is not None and with_credentials.setup.credentials_present
    pending = await client.complete_setup(conn_id)
    assert pending.status == "pendingActivation"
    assert not pending.is_ready
    assert not (await client.get_connection(conn_id)).is_ready

    # activation (and the first automatic sync) happen on the sandbox clock
    await advance(control, ACTIVATION_SECONDS + SYNC_SECONDS + 1)
    ready = await client.get_connection(conn_id)
    assert (ready.kind, ready.status, ready.sync_status) == ("ready", "active", "idle")
    assert ready.is_ready

    # data
    accounts = await client.list_accounts(conn_id)
    assert accounts
    assert {a.connection_id for a in accounts} == {conn_id}
    account_ids = {a.id for a in accounts}
    balances = await client.list_balances(connection_id=conn_id)
    assert balances
    assert {b.account_id for b in balances} <= account_ids
    dates = [b.date for b in balances]
    assert dates == sorted(dates, reverse=True)  # newest first

    everything = await client.list_transactions(connection_id=conn_id)
    paged_ids: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await client.transactions_page(connection_id=conn_id, cursor=cursor, limit=25)
        pages += 1
        assert len(page.items) <= 25
        paged_ids += [t.id for t in page.items]
        if not page.has_more:
            assert page.next_cursor is None
            break
        assert page.next_cursor
        cursor = page.next_cursor
    assert pages > 1
    assert len(paged_ids) == len(set(paged_ids))
    assert paged_ids == [t.id for t in everything]
    assert {t.account_id for t in everything} <= account_ids

    # manual sync: 202, 409 while it runs, then 429 in the cooldown
    queued = await client.sync_connection(conn_id)
    assert queued is None or queued.sync_status == "syncing"
    with pytest.raises(Conflict) as running:
        await client.sync_connection(conn_id)
    assert running.value.status == 409
    await advance(control, SYNC_SECONDS + 1)
    assert (await client.get_connection(conn_id)).sync_status == "idle"
    with pytest.raises(RateLimited) as cooldown:
        await client.sync_connection(conn_id)
    assert cooldown.value.retry_after is not None
    assert 0 < cooldown.value.retry_after <= COOLDOWN_SECONDS
    assert cooldown.value.retry_after > COOLDOWN_SECONDS - 60

    # delete, then the connection is gone
    await client.delete_connection(conn_id)
    with pytest.raises(NotFound) as gone:
        await client.get_connection(conn_id)
    assert gone.value.code == "not_found"
    assert all(c.id != conn_id for c in await client.list_connections(entity_id=entity.entity_id))

    assert sleeps.delays == []  # nothing in the journey was retried

    # what actually went over the wire: only the documented connection fields
    recorded = (await control.get("/_sandbox/requests")).json()["data"]
    creates = [r for r in recorded if r["method"] == "POST" and r["path"] == "/v1/connections"]
    assert creates
    for r in creates:
        if r["body"] and r["body"].get("entityId") == entity.entity_id:
            assert r["body"] == {"entityId": entity.entity_id, "institutionId": "chase"}
    assert all(r["path"].startswith("/v1/") for r in recorded)

    # and nothing secret reached a log line, httpcore's wire-level debug lines included
    assert any(r.name.startswith("httpcore") for r in caplog.records)
    for record in caplog.records:
        text = f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        assert ROOT_SECRET_PART not in text, record.name
        assert password not in text, record.name


# ---------------------------------------------------------------------- other behaviour


@pytest.mark.anyio
async def test_portal_url_only_connection_keeps_the_url_as_given(
    client: WaycoreClient,
) -> None:
    entity = await client.create_entity(unique("cust"))
    portal = "https://Business.Example-Bank.com/Login/?lang=en"
    result = await client.create_connection(entity.entity_id, portal_url=portal)
    assert result.created is True
    assert result.connection.portal_url == portal
    assert result.connection.institution_id is None
    assert result.connection.kind == "setup"
    repeat = await client.create_connection(entity.entity_id, portal_url=portal)
    assert (repeat.created, repeat.connection.id) == (False, result.connection.id)


@pytest.mark.anyio
async def test_an_invalid_portal_url_is_a_bad_request(client: WaycoreClient) -> None:
    entity = await client.create_entity(unique("cust"))
    with pytest.raises(BadRequest) as caught:
        await client.create_connection(entity.entity_id, portal_url="http://insecure.example/")
    assert caught.value.status == 400
    assert caught.value.code == "invalid_portal_url"
    assert caught.value.message


@pytest.mark.anyio
async def test_sync_of_a_connection_still_in_setup_is_a_conflict(client: WaycoreClient) -> None:
    entity = await client.create_entity(unique("cust"))
    created = await client.create_connection(entity.entity_id, institution_id="chase")
    with pytest.raises(Conflict):
        await client.sync_connection(created.connection.id)


@pytest.mark.anyio
async def test_an_injected_server_error_on_a_read_is_retried(
    client: WaycoreClient, control: httpx.AsyncClient, sleeps: RecordingSleep
) -> None:
    answer = await control.post(
        "/_sandbox/faults",
        json={"mode": "error", "status": 503, "count": 1, "pathPrefix": "/v1/institutions"},
    )
    assert answer.status_code == 201, answer.text
    found = await client.search_institutions("chase")
    assert any(i.institution_id == "chase" for i in found)
    assert len(sleeps.delays) == 1


@pytest.mark.anyio
async def test_a_key_without_connections_write_is_forbidden(
    served: Served, control: httpx.AsyncClient, sleeps: RecordingSleep
) -> None:
    key = await mint(
        control,
        ["entities:read", "entities:write", "connections:read", "accounts:read"],
    )
    async with WaycoreClient.create(served.base_url, key, sleep=sleeps) as limited:
        entity = await limited.create_entity(unique("cust"))  # the key itself is valid
        assert await limited.search_institutions("chase")
        with pytest.raises(Forbidden) as caught:
            await limited.create_connection(entity.entity_id, institution_id="chase")
        assert caught.value.status == 403
        assert caught.value.code == "insufficient_scope"
        assert caught.value.request_id
        assert key not in f"{caught.value} {caught.value!r}"
    assert sleeps.delays == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "key", ["way_test_wrong_" + "0" * 32, ROOT_KEY + "x"], ids=["unknown", "root-plus-one"]
)
async def test_a_wrong_key_is_unauthorized(
    served: Served, sleeps: RecordingSleep, key: str
) -> None:
    async with WaycoreClient.create(served.base_url, key, sleep=sleeps) as wrong:
        with pytest.raises(Unauthorized) as caught:
            await wrong.list_entities()
    exc: Any = caught.value
    assert exc.status == 401
    assert exc.code == "unauthorized"
    assert key not in f"{exc} {exc!r} {exc.raw_body}"
    assert sleeps.delays == []
