"""Webhook registrations and signed deliveries, with retries."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from waycore.models import Webhook
from waycore.sandbox import Sandbox, SandboxConfig
from waycore.webhooks import parse_event, verify

from .helpers import BASE_URL, ROOT_KEY, assert_error, auth, create_connection

pytestmark = pytest.mark.anyio

EVENTS = ["connection.status_changed", "transactions.sync_available"]


@asynccontextmanager
async def running(
    config: SandboxConfig, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[tuple[Sandbox, httpx.AsyncClient]]:
    async with Sandbox(config, delivery_transport=transport) as sb:
        asgi = httpx.ASGITransport(app=sb.app)
        async with httpx.AsyncClient(
            transport=asgi, base_url=BASE_URL, headers=auth(ROOT_KEY)
        ) as client:
            yield sb, client


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out waiting for deliveries"
        await asyncio.sleep(0.02)


async def register(client: httpx.AsyncClient, url: str, events: list[str]) -> dict[str, Any]:
    response = await client.post("/v1/webhooks", json={"url": url, "events": events})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# -- registration ------------------------------------------------------------------------------


async def test_create_returns_the_full_secret_once(client: httpx.AsyncClient) -> None:
    body = await register(client, "https://hooks.example.test/waycore", EVENTS)
    hook = body["webhook"]
    assert body["meta"]["requestId"].startswith("req_")
    assert re.fullmatch(r"whsec_[0-9a-f]{20,}", hook["secret"])
    assert hook["active"] is True and hook["events"] == EVENTS and hook["metadata"] == {}
    masked = f"whsec_****{hook['secret'][-4:]}"
    got = (await client.get(f"/v1/webhooks/{hook['id']}")).json()
    assert got["secret"] == masked
    listed = (await client.get("/v1/webhooks")).json()
    assert [w["secret"] for w in listed["data"]] == [masked]
    assert hook["secret"] not in listed.__repr__()
    Webhook.from_api(got)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.test/x",
        "http://127.0.0.1:8123/hook",
        "http://localhost/hook",
        "http://[::1]:9000/hook",
    ],
)
async def test_allowed_urls(client: httpx.AsyncClient, url: str) -> None:
    await register(client, url, ["test"])


@pytest.mark.parametrize(
    "body",
    [
        {"url": "http://hooks.example.test/x", "events": ["test"]},
        {"url": "ftp://hooks.example.test/x", "events": ["test"]},
        {"url": "https://", "events": ["test"]},
        {"url": "https://hooks.example.test/x", "events": []},
        {"url": "https://hooks.example.test/x", "events": ["connection.deleted"]},
        {"url": "https://hooks.example.test/x"},
        {"events": ["test"]},
        {"url": "https://hooks.example.test/x", "events": ["test"], "active": False},
    ],
)
async def test_rejected_registrations(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    assert_error(await client.post("/v1/webhooks", json=body), 400, "invalid_request")


async def test_patch_and_delete(client: httpx.AsyncClient) -> None:
    hook = (await register(client, "https://hooks.example.test/a", ["test"]))["webhook"]
    path = f"/v1/webhooks/{hook['id']}"
    patched = await client.patch(
        path, json={"active": False, "events": EVENTS, "metadata": {"team": "ops"}}
    )
    assert patched.status_code == 200
    assert patched.json()["active"] is False and patched.json()["events"] == EVENTS
    assert patched.json()["metadata"] == {"team": "ops"}
    assert patched.json()["url"] == "https://hooks.example.test/a"
    assert patched.json()["secret"].startswith("whsec_****")
    cleared = (await client.patch(path, json={"metadata": None})).json()
    assert cleared["metadata"] == {}
    assert_error(await client.patch(path, json={"events": []}), 400, "invalid_request")
    assert_error(await client.patch(path, json={"secret": "x"}), 400, "invalid_request")
    assert (await client.delete(path)).status_code == 204
    assert_error(await client.get(path), 404, "not_found")


# -- deliveries ---------------------------------------------------------------------------------


async def test_signed_deliveries_with_retry(config: SandboxConfig) -> None:
    calls: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500 if len(calls) <= 2 else 204)

    async with running(config, httpx.MockTransport(receiver)) as (sb, client):
        hook = (await register(client, "https://hooks.example.test/waycore", EVENTS))["webhook"]
        conn = await create_connection(client, institutionId="chase")
        await client.put(f"/v1/connections/{conn['id']}/setupCompletion")
        await wait_for(lambda: len(calls) >= 3)
        await asyncio.sleep(0.1)
        assert len(calls) == 3  # delivered on the third attempt, then no more
        events = []
        for request in calls:
            assert request.method == "POST"
            assert str(request.url) == "https://hooks.example.test/waycore"
            assert request.headers["Content-Type"] == "application/json"
            verify(hook["secret"], request.headers["Waycore-Signature"], request.content)
            events.append(parse_event(request.content))
        assert len({e.id for e in events}) == 1
        event = events[0]
        assert event.id.startswith("evt_") and event.type == "connection.status_changed"
        assert event.data == {
            "connectionId": conn["id"],
            "entityId": conn["entityId"],
            "status": "pendingActivation",
            "previousStatus": "draft",
            "kind": "setup",
        }
        log = (await client.get("/_sandbox/deliveries")).json()["data"]
        assert [(r["attempt"], r["status"]) for r in log] == [(1, 500), (2, 500), (3, 204)]
        assert {r["eventId"] for r in log} == {event.id}
        assert log[-1]["state"] == "delivered"


async def test_status_and_sync_events(config: SandboxConfig) -> None:
    calls: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200)

    async with running(config, httpx.MockTransport(receiver)) as (sb, client):
        await register(client, "https://hooks.example.test/waycore", EVENTS)
        conn = await create_connection(client, institutionId="chase")
        await client.put(f"/v1/connections/{conn['id']}/setupCompletion")
        sb.advance_clock(config.activation_seconds + config.sync_seconds + 1)
        await wait_for(lambda: len(calls) >= 3)
        events = [parse_event(r.content) for r in calls]
        assert [(e.type, e.data.get("status")) for e in events] == [
            ("connection.status_changed", "pendingActivation"),
            ("connection.status_changed", "active"),
            ("transactions.sync_available", None),
        ]
        assert events[1].data["previousStatus"] == "pendingActivation"
        assert events[1].data["kind"] == "ready"
        assert events[2].data == {"connectionId": conn["id"], "accountId": None}
        await client.put(f"/v1/connections/{conn['id']}/sync")
        sb.advance_clock(config.sync_seconds)
        await wait_for(lambda: len(calls) >= 4)
        assert parse_event(calls[3].content).type == "transactions.sync_available"


async def test_backoff_follows_the_sandbox_clock(config: SandboxConfig) -> None:
    calls: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("refused", request=request)

    slow = dataclasses.replace(config, webhook_retry_base_seconds=100.0, webhook_max_attempts=3)
    async with running(slow, httpx.MockTransport(receiver)) as (sb, client):
        hook = (await register(client, "https://hooks.example.test/down", ["test"]))["webhook"]
        assert (await client.post(f"/v1/webhooks/{hook['id']}/test")).status_code == 202
        await wait_for(lambda: len(calls) == 1)
        await asyncio.sleep(0.15)
        assert len(calls) == 1
        sb.advance_clock(100)  # 100 * 2**0
        await wait_for(lambda: len(calls) == 2)
        sb.advance_clock(150)
        await asyncio.sleep(0.15)
        assert len(calls) == 2
        sb.advance_clock(50)  # 100 * 2**1 in total
        await wait_for(lambda: len(calls) == 3)
        sb.advance_clock(10_000)
        await asyncio.sleep(0.15)
        assert len(calls) == 3  # webhook_max_attempts
        log = (await client.get("/_sandbox/deliveries")).json()["data"]
        assert [r["attempt"] for r in log] == [1, 2, 3]
        assert all(r["status"] is None and "ConnectError" in r["error"] for r in log)
        assert log[-1]["state"] == "failed"
        for request in calls:  # signed with the wall clock, not the advanced sandbox clock
            timestamp = verify(
                hook["secret"], request.headers["Waycore-Signature"], request.content
            )
            assert abs(timestamp - time.time()) < 30
        assert sb.now() - time.time() > 10_000


async def test_inactive_or_unsubscribed_get_nothing(config: SandboxConfig) -> None:
    calls: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200)

    async with running(config, httpx.MockTransport(receiver)) as (sb, client):
        off = (await register(client, "https://hooks.example.test/off", EVENTS))["webhook"]
        await client.patch(f"/v1/webhooks/{off['id']}", json={"active": False})
        await register(client, "https://hooks.example.test/sync", ["transactions.sync_available"])
        test_only = (await register(client, "https://hooks.example.test/t", ["test"]))["webhook"]
        conn = await create_connection(client, institutionId="chase")
        await client.put(f"/v1/connections/{conn['id']}/setupCompletion")
        fired = await client.post(f"/v1/webhooks/{test_only['id']}/test")
        assert fired.status_code == 202
        await wait_for(lambda: len(calls) >= 1)
        await asyncio.sleep(0.1)
        assert [str(r.url) for r in calls] == ["https://hooks.example.test/t"]
        assert parse_event(calls[0].content).type == "test"
        refused = await client.post(f"/v1/webhooks/{off['id']}/test")
        assert_error(refused, 409, "invalid_state")


async def test_delivery_to_a_real_loopback_receiver(config: SandboxConfig) -> None:
    received: list[tuple[bytes, str]] = []

    async def hook(request: Request) -> Response:
        received.append((await request.body(), request.headers.get("Waycore-Signature", "")))
        return Response(status_code=204)

    receiver_app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(receiver_app, http="h11", ws="none", lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_for(lambda: server.started)
        async with running(config) as (sb, client):
            url = f"http://127.0.0.1:{port}/hook"
            secret = (await register(client, url, ["test"]))["webhook"]["secret"]
            hook_id = (await client.get("/v1/webhooks")).json()["data"][0]["id"]
            assert (await client.post(f"/v1/webhooks/{hook_id}/test")).status_code == 202
            await wait_for(lambda: len(received) == 1)
            body, signature = received[0]
            verify(secret, signature, body)
            assert parse_event(body).data == {"webhookId": hook_id}
    finally:
        server.should_exit = True
        await serving
        sock.close()
