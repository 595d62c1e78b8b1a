"""Live status, without a web request, on both engines: at most one upstream check per
connection per interval however many readers (in one process and across two instances), none
while a webhook's state is fresh, none before a `Retry-After`, and held reads woken by a change.
Waycore is faked on the wire (respx); time is a clock the test moves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import respx

from onboarding.errors import NotOwned
from onboarding.live import LiveStatus, Reading
from store import Store
from waycore.client import WaycoreClient
from waycore.models import Connection

BASE = "https://api.waycore.test"
TENANT = "acme-manufacturing"
CONN = "conn_live1"

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def resource(
    status: str = "pendingActivation", kind: str = "setup", **extra: Any
) -> dict[str, Any]:
    return {"id": CONN, "entityId": "ent_1", "kind": kind, "status": status, **extra}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def api() -> Any:
    with respx.mock(base_url=BASE, assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
async def waycore() -> AsyncIterator[WaycoreClient]:
    client = WaycoreClient.create(BASE, "way_test_k_secret")
    yield client
    await client.aclose()


async def _live(
    store: Store, waycore: WaycoreClient, clock: Callable[[], float], **options: Any
) -> LiveStatus:
    live = LiveStatus(store, waycore, interval=5, clock=clock, **options)
    await live.start()
    return live


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    opened = await Store.open(database)
    await opened.record_connection(TENANT, CONN)
    yield opened
    await opened.close()


@pytest.fixture
async def live(store: Store, waycore: WaycoreClient, clock: Clock) -> AsyncIterator[LiveStatus]:
    instance = await _live(store, waycore, clock)
    await store.save_state(
        TENANT, CONN, resource(), "action", now=clock.now - 60
    )  # seen a minute ago
    yield instance
    await instance.close()


def slow_get(api: Any, *answers: dict[str, Any]) -> Any:
    """`GET /v1/connections/{CONN}` answering `answers` in turn, each after a short delay (so
    concurrent readers overlap)."""
    replies = list(answers)

    async def answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        return httpx.Response(200, json=replies.pop(0) if len(replies) > 1 else replies[0])

    return api.get(f"/v1/connections/{CONN}").mock(side_effect=answer)


async def test_fifty_concurrent_readers_share_one_check(live: LiveStatus, api: Any) -> None:
    route = slow_get(api, resource())
    readings = await asyncio.gather(*(live.read(TENANT, CONN) for _ in range(50)))
    assert route.call_count == 1
    assert {r.connection.status for r in readings} == {"pendingActivation"}


async def test_one_check_per_interval(live: LiveStatus, api: Any, clock: Clock) -> None:
    route = slow_get(api, resource())
    await live.read(TENANT, CONN)
    for _ in range(10):
        clock.now += 0.4
        await live.read(TENANT, CONN)
    assert route.call_count == 1  # 4 s later: still the one check
    clock.now += 2.1  # past the interval and the largest share of the spread (1 s)
    await live.read(TENANT, CONN)
    assert route.call_count == 2


async def test_states_seen_together_fall_due_spread_over_a_fifth_of_the_interval(
    live: LiveStatus,
) -> None:
    """A hundred connections saved at one moment are due between 5 and 6 s later, not all at
    once; every instance computes the same times."""
    seen = 1_800_000_000.0
    ids = [f"conn_{n:04d}" for n in range(100)]
    due = [live.due_at(cid, "poll", seen, None) - seen for cid in ids]
    assert all(5 <= d < 6 for d in due)
    assert len({int(d * 10) for d in due}) >= 8  # across most tenths of that second
    other = LiveStatus(live.store, live.waycore, interval=5)
    assert [other.due_at(cid, "poll", seen, None) - seen for cid in ids] == due
    assert live.due_at(ids[0], "webhook", seen, None) == seen + 60  # a webhook's minute
    assert live.due_at(ids[0], "poll", seen, seen + 30) == seen + 30  # a Retry-After


async def test_two_instances_share_one_check(
    live: LiveStatus, database: str, waycore: WaycoreClient, clock: Clock, api: Any
) -> None:
    other_store = await Store.open(database)
    other = await _live(other_store, waycore, clock)
    try:
        route = slow_get(api, resource())
        await asyncio.gather(
            *(live.read(TENANT, CONN) for _ in range(25)),
            *(other.read(TENANT, CONN) for _ in range(25)),
        )
        assert route.call_count == 1
        clock.now += 2
        await other.read(TENANT, CONN)
        assert route.call_count == 1
    finally:
        await other.close()
        await other_store.close()


async def test_a_webhook_state_answers_for_a_minute_without_a_check(
    live: LiveStatus, api: Any, clock: Clock
) -> None:
    route = slow_get(api, resource("active", "ready", syncStatus="idle"))
    await live.record(TENANT, Connection.from_api(resource("active", "ready")), source="webhook")
    for _ in range(59):
        clock.now += 1
        assert (await live.read(TENANT, CONN)).connection.status == "active"
    assert route.call_count == 0
    clock.now += 2  # a lost webhook after it is still caught by polling
    await live.read(TENANT, CONN)
    assert route.call_count == 1


async def test_retry_after_moves_the_next_check(live: LiveStatus, api: Any, clock: Clock) -> None:
    route = api.get(f"/v1/connections/{CONN}").mock(
        side_effect=[
            httpx.Response(
                429,
                headers={"Retry-After": "30"},
                json={"error": {"code": "rate_limited", "message": "slow down"}},
            ),
            httpx.Response(200, json=resource("active", "ready")),
        ]
    )
    first = await live.read(TENANT, CONN)
    assert first.connection.status == "pendingActivation"  # the last state, shown meanwhile
    assert first.check_after == clock.now + 30
    for _ in range(5):
        clock.now += 5
        assert (await live.read(TENANT, CONN)).check_after is not None
    assert route.call_count == 1
    clock.now += 6
    assert (await live.read(TENANT, CONN)).connection.status == "active"
    assert route.call_count == 2


async def test_a_failed_check_is_not_retried_in_place(
    live: LiveStatus, api: Any, clock: Clock
) -> None:
    route = api.get(f"/v1/connections/{CONN}").respond(
        503, json={"error": {"code": "internal_error", "message": "down"}}
    )
    with pytest.raises(Exception, match="503"):
        await live.read(TENANT, CONN)
    assert route.call_count == 1  # no retries: the next read (poll) is the retry


async def test_another_tenant_is_refused_before_any_check(live: LiveStatus, api: Any) -> None:
    route = slow_get(api, resource())
    with pytest.raises(NotOwned):
        await live.read("globex-treasury", CONN)
    assert route.call_count == 0


async def test_a_held_read_wakes_when_another_instance_records_a_change(
    live: LiveStatus, database: str, waycore: WaycoreClient, clock: Clock, api: Any
) -> None:
    slow_get(api, resource())
    start = await live.read(TENANT, CONN)
    other_store = await Store.open(database)
    try:
        held = asyncio.create_task(live.wait(TENANT, CONN, start.version, hold=30))
        await asyncio.sleep(0.1)
        assert not held.done() and live.waiting == 1
        ready = Connection.from_api(resource("active", "ready"))
        await other_store.save_state(TENANT, CONN, ready.to_api(), "webhook", now=clock.now)
        woken = await asyncio.wait_for(held, 5)  # well before the 30 s hold
        assert woken is not None and woken.connection.status == "active"
        assert woken.version > start.version
    finally:
        await other_store.close()


async def test_a_held_read_sleeps_while_a_webhook_state_is_fresh(
    store: Store, waycore: WaycoreClient, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the poll interval but inside the webhook's minute, the state is not due a check:
    a held read sleeps to the end of its hold (one more read), not a read every few ms."""
    route = slow_get(api, resource())
    started = time.monotonic()
    live = await _live(store, waycore, lambda: 1_800_000_000.0 + time.monotonic() - started)
    try:
        state, _ = await store.save_state(  # a webhook 10 s ago: two intervals, 1/6 of its minute
            TENANT,
            CONN,
            resource(),
            "webhook",
            now=1_800_000_000.0 + time.monotonic() - started - 10,
        )
        reads = 0
        read = live.read

        async def counted(tenant_id: str, connection_id: str) -> Reading:
            nonlocal reads
            reads += 1
            return await read(tenant_id, connection_id)

        monkeypatch.setattr(live, "read", counted)
        held = await live.wait(TENANT, CONN, state.version, hold=0.6)
        assert held is not None and held.source == "webhook"
        assert reads <= 3  # on arrival, and as the hold ends (not one per 50 ms: 12)
        assert route.call_count == 0
    finally:
        await live.close()


