"""Two app instances on one Postgres database and one Waycore, as behind a load balancer: a
customer may land on either at every request. Sessions, drafts, the entity map and connection
ownership are shared; the tenant's entity is created once; a notification sent by one
instance's store reaches a listener on the other; host events queued on either are delivered
once, whichever instance sends them; the audit trail is one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from starlette.datastructures import Secret
from starlette.testclient import TestClient

from host import Tenant
from server import create_app
from store import Store
from tests.receiver import HOST_SECRET, HOST_URL, Receiver
from tests.support import ROOT_KEY, Browser, connection_id_from, finish, make_settings, soup
from views.guards import STATE_KEY
from waycore.sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.postgres

ACME = Tenant("acme-manufacturing", "Acme Manufacturing Ltd")


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """One Waycore for both instances (opened lazily by its first request, its clock moved by
    the test; no background worker)."""
    shared = Sandbox(SandboxConfig(api_key=ROOT_KEY, activation_seconds=30.0))
    yield shared
    shared.store.close()


@pytest.fixture
def instances(
    tmp_path: Path, postgres_database: str, sandbox: Sandbox
) -> Iterator[tuple[TestClient, TestClient]]:
    settings = make_settings(tmp_path, database_url=postgres_database)
    apps = [
        create_app(settings, waycore_transport=httpx.ASGITransport(app=sandbox.app))
        for _ in range(2)
    ]
    with (
        TestClient(apps[0], follow_redirects=False) as one,
        TestClient(apps[1], follow_redirects=False) as two,
    ):
        yield one, two


def store_of(client: TestClient) -> Store:
    store: Store = client.app_state[STATE_KEY].store
    return store


def on(browser: Browser, client: TestClient) -> Browser:
    """The same browser (cookies, CSRF token), its next requests served by `client`."""
    browser.client = client
    return browser


def entity_creations(sandbox: Sandbox) -> list[str]:
    return [
        r.body["externalEntityId"]
        for r in sandbox.requests
        if r.method == "POST" and r.path == "/v1/entities"
    ]


def test_a_customer_signs_in_on_one_instance_and_continues_on_the_other(
    instances: tuple[TestClient, TestClient], sandbox: Sandbox
) -> None:
    one, two = instances
    alice = Browser(one)
    alice.sign_in("u-alice")  # session written by one; the entity resolved by one

    listed = on(alice, two).get("/connections")
    assert listed.status_code == 200
    assert "Alice Admin" in soup(listed).get_text()
    draft = on(alice, two).post("/connections/drafts", {"institution_id": "chase"})
    assert draft.status_code == 303
    draft_url = draft.headers["location"]

    resumed = on(alice, one).get(draft_url)
    assert resumed.status_code == 200
    created = on(alice, one).post(
        "/connections/continue", {"draft_id": draft_url.split("/")[-1], "mode": "listed"}
    )
    assert created.status_code == 303, created.text
    connection_id = connection_id_from(created)

    assert on(alice, two).get(f"/connections/{connection_id}/delegated-user").status_code == 200
    assert finish(on(alice, two), connection_id).status_code == 303
    sandbox.advance_clock(36)
    # The apps' clocks stood still: what they last saw (in the shared database) is old now.
    store: Store = one.app_state[STATE_KEY].store
    assert one.portal is not None
    one.portal.call(store.expire_state)
    page = on(alice, one).get(f"/connections/{connection_id}")
    assert page.status_code == 200
    assert f"/connections/{connection_id}" in str(page.url)
    assert entity_creations(sandbox) == ["acme-manufacturing"]  # created once, by one

    # Signing out on one instance ends the session on the other too: the other instance had
    # it in memory, and drops it when the notification arrives (well before its 5 s expiry).
    on(alice, one).post("/signout")
    deadline = time.monotonic() + 1.0
    while on(alice, two).get("/connections").status_code != 303:
        assert time.monotonic() < deadline, "the other instance still knows the session"
        time.sleep(0.02)


def test_another_tenant_stays_out_on_either_instance(
    instances: tuple[TestClient, TestClient],
) -> None:
    one, two = instances
    alice, dana = Browser(one), Browser(two)
    alice.sign_in("u-alice")
    dana.sign_in("u-dana")
    draft_url = alice.post("/connections/drafts", {"institution_id": "chase"}).headers["location"]
    assert on(dana, one).get(draft_url).status_code == 404
    assert on(dana, two).get(draft_url).status_code == 404


def test_two_instances_resolving_at_once_create_one_entity(
    instances: tuple[TestClient, TestClient], sandbox: Sandbox
) -> None:
    """Each instance's entity resolver, started at the same moment on its own event loop."""
    started = [
        client.portal.start_task_soon(client.app_state[STATE_KEY].entities.resolve, ACME)
        for client in instances
        if client.portal is not None
    ]
    ids = {future.result(timeout=60) for future in started}
    assert len(started) == 2 and len(ids) == 1
    # One lookup and one create, by whichever instance got the lock; the other made no call.
    entity_calls = [r.method for r in sandbox.requests if r.path == "/v1/entities"]
    assert entity_calls == ["GET", "POST"]
    assert entity_creations(sandbox) == ["acme-manufacturing"]


