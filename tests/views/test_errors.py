"""The guide's error table: each Waycore status becomes a user-safe message in the step the user
is on, with a support reference; the raw error goes to the server log."""

from __future__ import annotations

import logging

import pytest

from tests.support import Browser, SandboxHandle, soup


@pytest.mark.parametrize(
    ("status", "title", "says"),
    [
        (400, "Please check the details", "were not accepted"),
        (401, "Bank connections are unavailable", "not set up correctly on our side"),
        (403, "Bank connections are unavailable", "not set up correctly on our side"),
        (404, "Not available", "not available any more"),
        (409, "Please try again shortly", "busy or has just changed state"),
        (429, "Please wait before retrying", "wait a little"),
        (500, "Temporarily unavailable", "not responding right now"),
        (503, "Temporarily unavailable", "not responding right now"),
    ],
)
def test_each_waycore_error_is_shown_in_the_step_with_a_reference(
    alice: Browser,
    sandbox: SandboxHandle,
    caplog: pytest.LogCaptureFixture,
    status: int,
    title: str,
    says: str,
) -> None:
    draft = alice.post("/connections/drafts", {"institution_id": "chase"}).headers["location"]
    alice.get("/connections")  # the entity is resolved in the background meanwhile
    sandbox.fault(
        mode="error", status=status, count=3, retryAfter=600, pathPrefix="/v1/connections"
    )
    caplog.set_level(logging.WARNING, logger="app.waycore")
    response = alice.post(
        "/connections/continue", {"draft_id": draft.split("/")[-1], "mode": "listed"}, htmx=True
    )
    page = soup(response)
    alert = page.select_one(".alert-danger")
    assert alert is not None, response.text
    assert alert.select_one(".alert-title").get_text(strip=True) == title
    assert says in alert.get_text()
    failed = [c for c in sandbox.calls("POST", "/v1/connections") if c.status == status]
    assert failed
    reference = alert.select_one(".reference code").get_text(strip=True)
    assert reference == failed[-1].request_id
    # still on connection details, with the bank still selected and the draft kept
    assert page.select_one("#selected-bank-title").get_text(strip=True) == "JPMorgan Chase"
    assert (
        page.select_one("[aria-current=step]").get_text(strip=True).endswith("Connection details")
    )
    text = alert.get_text().lower()
    assert "api key" not in text and "token" not in text
    # the raw error is in the developer log under the same reference
    assert reference in caplog.text and f"-> {status}" in caplog.text


def test_search_outage_is_reported_in_the_results_region(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    sandbox.fault(mode="error", status=503, count=3, pathPrefix="/v1/institutions")
    response = alice.get(
        "/connections/institutions?q=chase", htmx=True, target="institution-results"
    )
    region = soup(response).select_one("#institution-results")
    assert "Search is unavailable right now" in region.get_text()
    assert region.select_one("code").get_text().startswith("req_")


def test_an_unexpected_error_shows_a_reference_and_no_trace(
    alice: Browser, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from store import Store

    async def broken(self: Store, tenant_id: str, limit: int) -> list[object]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Store, "open_drafts", broken)
    # Answer like a served app does, instead of re-raising into the test.
    monkeypatch.setattr(alice.client._transport, "raise_server_exceptions", False)
    response = alice.get("/connections")
    assert response.status_code == 500
    page = soup(response)
    assert page.select_one("h1").get_text(strip=True) == "Something went wrong"
    reference = page.select_one(".reference code").get_text(strip=True)
    assert "disk on fire" not in response.text and "Traceback" not in response.text
    assert reference in caplog.text and "disk on fire" in caplog.text


def test_unknown_paths_get_the_not_found_page(alice: Browser) -> None:
    response = alice.get("/nowhere")
    assert response.status_code == 404
    assert soup(response).select_one("h1").get_text(strip=True) == "Not found"
    fragment = alice.get("/nowhere", htmx=True)
    assert fragment.status_code == 404 and "<html" not in fragment.text