async def test_held_reads_are_capped_and_released_at_shutdown(
    store: Store, waycore: WaycoreClient, clock: Clock, api: Any
) -> None:
    slow_get(api, resource())
    live = await _live(store, waycore, clock, max_waiters=1)
    start = await live.read(TENANT, CONN)
    held = asyncio.create_task(live.wait(TENANT, CONN, start.version, hold=30))
    await asyncio.sleep(0.1)
    assert await live.wait(TENANT, CONN, start.version, hold=30) is None  # answered at once
    await live.close()
    assert (await asyncio.wait_for(held, 5)) is not None
    assert await live.wait(TENANT, CONN, start.version) is None  # closed: nothing is held


async def test_checks_and_listings_in_flight_end_at_shutdown(
    store: Store, waycore: WaycoreClient, clock: Clock, api: Any
) -> None:
    """Waycore not answering at shutdown: the check and the listing waiting on it are
    cancelled, not left running past the app's close."""
    never = asyncio.Event()

    async def stuck(request: httpx.Request) -> httpx.Response:
        await never.wait()
        return httpx.Response(500)

    api.get(f"/v1/connections/{CONN}").mock(side_effect=stuck)
    api.get("/v1/connections").mock(side_effect=stuck)
    live = await _live(store, waycore, clock)
    await store.save_state(TENANT, CONN, resource(), "action", now=clock.now - 60)
    owned = await store.owned_connections(TENANT)
    reading = asyncio.ensure_future(live.read(TENANT, CONN))
    listing = asyncio.ensure_future(live.tenant_connections(TENANT, "ent_1", owned))
    await asyncio.sleep(0.1)
    assert not reading.done() and not listing.done()
    await live.close()
    for waiting in (reading, listing):
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 5)


async def test_a_finished_sync_means_new_data(live: LiveStatus, store: Store) -> None:
    syncing = Connection.from_api(resource("active", "ready", syncStatus="syncing"))
    first = await live.record(TENANT, syncing, source="action")
    idle = Connection.from_api(resource("active", "ready", syncStatus="idle"))
    after = await live.record(TENANT, idle, source="poll")
    assert after.data_version == first.data_version + 1
    assert after.version == first.version + 1