def test_a_notification_sent_by_one_instance_reaches_a_listener_on_the_other(
    instances: tuple[TestClient, TestClient],
) -> None:
    one, two = instances
    assert one.portal is not None and two.portal is not None
    messages = store_of(two).listen("connection:conn_1")
    two.portal.call(messages.__aenter__)
    one.portal.call(store_of(one).notify, "connection:conn_1", "active")
    assert two.portal.call(messages.get, 10) == "active"
    two.portal.call(messages.__aexit__, None, None, None)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def with_events(
    tmp_path: Path, postgres_database: str, sandbox: Sandbox, receiver: Receiver
) -> Iterator[tuple[TestClient, TestClient]]:
    """Two instances that both send host events, to one host."""
    settings = make_settings(
        tmp_path,
        database_url=postgres_database,
        host_events_url=HOST_URL,
        host_events_secret=Secret(HOST_SECRET),
    )
    apps = [
        create_app(
            settings,
            waycore_transport=httpx.ASGITransport(app=sandbox.app),
            host_events_transport=receiver.transport(),
        )
        for _ in range(2)
    ]
    with (
        TestClient(apps[0], follow_redirects=False) as one,
        TestClient(apps[1], follow_redirects=False) as two,
    ):
        yield one, two


def test_both_instances_send_host_events_and_each_reaches_the_host_once(
    with_events: tuple[TestClient, TestClient], receiver: Receiver
) -> None:
    one, two = with_events
    receiver.fail_next = 1000  # the host is down while the events are queued
    alice = Browser(one)
    alice.sign_in("u-alice")
    for _ in range(6):
        on(alice, one).get("/connections/new")
        on(alice, two).get("/connections/new")
    assert one.portal is not None
    queued = {e.event_id for e in one.portal.call(store_of(one).host_events, ("pending",))}
    assert len(queued) == 12

    receiver.fail_next = 0  # the host is back: both instances deliver at the same moment
    senders = [client.app_state[STATE_KEY].events.sender for client in (one, two)]
    for sender in senders:
        sender.clock = lambda: time.time() + 3600  # every retry is due
    portals = [client.portal for client in (one, two)]
    with ThreadPoolExecutor(2) as pool:
        passes = [
            pool.submit(portal.call, sender.deliver_due)  # type: ignore[union-attr]
            for portal, sender in zip(portals, senders, strict=True)
        ]
        for done in passes:
            done.result()
    delivered = [e["id"] for e in receiver.accepted]
    assert sorted(delivered) == sorted(queued)  # every event, each exactly once
    assert receiver.bad_signatures == 0


def test_the_audit_trail_of_both_instances_is_one_trail(
    instances: tuple[TestClient, TestClient],
) -> None:
    one, two = instances
    alice = Browser(one)
    alice.sign_in("u-alice")
    for client in (one, two):
        draft = on(alice, client).post("/connections/drafts", {"institution_id": "chase"})
        on(alice, client).post(f"{draft.headers['location']}/discard")
    for client in (one, two):
        page = soup(on(alice, client).get("/audit"))
        assert [row["data-action"] for row in page.select("tr.audit-entry")] == [
            "draft.discarded",
            "draft.discarded",
        ]
