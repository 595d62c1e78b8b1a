"""Injected faults: errors, rate limits and latency on the next matching /v1 requests."""

from __future__ import annotations

import time

import httpx
import pytest

from .helpers import assert_error

pytestmark = pytest.mark.anyio


async def test_error_fault_applies_count_times(client: httpx.AsyncClient) -> None:
    added = await client.post("/_sandbox/faults", json={"mode": "error", "count": 2, "status": 503})
    assert added.status_code == 201
    assert added.json()["fault"]["remaining"] == 2
    assert (await client.get("/_sandbox/clock")).status_code == 200  # control API is exempt
    assert_error(await client.get("/v1/institutions"), 503, "internal_error")
    assert_error(await client.get("/v1/entities"), 503, "internal_error")
    assert (await client.get("/v1/institutions")).status_code == 200
    assert (await client.get("/_sandbox/faults")).json()["data"] == []
    statuses = [r["status"] for r in (await client.get("/_sandbox/requests")).json()["data"]]
    assert statuses == [503, 503, 200]


async def test_error_fault_with_a_4xx_status(client: httpx.AsyncClient) -> None:
    await client.post("/_sandbox/faults", json={"mode": "error", "status": 404})
    assert_error(await client.get("/v1/institutions"), 404, "not_found")


async def test_fault_path_prefix(client: httpx.AsyncClient) -> None:
    await client.post(
        "/_sandbox/faults", json={"mode": "error", "status": 500, "pathPrefix": "/v1/connections"}
    )
    assert (await client.get("/v1/institutions")).status_code == 200
    assert_error(await client.get("/v1/connections"), 500, "internal_error")
    assert (await client.get("/v1/connections")).status_code == 200


async def test_rate_limit_fault(client: httpx.AsyncClient) -> None:
    await client.post("/_sandbox/faults", json={"mode": "rateLimit", "retryAfter": 7})
    response = await client.get("/v1/institutions")
    assert_error(response, 429, "rate_limited")
    assert response.headers["Retry-After"] == "7"


async def test_latency_fault(client: httpx.AsyncClient) -> None:
    await client.post("/_sandbox/faults", json={"mode": "latency", "latencySeconds": 0.3})
    started = time.monotonic()
    response = await client.get("/v1/institutions", params={"limit": 1})
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    await client.get("/v1/institutions", params={"limit": 1})
    assert time.monotonic() - started < 0.3


@pytest.mark.parametrize(
    "body",
    [
        {"mode": "explode"},
        {"mode": "error", "count": 0},
        {"mode": "error", "status": 200},
        {"mode": "error", "pathPrefix": "/_sandbox"},
        {"mode": "error", "colour": "red"},
    ],
)
async def test_invalid_faults(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    assert_error(await client.post("/_sandbox/faults", json=body), 400, "invalid_request")


async def test_clear_faults_and_requests(client: httpx.AsyncClient) -> None:
    await client.post("/_sandbox/faults", json={"mode": "error", "count": 5})
    assert (await client.delete("/_sandbox/faults")).status_code == 204
    assert (await client.get("/v1/institutions")).status_code == 200
    assert (await client.delete("/_sandbox/requests")).status_code == 204
    assert (await client.get("/_sandbox/requests")).json()["data"] == []


async def test_recorded_request_shape(client: httpx.AsyncClient) -> None:
    await client.get("/v1/institutions", params={"query": "chase", "limit": 2})
    [row] = (await client.get("/_sandbox/requests")).json()["data"]
    assert row["method"] == "GET" and row["path"] == "/v1/institutions"
    assert row["query"] == {"query": "chase", "limit": "2"}
    assert row["status"] == 200 and row["body"] is None
    assert row["requestId"].startswith("req_") and row["at"].endswith("Z")
    assert set(row) == {"method", "path", "query", "status", "body", "requestId", "at"}


async def test_clock_endpoint(client: httpx.AsyncClient) -> None:
    before = (await client.get("/_sandbox/clock")).json()
    after = await client.post("/_sandbox/clock", json={"advanceSeconds": 3600})
    assert after.status_code == 200
    assert after.json()["now"] > before["now"]
    assert after.json()["offsetSeconds"] == before["offsetSeconds"] + 3600
    assert_error(
        await client.post("/_sandbox/clock", json={"advanceSeconds": -5}), 400, "invalid_request"
    )
