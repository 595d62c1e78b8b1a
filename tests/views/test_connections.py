"""The connections list, the connection detail page, manual sync and delete."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.support import (
    Browser,
    SandboxHandle,
    finish,
    soup,
    start_listed,
    start_unlisted,
    text_of,
)


def ready_connection(browser: Browser, sandbox: SandboxHandle, institution: str = "chase") -> str:
    """A connection through activation and its first sync, idle."""
    connection_id = start_listed(browser, institution)
    finish(browser, connection_id)
    sandbox.advance(31)  # activation
    sandbox.advance(5)  # the automatic first sync ends
    return connection_id


# ---------------------------------------------------------------------------- list


def test_list_shows_live_setup_and_draft_rows_with_their_labels(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    live = ready_connection(alice, sandbox, "chase")
    in_setup = start_listed(alice, "apple_bank")
    activating = start_unlisted(alice, "Fjord Bank", "https://online.fjord.example/login")
    finish(alice, activating)
    alice.post("/connections/drafts", {"institution_id": "united_bank"})

    page = soup(alice.get("/connections"))
    rows = {
        row.get("data-connection-id") or row.get("data-draft-id"): row
        for row in page.select(".connection-row")
    }
    assert rows[live].select_one(".badge").get_text(strip=True) == "Connected"
    assert rows[live].select_one("a.row-action")["href"] == f"/connections/{live}"
    assert rows[in_setup].select_one(".badge").get_text(strip=True) == "Setup in progress"
    assert rows[in_setup].select_one("a.row-action").get_text(" ", strip=True).startswith("Resume")
    assert rows[activating].select_one(".badge").get_text(strip=True) == "Activating"
    assert "Fjord Bank" in rows[activating].select_one(".connection-name").get_text()
    (draft_row,) = page.select("[data-draft-id]")
    assert draft_row.select_one(".badge").get_text(strip=True) == "Draft"
    assert "United Bank" in draft_row.get_text()
    assert page.select_one("#live-title") and page.select_one("#setup-title")


def test_list_is_empty_for_a_new_tenant_and_offers_to_connect(alice: Browser) -> None:
    page = soup(alice.get("/connections"))
    assert "No bank connections yet" in page.select_one(".empty-state").get_text()
    assert page.select_one("a.button.primary[href='/connections/new']") is not None


def test_viewer_sees_the_list_without_connect_or_resume_actions(
    alice: Browser, carol: Browser
) -> None:
    alice.post("/connections/drafts", {"institution_id": "chase"})
    page = soup(carol.get("/connections"))
    assert page.select_one("a[href='/connections/new']") is None
    assert page.select_one("[data-draft-id] a.row-action") is None


# ---------------------------------------------------------------------------- detail


def test_detail_shows_status_institution_portal_accounts_balances_and_transactions(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = ready_connection(alice, sandbox)
    response = alice.get(f"/connections/{connection_id}")
    assert response.status_code == 200
    page = soup(response)
    facts = {
        div.select_one("dt").get_text(strip=True): div.select_one("dd").get_text(" ", strip=True)
        for div in page.select("dl.facts > div")
    }
    assert facts["Status"] == "Connected"
    assert facts["Institution"] == "JPMorgan Chase"
    assert facts["Portal"] == "secure.chase.com"
    assert facts["Last sync"] != "—"

    _, accounts = sandbox.control("GET", f"/v1/accounts?connectionId={connection_id}")
    rows = page.select("table.accounts tbody tr")
    assert [r["data-account-id"] for r in rows] == [a["id"] for a in accounts["data"]]
    first = accounts["data"][0]
    cells = [td.get_text(strip=True) for td in rows[0].select("td")]
    assert first["currency"] in cells[2] or first["currency"] in cells[3]

    balance_dates = [th.get_text(strip=True) for th in page.select("table.balances tbody th")]
    assert 1 <= len(balance_dates) <= 14
    assert balance_dates == sorted(balance_dates, reverse=True)
    datetime.strptime(balance_dates[0], "%Y-%m-%d")

    transactions = page.select("#transaction-rows tr[data-transaction-id]")
    assert len(transactions) == 25
    more = page.select_one("a.load-more")
    assert more["hx-get"].startswith(f"/connections/{connection_id}/transactions?cursor=")
    assert page.select_one("a[href$='/delete']") is not None  # alice is an admin


def test_transactions_page_follows_next_cursor_and_appends_rows(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = ready_connection(alice, sandbox)
    first = soup(alice.get(f"/connections/{connection_id}"))
    seen = [tr["data-transaction-id"] for tr in first.select("tr[data-transaction-id]")]
    next_url = first.select_one("a.load-more")["hx-get"]
    pages = 0
    while next_url and pages < 40:
        response = alice.get(next_url, htmx=True, target="transactions-more")
        assert "<html" not in response.text
        fragment = soup(response)
        # CSS selectors do not look inside <template>; the rows travel there out of band.
        oob = fragment.find("template").find("tbody")
        assert oob["hx-swap-oob"] == "beforeend:#transaction-rows"
        seen += [tr["data-transaction-id"] for tr in oob.find_all("tr")]
        more = fragment.select_one("#transactions-more a.load-more")
        next_url = more["hx-get"] if more else None
        pages += 1
    _, listed = sandbox.control("GET", f"/v1/transactions?connectionId={connection_id}&limit=500")
    assert len(seen) == len(set(seen))
    assert pages > 1
    assert set(seen) >= {t["id"] for t in listed["data"]}


def test_no_js_load_more_is_a_plain_link_to_the_next_page(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = ready_connection(alice, sandbox)
    first = soup(alice.get(f"/connections/{connection_id}"))
    first_ids = {tr["data-transaction-id"] for tr in first.select("tr[data-transaction-id]")}
    href = first.select_one("a.load-more")["href"]
    page = soup(alice.get(href))
    assert "Showing older transactions" in page.select_one("#transactions").get_text()
    older = {tr["data-transaction-id"] for tr in page.select("tr[data-transaction-id]")}
    assert older and not older & first_ids


def test_a_setup_connection_opens_on_its_wizard_step(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = start_listed(alice, "chase")
    response = alice.get(f"/connections/{connection_id}")
    assert response.headers["location"] == f"/connections/{connection_id}/delegated-user"
    finish(alice, connection_id)
    response = alice.get(f"/connections/{connection_id}")
    assert response.headers["location"] == f"/connections/{connection_id}/activation"


def test_a_ready_but_not_active_connection_is_listed_under_needs_attention(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = ready_connection(alice, sandbox)
    sandbox.set_status(connection_id, "reauthRequired")
    page = soup(alice.get("/connections"))
    assert page.select_one("#live-title") is None
    section = page.select_one("#attention-title").find_parent("section")
    row = section.select_one(f"[data-connection-id={connection_id}]")
    assert row.select_one(".badge").get_text(strip=True) == "Reauthentication required"


def test_sync_polling_survives_a_failed_check(bob: Browser, sandbox: SandboxHandle) -> None:
    connection_id = ready_connection(bob, sandbox)
    bob.post(f"/connections/{connection_id}/sync", htmx=True, target="sync-panel")
    sandbox.fault(mode="error", status=503, count=3, pathPrefix=f"/v1/connections/{connection_id}")
    url = f"/connections/{connection_id}/sync?after=sync"
    panel = soup(bob.get(url, htmx=True, target="sync-panel")).find(True)
    assert panel["id"] == "sync-panel" and panel["hx-get"] == url


def test_detail_of_a_revoked_connection_explains_and_offers_no_sync(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = ready_connection(alice, sandbox)
    sandbox.set_status(connection_id, "revoked")
    sandbox.clear()
    page = soup(alice.get(f"/connections/{connection_id}"))
    assert page.select_one(".page-head .badge").get_text(strip=True) == "Revoked"
    assert "start a new connection" in page.select_one(".alert").get_text()
    assert page.select_one("button.sync-button") is None
    # only ready-and-active connections are usable: no data is read from this one
    assert [c.path for c in sandbox.requests] == [f"/v1/connections/{connection_id}"]


# ---------------------------------------------------------------------------- sync


def test_sync_accepted_shows_syncing_now_and_polls_until_idle(
    bob: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = ready_connection(bob, sandbox)
    response = bob.post(f"/connections/{connection_id}/sync", htmx=True, target="sync-panel")
    assert response.status_code == 200
    panel = soup(response).select_one("#sync-panel")
    assert "Syncing now" in panel.select_one(".sync-state").get_text()
    assert panel["hx-trigger"] == "load delay:5s"
    assert panel.select_one("button.sync-button").has_attr("disabled")
    assert sandbox.calls("PUT")[-1].status == 202

    sandbox.advance(5)
    polled = bob.get(
        f"/connections/{connection_id}/sync?after=sync", htmx=True, target="sync-panel"
    )
    panel = soup(polled).select_one("#sync-panel")
    assert "Not currently syncing" in panel.select_one(".sync-state").get_text()
    # The 5 s polling stops; what is left is one refresh when the 45-minute cooldown ends.
    delay = float(panel["hx-trigger"].split("delay:")[1].rstrip("s"))
    assert 40 * 60 < delay <= 45 * 60 + 1
    assert polled.headers["hx-trigger"] == "transactionsChanged"


def test_sync_while_syncing_gets_a_calm_retry_message(bob: Browser, sandbox: SandboxHandle) -> None:
    connection_id = start_listed(bob, "chase")
    finish(bob, connection_id)
    sandbox.advance(31)  # active, first sync still running
    response = bob.post(f"/connections/{connection_id}/sync", htmx=True, target="sync-panel")
    assert response.status_code == 200
    assert "try again in a few minutes" in text_of(response, ".sync-message")
    assert sandbox.calls("PUT")[-1].status == 409


def _disabled(panel: Any) -> bool:
    return panel.select_one("button.sync-button").has_attr("disabled")


def test_an_accepted_sync_keeps_the_control_disabled_for_the_whole_cooldown(
    bob: Browser, sandbox: SandboxHandle
) -> None:
    """The 45-minute cooldown starts when Waycore accepts a manual sync: once that sync is over,
    "Sync now" stays disabled until the cooldown ends, and nothing is sent to Waycore inside it."""
    connection_id = ready_connection(bob, sandbox)
    bob.post(f"/connections/{connection_id}/sync", htmx=True, target="sync-panel")
    assert sandbox.calls("PUT")[-1].status == 202
    sandbox.advance(10)  # that sync is over; the 45-minute cooldown is running
    polled = bob.get(
        f"/connections/{connection_id}/sync?after=sync", htmx=True, target="sync-panel"
    )
    panel = soup(polled).select_one("#sync-panel")
    assert _disabled(panel)
    assert "next sync is allowed at" in panel.select_one(".cooldown").get_text()
    detail = soup(bob.get(f"/connections/{connection_id}"))
    assert _disabled(detail.select_one("#sync-panel"))

    sandbox.clear()
    again = bob.post(f"/connections/{connection_id}/sync", htmx=True, target="sync-panel")
    assert sandbox.calls("PUT") == []  # no sync reaches Waycore inside the cooldown
    panel = soup(again).select_one("#sync-panel")
    assert _disabled(panel)
    # The refusal keeps the panel's status line.
    assert "Not currently syncing" in panel.select_one(".sync-state").get_text()
    assert "last synced" in panel.select_one(".sync-state").get_text()


def test_a_429_from_waycore_disables_sync_until_retry_after_and_keeps_the_status_line(
    bob: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = ready_connection(bob, sandbox)
    path = f"/v1/connections/{connection_id}/sync"
    sandbox.fault(mode="rateLimit", retryAfter=1800, count=1, pathPrefix=path)
    response = bob.post(f"/connections/{connection_id}/sync", htmx=True, target="sync-panel")
    assert sandbox.calls("PUT")[-1].status == 429
    panel = soup(response).select_one("#sync-panel")
    assert "next sync is allowed at" in panel.select_one(".cooldown").get_text()
    assert _disabled(panel)
    assert "Not currently syncing" in panel.select_one(".sync-state").get_text()
    delay = float(panel["hx-trigger"].split("delay:")[1].rstrip("s"))
    assert 25 * 60 < delay <= 30 * 60 + 1
    sandbox.clear()
    bob.post(f"/connections/{connection_id}/sync", htmx=True, target="sync-panel")
    assert sandbox.calls("PUT") == []


def test_viewer_has_no_sync_button_and_cannot_post_one(
    alice: Browser, carol: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = ready_connection(alice, sandbox)
    assert soup(carol.get(f"/connections/{connection_id}")).select_one(".sync-button") is None
    sandbox.clear()
    response = carol.post(f"/connections/{connection_id}/sync")
    assert response.status_code == 403
    assert sandbox.requests == []


# ---------------------------------------------------------------------------- delete


def test_delete_asks_for_confirmation_naming_accounts_and_transactions(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = ready_connection(alice, sandbox)
    sandbox.clear()
    page = soup(alice.get(f"/connections/{connection_id}/delete"))
    text = page.select_one("main").get_text(" ")
    assert "its accounts" in text and "its transactions" in text
    assert page.select_one("input[type=checkbox][name=confirm][value=delete]") is not None
    assert not sandbox.calls("DELETE")


def test_delete_without_the_confirmation_deletes_nothing(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = ready_connection(alice, sandbox)
    response = alice.post(f"/connections/{connection_id}/delete", {})
    assert response.status_code == 422
    assert "Tick the box" in text_of(response, "#confirm-delete-error")
    assert not sandbox.calls("DELETE")


def test_confirmed_delete_removes_the_connection_everywhere(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = ready_connection(alice, sandbox)
    response = alice.post(f"/connections/{connection_id}/delete", {"confirm": "delete"})
    assert response.status_code == 303 and response.headers["location"] == "/connections"
    (deleted,) = sandbox.calls("DELETE")
    assert deleted.path == f"/v1/connections/{connection_id}" and deleted.status == 204
    page = soup(alice.get("/connections"))
    assert page.select_one(f"[data-connection-id={connection_id}]") is None
    assert "were deleted" in page.select_one(".alert-success").get_text()
    assert sandbox.control("GET", f"/v1/connections/{connection_id}")[0] == 404
    assert alice.get(f"/connections/{connection_id}").status_code == 404


def test_members_cannot_delete(bob: Browser, sandbox: SandboxHandle) -> None:
    connection_id = ready_connection(bob, sandbox)
    assert soup(bob.get(f"/connections/{connection_id}")).select_one("a[href$='/delete']") is None
    assert bob.get(f"/connections/{connection_id}/delete").status_code == 403
    response = bob.post(f"/connections/{connection_id}/delete", {"confirm": "delete"})
    assert response.status_code == 403
    assert "permission" in text_of(response, "h1")
    assert not sandbox.calls("DELETE")


def test_cancel_after_a_connection_exists_keeps_it_resumable(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = start_listed(alice, "chase")
    page = soup(alice.get(f"/connections/{connection_id}/delegated-user"))
    later = [a for a in page.select("a") if a.get_text(strip=True) == "Finish later"]
    assert later and later[0]["href"] == "/connections?from=delegated_user"
    sandbox.clear()
    listing = soup(alice.get("/connections"))
    row = listing.select_one(f"[data-connection-id={connection_id}]")
    assert row.select_one(".badge").get_text(strip=True) == "Setup in progress"
    assert not sandbox.calls("DELETE")
