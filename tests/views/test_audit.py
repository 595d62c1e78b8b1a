"""The audit trail page: a whole journey listed newest first (who, when, what, which connection,
which credential fields by name only, what came of it, the request id), paged by cursor, only
the tenant's own entries, admins only, and never a secret or a bank password."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup, Tag
from starlette.applications import Starlette
from starlette.testclient import TestClient

from onboarding import audit
from store import Store
from tests.support import (
    ROOT_KEY,
    SECRET_KEY,
    TENANT_ACME,
    Browser,
    SandboxHandle,
    connection_id_from,
    finish,
    soup,
    start_listed,
)
from views.guards import STATE_KEY

BANK_PASSWORD = "Bank-Pa55word-of-the-delegate"
BANK_USERNAME = "acme-ops-delegate"


def store_of(client: TestClient) -> Store:
    store: Store = client.app_state[STATE_KEY].store
    return store


def rows(page: BeautifulSoup) -> list[Tag]:
    return page.select("table.audit-trail tbody tr.audit-entry")


def cell(row: Tag, name: str) -> str:
    found = row.select_one(f".audit-{name}")
    assert found is not None
    return " ".join(found.get_text(" ").split())


def test_the_trail_of_a_whole_journey_newest_first(
    alice: Browser, client: TestClient, sandbox: SandboxHandle
) -> None:
    draft = alice.post("/connections/drafts", {"institution_id": "apple_bank"})
    discarded = alice.post(f"{draft.headers['location']}/discard")
    chosen = alice.post("/connections/drafts", {"institution_id": "chase"})
    created = alice.post(
        "/connections/continue",
        {"draft_id": chosen.headers["location"].split("/")[-1], "mode": "listed"},
    )
    connection_id = connection_id_from(created)
    finished = finish(alice, connection_id, bank_username=BANK_USERNAME, password=BANK_PASSWORD)
    sandbox.advance(36)  # activated, first sync done
    synced = alice.post(f"/connections/{connection_id}/sync")
    deleted = alice.post(f"/connections/{connection_id}/delete", {"confirm": "delete"})

    response = alice.get("/audit")
    assert response.status_code == 200 and "<html" in response.text
    page = soup(response)
    assert page.select_one("h1").get_text(strip=True) == "Audit trail"
    entries = rows(page)
    assert [row["data-action"] for row in entries] == [
        "connection.deleted",
        "sync.requested",
        "setup.completed",
        "credentials.submitted",
        "connection.created",
        "draft.discarded",
    ]
    assert [cell(row, "action") for row in entries] == [
        "Deleted a connection",
        "Asked for a sync",
        "Completed setup",
        "Sent bank-issued details",
        "Started a connection",
        "Discarded a draft",
    ]
    assert {cell(row, "user") for row in entries} == {"Alice Admin"}
    assert all(cell(row, "time").endswith("UTC") for row in entries)
    times = [row.select_one("time")["datetime"] for row in entries]
    assert times == sorted(times, reverse=True) and all(t.endswith("Z") for t in times)
    deleted_row, sync_row, completed_row, credentials_row, created_row, discarded_row = entries
    assert cell(credentials_row, "fields") == "Bank username, Password"
    assert cell(sync_row, "outcome") == "Sync started"
    assert cell(completed_row, "outcome") == "Completed"
    assert cell(discarded_row, "connection").startswith("Draft drf_")
    # The connection is gone: named by its id, no longer linked.
    assert connection_id in cell(created_row, "connection")
    assert "no longer exists" in cell(created_row, "connection")
    assert created_row.select_one(".audit-connection a") is None
    request_ids = [cell(row, "request") for row in entries]
    assert request_ids == [
        deleted.headers["x-request-id"],
        synced.headers["x-request-id"],
        finished.headers["x-request-id"],
        finished.headers["x-request-id"],
        created.headers["x-request-id"],
        discarded.headers["x-request-id"],
    ]
    assert page.select_one(".pager") is None  # one page

    # Never a value: neither in the page nor anywhere in the table.
    kept = client.portal.call(lambda: store_of(client).audit_entries(TENANT_ACME, limit=100))  # type: ignore[union-attr]
    assert len(kept) == 6
    stored = repr(kept)
    for secret in (BANK_PASSWORD, BANK_USERNAME, ROOT_KEY, SECRET_KEY):
        assert secret not in response.text and secret not in stored


def test_a_connection_that_still_exists_is_linked(alice: Browser, sandbox: SandboxHandle) -> None:
    connection_id = start_listed(alice, "chase")
    page = soup(alice.get("/audit"))
    (row,) = rows(page)
    link = row.select_one(".audit-connection a")
    assert link is not None and link["href"] == f"/connections/{connection_id}"
    assert "Chase" in link.get_text()
    assert cell(row, "fields") == "\u2014" and cell(row, "outcome") == "\u2014"


def test_the_page_as_an_htmx_fragment(alice: Browser) -> None:
    start_listed(alice, "chase")
    response = alice.get("/audit", htmx=True)
    assert response.status_code == 200 and "<html" not in response.text
    assert "HX-Request" in response.headers["vary"]
    assert response.headers["cache-control"] == "no-store"
    page = soup(response)
    assert page.select_one("title").get_text() == "Audit trail"
    assert len(rows(page)) == 1


def test_the_trail_is_paged_by_cursor(alice: Browser, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit, "PAGE_SIZE", 4)
    for _ in range(5):  # five drafts discarded, then a connection started: six entries
        draft = alice.post("/connections/drafts", {"institution_id": "apple_bank"})
        alice.post(f"{draft.headers['location']}/discard")
    connection_id = start_listed(alice, "chase")
    first = soup(alice.get("/audit"))
    ids = [[row["data-entry-id"] for row in rows(first)]]
    assert first.select_one(".pager-newer") is None and first.select_one(".pager-newest") is None
    page = first
    while (older := page.select_one(".pager-older")) is not None:
        page = soup(alice.get(older["href"]))
        assert page.select_one(".pager-newest")["href"] == "/audit"
        ids.append([row["data-entry-id"] for row in rows(page)])
    assert [len(chunk) for chunk in ids] == [4, 2]
    everything = [entry for chunk in ids for entry in chunk]
    assert len(set(everything)) == 6
    assert rows(first)[0]["data-action"] == "connection.created"
    assert connection_id in cell(rows(first)[0], "connection")
    assert [row["data-action"] for row in rows(page)] == ["draft.discarded"] * 2

    newer = page.select_one(".pager-newer")
    back = soup(alice.get(newer["href"]))
    assert [row["data-entry-id"] for row in rows(back)] == ids[0]
    assert back.select_one(".pager-newer") is None and back.select_one(".pager-older")


def test_a_cursor_that_is_not_an_entry_of_the_tenant(alice: Browser, dana: Browser) -> None:
    start_listed(alice, "chase")
    (row,) = rows(soup(alice.get("/audit")))
    entry_id = row["data-entry-id"]
    foreign = dana.get(f"/audit?before={entry_id}")
    assert foreign.status_code == 200
    assert rows(soup(foreign)) == [] and "No entries on this page" in foreign.text
    assert alice.get("/audit?before=not/an/id").status_code == 400
    assert alice.get(f"/audit?before={entry_id}&after={entry_id}").status_code == 400


def test_another_tenants_entries_never_appear(
    alice: Browser, dana: Browser, client: TestClient
) -> None:
    acme_connection = start_listed(alice, "chase")
    globex_connection = start_listed(dana, "apple_bank")
    dana_page = dana.get("/audit")
    (dana_row,) = rows(soup(dana_page))
    assert globex_connection in cell(dana_row, "connection")
    assert acme_connection not in dana_page.text and "Alice" not in dana_page.text
    (alice_row,) = rows(soup(alice.get("/audit")))
    assert acme_connection in cell(alice_row, "connection")


@pytest.mark.parametrize("who", ["bob", "carol"])
def test_only_admins_see_the_trail(
    who: str, alice: Browser, request: pytest.FixtureRequest
) -> None:
    start_listed(alice, "chase")
    browser: Browser = request.getfixturevalue(who)
    response = browser.get("/audit")
    assert response.status_code == 403
    assert "permission" in soup(response).select_one("h1").get_text()
    assert "audit-entry" not in response.text and "Started a connection" not in response.text
    assert soup(browser.get("/connections")).select_one("a.audit-link") is None
    link = soup(alice.get("/connections")).select_one("a.audit-link")
    assert link is not None and link["href"] == "/audit"


def test_signed_out_goes_to_sign_in(client: TestClient, app: Starlette) -> None:
    response = client.get("/audit")
    assert response.status_code in (302, 303)
    assert "/signin" in response.headers["location"]
