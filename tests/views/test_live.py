"""Live status, as a page sees it: several tabs watching one connection share one upstream
check, a `Retry-After` moves the next check and the page says when, a step Waycore asked to wait
stays off with no call before the time it names, a held activation check answers as soon as a
webhook arrives, and a connection's account data is reused until Waycore says there is more."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from starlette.datastructures import Secret
from starlette.testclient import TestClient

from config import Settings
from server import create_app
from tests.support import Browser, SandboxHandle, finish, soup, start_listed
from tests.views.test_webhooks_receiver import SECRET, deliver

HOLD_SECONDS = 20.0


@pytest.fixture
def settings(tmp_path: Path, settings: Settings) -> Settings:
    return replace(settings, webhook_secret=Secret(SECRET))


def _poll_url(page: Any) -> str:
    return str(page.select_one("#activation-status")["hx-get"])


def _sync_available(event_id: str, connection_id: str) -> dict[str, Any]:
    """Waycore's webhook event: new transactions of the connection can be read."""
    return {
        "id": event_id,
        "type": "transactions.sync_available",
        "createdAt": "2026-11-26T12:00:00Z",
        "data": {"connectionId": connection_id, "accountId": None},
    }


def _gets(sandbox: SandboxHandle, connection_id: str) -> int:
    return len(sandbox.calls("GET", f"/v1/connections/{connection_id}"))


