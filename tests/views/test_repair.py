"""The repair paths, each reproduced with the sandbox: a portal URL Waycore could not use
(`invalidConfig`) corrected into a new connection for the same bank, the old one deleted only on
confirmation; re-authentication (`reauthRequired`) with what to check and the bank-issued
details sent again; and `errored` watched with backoff until Waycore recovers while the page is
open."""

from __future__ import annotations

import json

import pytest

from tests.support import (
    Browser,
    SandboxHandle,
    finish,
    soup,
    start_listed,
    start_unlisted,
    text_of,
)

SENT = "https://invalid-config.scenario-bank.test/login"
CORRECTED = "https://invalid-config.scenario-bank.test/business/login"


def ended_in(browser: Browser, sandbox: SandboxHandle, institution: str) -> str:
    connection_id = start_listed(browser, institution)
    finish(browser, connection_id)
    sandbox.advance(31)
    return connection_id


def hx_location(response: object) -> dict[str, object]:
    location: dict[str, object] = json.loads(response.headers["hx-location"])  # type: ignore[attr-defined]
    return location


# ---------------------------------------------------------------------------- invalidConfig


def test_the_portal_url_that_was_sent_is_shown_and_a_corrected_one_offered(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    old = ended_in(alice, sandbox, "scenario_invalid_config")
    page = soup(alice.get(f"/connections/{old}/correct"))
    assert "Needs correction" in page.select_one("title").get_text()
    assert "Needs correction" in page.select_one("main h1").get_text()
    assert page.select_one("#sent-portal-url").get_text(strip=True) == SENT
    choices = [radio["value"] for radio in page.select("input[type=radio][name=portal_url]")]
    assert choices == [CORRECTED]  # the bank's other portal; not the one that failed
    assert page.select_one(".support .reference code") is not None


def test_a_corrected_connection_is_started_and_the_old_one_deleted_only_on_confirmation(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    old = ended_in(alice, sandbox, "scenario_invalid_config")
    sandbox.clear()
    response = alice.post(f"/connections/{old}/correct", {"portal_url": CORRECTED})
    assert response.status_code == 303
    (created,) = sandbox.calls("POST", "/v1/connections")
    assert created.body["institutionId"] == "scenario_invalid_config"
    assert created.body["portalUrl"] == CORRECTED
    location = response.headers["location"]
    assert location.startswith(f"/connections/{old}/delete?replaced_by=conn_")
    new = location.split("replaced_by=")[1]
    assert new != old
    assert sandbox.calls("DELETE") == []  # nothing removed yet

    confirm = soup(alice.get(location))
    assert "corrected connection is started" in confirm.select_one(".lede").get_text()
    keep = [a for a in confirm.select("a") if "Keep it" in a.get_text()]
    assert keep[0]["href"] == f"/connections/{new}"
    assert confirm.select_one("input[name=replaced_by]")["value"] == new

    unconfirmed = alice.post(f"/connections/{old}/delete", {"replaced_by": new})
    assert unconfirmed.status_code == 422 and sandbox.calls("DELETE") == []

    done = alice.post(f"/connections/{old}/delete", {"confirm": "delete", "replaced_by": new})
    assert done.headers["location"] == f"/connections/{new}"
    assert [r.path for r in sandbox.calls("DELETE")] == [f"/v1/connections/{old}"]
    assert alice.get(f"/connections/{old}").status_code == 404
    # the corrected connection goes on like any other, and activates
    assert alice.get(f"/connections/{new}").headers["location"] == (
        f"/connections/{new}/delegated-user"
    )
    finish(alice, new)
    sandbox.advance(36)
    assert text_of(alice.get(f"/connections/{new}"), ".page-head .badge") == "Connected"


def test_the_same_portal_again_is_refused_and_nothing_is_sent(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    old = ended_in(alice, sandbox, "scenario_invalid_config")
    sandbox.clear()
    response = alice.post(f"/connections/{old}/correct", {"portal_url": SENT})
    assert response.status_code == 422
    assert "other sign-in portals" in text_of(response, ".field-error")
    assert sandbox.calls("POST") == []


def test_a_member_corrects_and_goes_on_while_the_old_setup_is_kept(
    bob: Browser, sandbox: SandboxHandle
) -> None:
    old = ended_in(bob, sandbox, "scenario_invalid_config")
    response = bob.post(f"/connections/{old}/correct", {"portal_url": CORRECTED}, htmx=True)
    new_path = hx_location(response)["path"]
    assert str(new_path).endswith("/delegated-user") and old not in str(new_path)
    assert bob.get(f"/connections/{old}/activation").status_code == 200  # kept


def test_an_unlisted_bank_is_corrected_with_a_new_url_and_keeps_its_name(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    old = start_unlisted(alice, "Scenario Savings", "https://invalid-config.scenario.test/login")
    finish(alice, old)
    sandbox.advance(31)
    page = soup(alice.get(f"/connections/{old}/correct"))
    field = page.select_one("input#portal-url")
    assert field["value"] == "https://invalid-config.scenario.test/login"  # to edit, as sent

    refused = alice.post(f"/connections/{old}/correct", {"portal_url": "http://bank.example/x"})
    assert refused.status_code == 422 and "HTTPS" in text_of(refused, "#portal-url-error")
    same = alice.post(
        f"/connections/{old}/correct", {"portal_url": "https://invalid-config.scenario.test/login"}
    )
    assert same.status_code == 422 and "could not use" in text_of(same, "#portal-url-error")
    supported = alice.post(
        f"/connections/{old}/correct", {"portal_url": "https://secure.chase.com/web/auth"}
    )
    assert supported.status_code == 422
    assert "JPMorgan Chase" in soup(supported).select_one("#suggest-title").parent.get_text()

    sandbox.clear()
    corrected = "https://online.savings.example/Login?next=%2Fhome"
    response = alice.post(f"/connections/{old}/correct", {"portal_url": corrected})
    assert response.status_code == 303
    (created,) = sandbox.calls("POST", "/v1/connections")
    assert created.body["portalUrl"] == corrected  # exactly as typed
    assert "institutionId" not in created.body
    new = response.headers["location"].split("replaced_by=")[1]
    row = soup(alice.get("/connections")).select_one(f"[data-connection-id={new}]")
    assert "Scenario Savings" in row.get_text()  # the name typed, kept here only


def test_correcting_is_only_for_a_connection_that_needs_it(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    live = ended_in(alice, sandbox, "chase")
    assert alice.get(f"/connections/{live}/correct").headers["location"] == f"/connections/{live}"
    sandbox.clear()
    response = alice.post(f"/connections/{live}/correct", {"portal_url": CORRECTED})
    assert response.headers["location"] == f"/connections/{live}"
    assert sandbox.calls("POST") == []


def test_another_tenant_cannot_see_or_correct_it(
    alice: Browser, dana: Browser, sandbox: SandboxHandle
) -> None:
    old = ended_in(alice, sandbox, "scenario_invalid_config")
    sandbox.clear()
    assert dana.get(f"/connections/{old}/correct").status_code == 404
    assert dana.post(f"/connections/{old}/correct", {"portal_url": CORRECTED}).status_code == 404
    assert dana.get(f"/connections/{old}/reauth").status_code == 404
    assert sandbox.calls() == []


# ---------------------------------------------------------------------------- reauthRequired


def test_reauth_on_a_ready_connection_says_what_to_check_and_resends_details(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = ended_in(alice, sandbox, "scenario_reauth_required")
    page = soup(alice.get(f"/connections/{connection_id}"))
    check = page.select_one("#status-watch .reauth-check")
    assert "still exists, is active" in check.get_text()
    assert "one-time codes" in check.get_text()
    # A ready connection: Waycore no longer returns the delegated-user details
    assert check.select_one(".no-details") is not None
    action = page.select_one("#status-watch a.repair")
    assert action["href"] == f"/connections/{connection_id}/reauth"

    form = soup(alice.get(action["href"]))
    assert "Reauthentication required" in form.select_one("title").get_text()
    assert form.select_one("input[name=password][type=password]")["value"] == ""

    sandbox.clear()
    empty = alice.post(f"/connections/{connection_id}/reauth", {"bank_username": " "})
    assert empty.status_code == 422 and sandbox.calls("PUT") == []

    too_long = alice.post(
        f"/connections/{connection_id}/reauth",
        {"bank_username": "u" * 300, "password": "n3w-bank-pass"},
    )
    assert too_long.status_code == 422 and sandbox.calls("PUT") == []
    assert "under 256" in text_of(too_long, "#bank-username-error")
    # The password is asked for again, without being marked invalid for another field's error.
    assert "enter the password again" in text_of(too_long, "#bank-password-again").lower()
    assert soup(too_long).select_one("#bank-password[aria-invalid]") is None
    assert "n3w-bank-pass" not in too_long.text

    sent = alice.post(
        f"/connections/{connection_id}/reauth",
        {"bank_customer_id": "ACME-7", "password": "n3w-bank-pass"},
    )
    assert sent.headers["location"] == f"/connections/{connection_id}"
    (put,) = sandbox.calls("PUT", f"/v1/connections/{connection_id}/credentials")
    assert put.body == {"bankCustomerId": "ACME-7", "password": "[redacted]"}
    after = alice.get(f"/connections/{connection_id}")
    assert "Sent to Waycore" in after.text and "n3w-bank-pass" not in after.text
    assert soup(after).select_one("#status-watch")["hx-trigger"] == "load delay:10s"


def test_reauth_in_setup_shows_the_delegated_user_details_waycore_still_returns(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = start_listed(alice, "chase")
    finish(alice, connection_id)
    sandbox.set_status(connection_id, "reauthRequired", "setup")
    page = soup(alice.get(f"/connections/{connection_id}/activation"))
    assert "Reauthentication required" in page.select_one("main h1").get_text()
    details = page.select_one(".reauth-check .delegated-summary")
    fields = {
        row["data-field"]: row.select_one(".copy-value").get_text()
        for row in details.select(".copy-row")
    }
    assert fields["username"].startswith("waycore")
    assert fields["email"].endswith("@delegates.waycore.example")
    assert fields["phone-number"].startswith("+44")


def test_when_waycore_refuses_new_details_the_customer_is_sent_to_support(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = ended_in(alice, sandbox, "scenario_reauth_required")
    sandbox.fault(
        mode="error", status=409, count=1, pathPrefix=f"/v1/connections/{connection_id}/credentials"
    )
    response = alice.post(
        f"/connections/{connection_id}/reauth", {"bank_username": "ops", "password": "pw-123456"}
    )
    assert response.status_code == 200
    alert = soup(response).select_one(".alert-danger")
    assert alert.select_one(".alert-title").get_text() == "New sign-in details not accepted"
    assert "did not take new sign-in details" in alert.get_text()
    assert alert.select_one(".support .reference code").get_text().startswith("req_")
    assert "pw-123456" not in response.text
    assert "enter the password again" in text_of(response, "#bank-password-again").lower()
    assert soup(response).select_one("#bank-password[aria-invalid]") is None


# ---------------------------------------------------------------------------- errored, watched


def test_errored_activation_is_watched_with_backoff_and_the_page_moves_on_recovery(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = ended_in(alice, sandbox, "scenario_errored")
    page = soup(alice.get(f"/connections/{connection_id}/activation"))
    assert "hit an error" in page.select_one("main h1").get_text()
    assert "Activation error" in page.select_one("title").get_text()
    region = page.select_one("#activation-status")
    delays = []
    url = region["hx-get"]
    for _ in range(4):  # Waycore still retrying: each check waits longer
        assert "seen=errored" in url
        polled = alice.get(url, htmx=True, target="activation-status")
        region = soup(polled).select_one("#activation-status")
        delays.append(region["hx-trigger"])
        url = region["hx-get"]
    assert delays == ["load delay:20s", "load delay:40s", "load delay:80s", "load delay:160s"]

    sandbox.set_status(connection_id, "active", "ready")  # Waycore recovers
    moved = alice.get(url, htmx=True, target="activation-status")
    assert hx_location(moved) == {"path": f"/connections/{connection_id}", "target": "#main"}
    landed = alice.get(f"/connections/{connection_id}", htmx=True)
    assert text_of(landed, ".page-head .badge") == "Connected"
    assert soup(landed).select_one("table.accounts") is not None


def test_a_live_connection_that_errors_is_watched_and_recovers_in_place(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = ended_in(alice, sandbox, "chase")
    sandbox.set_status(connection_id, "errored")  # a sync failure on a ready connection
    page = soup(alice.get(f"/connections/{connection_id}"))
    assert "has an error" in page.select_one("main h1").get_text()
    watch = page.select_one("#status-watch")
    assert watch["hx-get"] == f"/connections/{connection_id}/status?seen=errored&n=1"
    assert watch["hx-trigger"] == "load delay:10s"
    assert "Waycore says" in watch.get_text()

    again = alice.get(watch["hx-get"], htmx=True, target="status-watch")
    assert soup(again).select_one("#status-watch")["hx-trigger"] == "load delay:20s"

    sandbox.set_status(connection_id, "active")
    recovered = alice.get(watch["hx-get"], htmx=True, target="status-watch")
    # the same page again (no new history entry), now showing the live connection
    assert hx_location(recovered) == {
        "path": f"/connections/{connection_id}",
        "target": "#main",
        "push": False,
    }
    page = soup(alice.get(f"/connections/{connection_id}", htmx=True))
    assert "working again" in page.get_text()
    assert page.select_one("#status-watch") is None
    assert page.select_one(".page-head .badge").get_text(strip=True) == "Connected"


def test_an_activation_that_errors_while_watched_reloads_the_screen_naming_the_error(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = start_listed(alice, "chase")
    finish(alice, connection_id)
    region = soup(alice.get(f"/connections/{connection_id}/activation")).select_one(
        "#activation-status"
    )
    sandbox.set_status(connection_id, "errored")
    polled = alice.get(region["hx-get"], htmx=True, target="activation-status")
    assert hx_location(polled) == {
        "path": f"/connections/{connection_id}/activation",
        "target": "#main",
        "push": False,
    }
    screen = soup(alice.get(f"/connections/{connection_id}/activation", htmx=True))
    assert "hit an error" in screen.select_one("h1").get_text()
    assert screen.select_one("title").get_text() == "Activation error"


@pytest.mark.parametrize("status", ["paused", "revoked"])
def test_terminal_states_are_not_watched(
    alice: Browser, sandbox: SandboxHandle, status: str
) -> None:
    connection_id = ended_in(alice, sandbox, "chase")
    sandbox.set_status(connection_id, status)
    page = soup(alice.get(f"/connections/{connection_id}"))
    assert page.select_one("[hx-trigger*='load delay']") is None
    assert page.select_one("#status-watch .support") is not None


def test_a_tampered_seen_status_is_ignored(alice: Browser, sandbox: SandboxHandle) -> None:
    connection_id = ended_in(alice, sandbox, "scenario_errored")
    url = f"/connections/{connection_id}/activation/status?seen=%3Cscript%3E&n=zz"
    polled = alice.get(url, htmx=True, target="activation-status")
    region = soup(polled).select_one("#activation-status")
    assert region["hx-trigger"] == "load delay:10s" and "script" not in polled.text