def test_five_tabs_watching_one_connection_make_one_check(
    alice: Browser, bob: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = start_listed(alice, "scenario_slow")
    finish(alice, connection_id)
    sandbox.expire_app_state()
    sandbox.clear()
    url = f"/connections/{connection_id}/activation/status?seen=pendingActivation"
    for tab in (alice, alice, bob, alice, bob):  # two users, five tabs
        response = tab.get(url, htmx=True, target="activation-status")
        assert soup(response).select_one("#activation-status[data-status=pendingActivation]")
    assert _gets(sandbox, connection_id) == 1


def test_a_retry_after_while_polling_moves_the_next_check_and_says_when(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = start_listed(alice, "scenario_slow")
    finish(alice, connection_id)
    sandbox.fault(
        mode="error",
        status=429,
        count=1,
        retryAfter=120,
        pathPrefix=f"/v1/connections/{connection_id}",
    )
    sandbox.clear()
    url = f"/connections/{connection_id}/activation/status?seen=pendingActivation"
    region = soup(alice.get(url, htmx=True, target="activation-status")).select_one(
        "#activation-status"
    )
    assert "next check is at" in region.select_one(".next-check").get_text()
    delay = float(region["hx-trigger"].split("delay:")[1].rstrip("s"))
    assert 115 <= delay <= 121
    for _ in range(3):  # other tabs, meanwhile: nothing is asked of Waycore
        alice.get(url, htmx=True, target="activation-status")
    assert _gets(sandbox, connection_id) == 1


def test_a_step_waycore_asked_to_wait_for_stays_off_with_no_call_until_then(
    alice: Browser, bob: Browser, sandbox: SandboxHandle
) -> None:
    draft = alice.post("/connections/drafts", {"institution_id": "chase"}).headers["location"]
    form = {"draft_id": draft.split("/")[-1], "mode": "listed"}
    sandbox.fault(mode="error", status=429, count=1, retryAfter=90, pathPrefix="/v1/connections")
    refused = soup(alice.post("/connections/continue", form))
    notice = refused.select_one(".alert-danger .retry-at")
    assert notice is not None and "You can try again at" in notice.get_text()
    assert int(notice["data-retry-at"]) > 0
    assert len(sandbox.calls("POST", "/v1/connections")) == 1
    # Again at once, and for another user of the same key: no call reaches Waycore.
    again = soup(alice.post("/connections/continue", form))
    assert again.select_one(".alert-danger .retry-at") is not None
    other = bob.post("/connections/drafts", {"institution_id": "apple_bank"}).headers["location"]
    bob.post("/connections/continue", {"draft_id": other.split("/")[-1], "mode": "listed"})
    assert len(sandbox.calls("POST", "/v1/connections")) == 1


@pytest.fixture
def long_poll_app(settings: Settings) -> Any:
    return create_app(replace(settings, long_poll_seconds=HOLD_SECONDS))


def test_a_held_activation_check_answers_when_the_webhook_arrives(long_poll_app: Any) -> None:
    with TestClient(long_poll_app, follow_redirects=False) as client:
        sandbox = SandboxHandle(client, long_poll_app)
        alice = Browser(client)
        alice.sign_in("u-alice")
        connection_id = start_listed(alice, "scenario_slow")
        finish(alice, connection_id)
        page = soup(alice.get(f"/connections/{connection_id}/activation"))
        url = _poll_url(page)
        assert "wait=1" in url and "v=" in url
        answers: list[Any] = []
        held = threading.Thread(
            target=lambda: answers.append(alice.get(url, htmx=True, target="activation-status"))
        )
        held.start()
        held.join(0.5)
        assert held.is_alive()  # nothing changed: the check is held
        code, _ = sandbox.control(
            "PUT", f"/_sandbox/connections/{connection_id}/status", {"status": "active"}
        )
        assert code == 200
        event = {
            "id": "evt_live_1",
            "type": "connection.status_changed",
            "createdAt": "2026-11-26T12:00:00Z",
            "data": {"connectionId": connection_id, "status": "active", "kind": "ready"},
        }
        assert deliver(client, event) == 200
        held.join(5)  # well before the hold would have ended
        assert not held.is_alive()
        location = json.loads(answers[0].headers["hx-location"])
        assert location["path"] == f"/connections/{connection_id}"


def test_a_held_check_that_sees_no_change_rearms_at_once(settings: Settings) -> None:
    app = create_app(replace(settings, long_poll_seconds=1.0))
    with TestClient(app, follow_redirects=False) as client:
        alice = Browser(client)
        alice.sign_in("u-alice")
        connection_id = start_listed(alice, "scenario_slow")
        finish(alice, connection_id)
        url = _poll_url(soup(alice.get(f"/connections/{connection_id}/activation")))
        region = soup(alice.get(url, htmx=True, target="activation-status")).select_one(
            "#activation-status"
        )  # held for the second, then answered unchanged
        assert region["data-status"] == "pendingActivation"
        assert region["hx-trigger"] == "load delay:0.2s"  # the server already waited
        assert "wait=1" in region["hx-get"]


def test_account_data_is_reused_until_waycore_says_there_is_more(
    alice: Browser, client: TestClient, sandbox: SandboxHandle
) -> None:
    connection_id = start_listed(alice, "chase")
    finish(alice, connection_id)
    sandbox.advance(60)  # active, first sync over
    alice.get(f"/connections/{connection_id}")
    sandbox.clear()
    for _ in range(3):
        page = soup(alice.get(f"/connections/{connection_id}"))
        assert page.select("table.accounts tr[data-account-id]")
    assert sandbox.calls("GET", "/v1/accounts") == []
    assert deliver(client, _sync_available("evt_sync_1", connection_id)) == 200
    alice.get(f"/connections/{connection_id}")
    assert len(sandbox.calls("GET", "/v1/accounts")) == 1


def test_the_data_section_shown_again_is_never_older_than_the_data(
    alice: Browser, client: TestClient, sandbox: SandboxHandle
) -> None:
    """The rendered transactions are reused only while the data they show is: once Waycore's
    transactions have moved on and Waycore has said so, the page shows Waycore's."""
    connection_id = start_listed(alice, "chase")
    finish(alice, connection_id)
    sandbox.advance(60)  # active, first sync over

    def shown() -> list[tuple[str, str]]:
        page = soup(alice.get(f"/connections/{connection_id}"))
        return [
            (
                row["data-transaction-id"],
                row.select_one("td[data-label=Status]").get_text(strip=True),
            )
            for row in page.select("#transaction-rows tr")
        ]

    def at_waycore() -> list[tuple[str, str]]:
        query = f"connectionId={connection_id}&limit=25"
        status, body = sandbox.control("GET", f"/v1/transactions?{query}")
        assert status == 200
        return [(item["id"], item["status"]) for item in body["data"]]

    first = shown()
    assert first and first == at_waycore()
    assert shown() == first  # the same data: the same section
    for _ in range(8):  # syncs at Waycore until one changes the newest page (pending items post,
        # new ones arrive; each sync almost always changes it)
        assert sandbox.control("PUT", f"/v1/connections/{connection_id}/sync")[0] in (200, 202)
        sandbox.advance(3600)
        if at_waycore() != first:
            break
    assert at_waycore() != first, "no sync changed the newest transactions"
    assert deliver(client, _sync_available("evt_sync_2", connection_id)) == 200
    assert shown() == at_waycore()


def test_the_list_shows_drafts_a_page_at_a_time(alice: Browser, client: TestClient) -> None:
    from views.guards import STATE_KEY

    store = client.app_state[STATE_KEY].store

    async def seed() -> None:
        for _ in range(45):
            await store.create_draft("acme-manufacturing", "u-alice", institution_id="chase")

    assert client.portal is not None
    client.portal.call(seed)
    first = soup(alice.get("/connections"))
    assert len(first.select("[data-draft-id]")) == 20
    more = first.select_one("#drafts a.button")
    assert more["href"] == "/connections?drafts=40#drafts"
    second = soup(alice.get(more["href"].split("#")[0]))
    assert len(second.select("[data-draft-id]")) == 40
    last = soup(alice.get("/connections?drafts=60"))
    assert len(last.select("[data-draft-id]")) == 45
    assert last.select_one("#drafts a.button") is None
