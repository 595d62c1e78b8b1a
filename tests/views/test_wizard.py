"""The wizard steps on parsed HTML, and what each step sent to Waycore (the sandbox's record)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support import (
    Browser,
    SandboxHandle,
    connection_id_from,
    finish,
    soup,
    start_listed,
    start_unlisted,
    text_of,
)
from waycore.client import WaycoreClient

# ---------------------------------------------------------------------------- connection details


def test_new_connection_page_has_search_and_unlisted_form_but_no_entity_selector(
    alice: Browser,
) -> None:
    page = soup(alice.get("/connections/new"))
    search = page.select_one("input#institution-search")
    assert search is not None
    assert search["hx-get"] == "/connections/institutions"
    assert "delay:" in search["hx-trigger"]  # debounced search as you type
    assert page.select_one("details.unlisted input[name=bank_name]") is not None
    assert page.select_one("details.unlisted input[name=portal_url]") is not None
    html = str(page).lower()
    assert "entityid" not in html and "entity_id" not in html
    assert (
        page.select_one("[aria-current=step]").get_text(strip=True).endswith("Connection details")
    )


def test_search_fragment_shows_name_and_portal_domain_and_keeps_typed_text(
    alice: Browser,
) -> None:
    response = alice.get(
        "/connections/institutions?q=CHAS", htmx=True, target="institution-results"
    )
    assert response.status_code == 200
    assert "<html" not in response.text
    assert "HX-Request" in response.headers["vary"]
    fragment = soup(response)
    root = fragment.find(True)
    assert root["id"] == "institution-results"
    option = fragment.select_one("button.option[value=chase]")
    assert option is not None
    assert "JPMorgan Chase" in option.select_one(".option-name").get_text()
    assert option.select_one(".option-domain").get_text(strip=True) == "secure.chase.com"
    assert fragment.select_one("input[name=q]")["value"] == "CHAS"


def test_the_suggestions_region_is_shared_and_carries_no_token(
    alice: Browser, dana: Browser
) -> None:
    """Fetched by htmx, the region shows nothing of the viewer: the same query and answer give
    everyone the same bytes (no CSRF field: htmx sends the token as a header), a draft's search
    keeps its draft, and the list names the query as typed. A pick posted as htmx posts it,
    with the token as a header only, is accepted."""

    def search(browser: Browser, q: str, draft: str = "") -> Any:
        query = f"q={q}" + (f"&draft_id={draft}" if draft else "")
        response = browser.get(
            f"/connections/institutions?{query}", htmx=True, target="institution-results"
        )
        assert response.status_code == 200
        return response

    created = alice.post("/connections/drafts", {"institution_id": "chase"})
    draft_id = created.headers["location"].split("?")[0].rsplit("/", 1)[-1]
    ours, theirs = soup(search(alice, "bank", draft_id)), search(dana, "bank")
    assert search(alice, "bank").text == theirs.text
    options = [b["value"] for b in ours.select("button.option")]
    assert options and options == [b["value"] for b in soup(theirs).select("button.option")]
    assert soup(theirs).select_one("input[name=csrf_token]") is None
    assert ours.select_one("input[name=csrf_token]") is None
    assert ours.select_one("input[name=draft_id]")["value"] == draft_id
    assert soup(theirs).select_one("input[name=draft_id]") is None
    listbox = soup(search(dana, "BANK")).select_one("[role=listbox]")
    assert listbox["aria-label"] == "Banks matching BANK"
    assert [b["value"] for b in soup(search(dana, "chase")).select("button.option")] == ["chase"]
    form = soup(search(dana, "chase")).select_one("form")
    picked = dana.post(
        form["hx-post"], {"institution_id": "chase", "q": "chase"}, htmx=True, target="main"
    )
    assert picked.status_code == 200
    chosen = json.loads(picked.headers["HX-Location"])["path"]
    assert chosen.startswith("/connections/drafts/drf_")
    assert "JPMorgan Chase" in dana.get(chosen).text


def test_without_javascript_the_suggestions_form_carries_the_token(alice: Browser) -> None:
    page = soup(alice.get("/connections/new?q=chase"))
    form = page.select_one("#institution-results form")
    assert form.select_one("input[name=csrf_token]")["value"] == alice.csrf
    response = alice.post(form["action"], {"institution_id": "chase", "q": "chase"})
    assert response.status_code == 303


def test_an_exact_match_is_never_auto_selected(alice: Browser, sandbox: SandboxHandle) -> None:
    page = soup(alice.get("/connections/new?q=chase"))
    assert page.select("button.option")  # offered ...
    assert page.select_one("form input[name=mode][value=listed]") is None  # ... not chosen
    assert page.select_one("#institution-search")["value"] == "chase"
    assert not sandbox.calls("POST", "/v1/connections")


def test_search_without_matches_explains_what_to_do(alice: Browser) -> None:
    response = alice.get(
        "/connections/institutions?q=zzqqxx", htmx=True, target="institution-results"
    )
    assert "isn’t listed" in text_of(response, ".empty")


def test_choosing_a_bank_starts_a_draft_with_the_canonical_portal_by_default(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    response = alice.post("/connections/drafts", {"institution_id": "chase", "q": "chas"})
    assert response.status_code == 303
    assert response.headers["location"].startswith("/connections/drafts/drf_")
    page = soup(alice.get(response.headers["location"]))
    radios = page.select("input[type=radio][name=portal_url]")
    assert [r["value"] for r in radios][0] == "https://secure.chase.com/web/auth/dashboard"
    assert len(radios) > 1  # additionalPortalUrls are offered
    assert radios[0].has_attr("checked")
    assert page.select_one("#selected-bank-title").get_text(strip=True) == "JPMorgan Chase"
    assert not sandbox.calls("POST", "/v1/connections")


def test_htmx_choice_navigates_with_hx_location(alice: Browser) -> None:
    response = alice.post("/connections/drafts", {"institution_id": "chase"}, htmx=True)
    assert response.status_code == 200
    assert '"path": "/connections/drafts/drf_' in response.headers["hx-location"]


def test_continue_with_an_additional_portal_sends_it_with_the_institution(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = start_listed(alice, "chase", portal_url="https://access.jpmorgan.com/")
    (create,) = sandbox.calls("POST", "/v1/connections")
    assert create.body["institutionId"] == "chase"
    assert create.body["portalUrl"] == "https://access.jpmorgan.com/"
    assert set(create.body) == {"entityId", "institutionId", "portalUrl"}
    assert create.status == 201
    assert connection_id.startswith("conn_")


def test_continue_with_a_single_portal_bank_sends_the_institution_id_only(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    start_listed(alice, "apple_bank")
    (create,) = sandbox.calls("POST", "/v1/connections")
    assert set(create.body) == {"entityId", "institutionId"}


def test_a_portal_outside_the_institutions_list_is_refused(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    draft = alice.post("/connections/drafts", {"institution_id": "chase"}).headers["location"]
    response = alice.post(
        "/connections/continue",
        {"draft_id": draft.split("/")[-1], "mode": "listed", "portal_url": "https://evil.example"},
    )
    assert response.status_code == 422
    assert "Choose one of the sign-in portals" in text_of(response, "#portal-error")
    assert not sandbox.calls("POST", "/v1/connections")


def test_a_second_continue_returns_the_existing_connection_instead_of_a_duplicate(
    alice: Browser, bob: Browser, sandbox: SandboxHandle
) -> None:
    first = start_listed(alice, "customers_bank")
    second = start_listed(bob, "customers_bank")  # same tenant, another user and device
    assert first == second
    assert [c.status for c in sandbox.calls("POST", "/v1/connections")] == [201, 200]
    page = soup(bob.get(f"/connections/{second}/delegated-user"))
    assert "already had a connection" in page.select_one(".alert-success").get_text()


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Enter the web address"),
        ("http://online.examplebank.com/login", "must use HTTPS"),
        ("online.examplebank.com/login", "starting with https://"),
        ("https://", "must include your bank’s domain"),
        ("https://intranet/login", "must include your bank’s domain"),
        ("https://online.example bank.com", "must not contain spaces"),
        ("https://user:pw@online.examplebank.com", "must not contain a username or password"),
        ("https://[::1", "not a valid web address"),
    ],
)
def test_unlisted_bank_with_a_bad_portal_url_gets_a_clear_message(
    alice: Browser, sandbox: SandboxHandle, typed: str, message: str
) -> None:
    response = alice.post(
        "/connections/continue",
        {"mode": "unlisted", "bank_name": "Example Bank", "portal_url": typed},
        htmx=True,
    )
    assert response.status_code == 422
    assert message in text_of(response, "#portal-url-error")
    page = soup(response)
    assert page.select_one("#portal-url")["value"] == typed  # what was typed is kept
    assert page.select_one("#portal-url")["aria-invalid"] == "true"
    assert not sandbox.calls("POST", "/v1/connections")


def test_unlisted_bank_needs_a_name(alice: Browser) -> None:
    response = alice.post(
        "/connections/continue",
        {"mode": "unlisted", "bank_name": " ", "portal_url": "https://online.example.com"},
    )
    assert response.status_code == 422
    assert "Enter your bank’s name" in text_of(response, "#bank-name-error")


def test_unlisted_bank_sends_the_portal_url_exactly_as_typed_and_never_the_name(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    url = "https://online.fjordbank.example/corp/Login.aspx?lang=en&segment=business#start"
    connection_id = start_unlisted(alice, "Fjord Savings Bank", url)
    (create,) = sandbox.calls("POST", "/v1/connections")
    assert create.body["portalUrl"] == url
    assert set(create.body) == {"entityId", "portalUrl"}
    for recorded in sandbox.requests:
        assert "Fjord Savings Bank" not in str(recorded.body)
        assert "requestedInstitutionName" not in str(recorded.body)
    # the name is kept for our own UI
    page = soup(alice.get(f"/connections/{connection_id}/delegated-user"))
    assert "Fjord Savings Bank" in page.select_one("h1").get_text()


@pytest.mark.parametrize(
    "portal",
    [
        "https://secure.chase.com/web/auth/dashboard",  # a listed portal's own host
        "https://chase.com/login",  # another host of the same registrable domain
        "https://online.chase.com/business?x=1",
    ],
)
def test_an_unlisted_portal_on_a_listed_banks_domain_offers_that_bank_and_chooses_nothing(
    alice: Browser, sandbox: SandboxHandle, portal: str
) -> None:
    sandbox.clear()
    response = alice.post(
        "/connections/continue",
        {"mode": "unlisted", "bank_name": "My Chase Account", "portal_url": portal},
        htmx=True,
    )
    assert response.status_code == 200
    page = soup(response)
    offer = page.select_one("section.offer")
    assert offer is not None
    assert "This looks like JPMorgan Chase" in offer.select_one("h2").get_text()
    use = offer.select_one("button[name=institution_id]")
    assert use["value"] == "chase" and "Use JPMorgan Chase" in use.get_text()
    declined = offer.select_one("form input[name=not_listed][value=yes]").find_parent("form")
    assert declined.select_one("input[name=portal_url]")["value"] == portal
    assert declined.select_one("input[name=bank_name]")["value"] == "My Chase Account"
    # Nothing was chosen or created: no connection, no draft.
    assert not sandbox.calls("POST", "/v1/connections")
    assert soup(alice.get("/connections")).select("[data-draft-id]") == []
    # Only the portal's registrable domain was searched for: never the name the customer typed.
    searches = sandbox.calls("GET", "/v1/institutions")
    assert [dict(c.query).get("query") for c in searches] == ["chase.com"]
    for recorded in sandbox.requests:
        assert "My Chase" not in str(recorded.query) + str(recorded.body)


def test_using_the_offered_bank_selects_it_for_the_draft(alice: Browser) -> None:
    response = alice.post("/connections/drafts", {"institution_id": "chase"})
    page = soup(alice.get(response.headers["location"]))
    assert page.select_one("#selected-bank-title").get_text(strip=True) == "JPMorgan Chase"


def test_no_mine_is_different_sends_the_portal_url_exactly_as_typed(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    portal = "https://chase.com/Login.aspx?ref=ours&lang=en"
    response = alice.post(
        "/connections/continue",
        {
            "mode": "unlisted",
            "bank_name": "Chase Harbor Credit Union",
            "portal_url": portal,
            "not_listed": "yes",
        },
    )
    assert response.status_code == 303
    (create,) = sandbox.calls("POST", "/v1/connections")
    assert create.body["portalUrl"] == portal
    assert "institutionId" not in create.body
    assert "Chase Harbor" not in str(create.body)


def test_a_portal_on_another_domain_is_not_offered_a_listed_bank(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    # `chase.com.example` is not chase.com: its registrable domain is its own.
    response = alice.post(
        "/connections/continue",
        {"mode": "unlisted", "bank_name": "Lookalike", "portal_url": "https://chase.com.example/"},
    )
    assert response.status_code == 303
    (create,) = sandbox.calls("POST", "/v1/connections")
    assert create.body["portalUrl"] == "https://chase.com.example/"


def test_discarding_a_draft_before_a_connection_makes_no_waycore_call(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    location = alice.post("/connections/drafts", {"institution_id": "chase"}).headers["location"]
    draft_id = location.split("/")[-1]
    sandbox.clear()
    response = alice.post(f"/connections/drafts/{draft_id}/discard")
    assert response.status_code == 303
    assert sandbox.requests == []
    assert alice.get(f"/connections/drafts/{draft_id}").status_code == 404


def test_a_draft_resumes_on_another_device_of_the_same_tenant(alice: Browser, bob: Browser) -> None:
    location = alice.post("/connections/drafts", {"institution_id": "apple_bank"}).headers[
        "location"
    ]
    listing = soup(bob.get("/connections"))
    resume = listing.select_one("[data-draft-id] a.row-action")
    assert resume["href"] == location
    page = soup(bob.get(resume["href"]))
    assert page.select_one("#selected-bank-title").get_text(strip=True) == "Apple Bank"


# ---------------------------------------------------------------------------- delegated user


def test_delegated_user_step_renders_the_setup_instructions_with_copy_buttons(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = start_listed(alice, "customers_bank")
    (create,) = sandbox.calls("POST", "/v1/connections")
    _, connection = sandbox.control("GET", f"/v1/connections/{connection_id}")
    instructions = connection["setup"]["instructions"]
    page = soup(alice.get(f"/connections/{connection_id}/delegated-user"))
    values = {
        row["data-field"]: row.select_one(".copy-value").get_text(strip=True)
        for row in page.select(".copy-row")
    }
    assert values == {
        "first-name": instructions["firstName"],
        "last-name": instructions["lastName"],
        "address": instructions["address"],
        "username": instructions["username"],
        "phone-number": instructions["phoneNumber"],
        "email": instructions["email"],
    }
    for row in page.select(".copy-row"):
        button = row.select_one("button.copy")
        assert button["data-copy-target"] == row.select_one(".copy-value")["id"]
        assert button["type"] == "button"
    text = page.get_text(" ")
    assert "read-only" in text
    assert "SMS, phone call or email one-time codes" in text
    assert "Authenticator apps" in text
    assert "hardware tokens are not supported" in text
    # Waycore supplied an exact guide for this institution: that one, nothing guessed.
    assert page.select_one("a.guide-link")["href"] == (
        "https://docs.waycore.com/user-setup/customers_bank"
    )
    assert page.select_one("[aria-current=step]").get_text(strip=True).endswith("Delegated user")


def test_delegated_user_guide_falls_back_to_the_general_page(alice: Browser) -> None:
    connection_id = start_listed(alice, "chase")
    page = soup(alice.get(f"/connections/{connection_id}/delegated-user"))
    assert page.select_one("a.guide-link")["href"] == "https://docs.waycore.com/user-setup"


def test_unlisted_bank_links_the_general_guide(alice: Browser) -> None:
    connection_id = start_unlisted(alice, "Tiny Bank", "https://ebank.tinybank.example/login")
    page = soup(alice.get(f"/connections/{connection_id}/delegated-user"))
    assert page.select_one("a.guide-link")["href"] == "https://docs.waycore.com/user-setup"


# ---------------------------------------------------------------------------- finish setup


def test_finish_step_has_optional_fields_and_required_confirmations(alice: Browser) -> None:
    connection_id = start_listed(alice, "chase")
    page = soup(alice.get(f"/connections/{connection_id}/finish"))
    form = page.select_one(f"form[action='/connections/{connection_id}/finish']")
    assert {i["name"] for i in form.select("input:not([type=hidden])")} == {
        "bank_username",
        "bank_customer_id",
        "password",
        "confirm_active",
        "accept_terms",
    }
    assert form.select_one("input[name=password]")["type"] == "password"
    terms = form.select_one("label[for=accept-terms] a")
    assert terms["href"] == "https://docs.waycore.com/legal/terms-of-use"


def test_finish_requires_both_confirmations_and_calls_nothing_without_them(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = start_listed(alice, "chase")
    sandbox.clear()
    response = alice.post(
        f"/connections/{connection_id}/finish", {"bank_username": "ops-user"}, htmx=True
    )
    assert response.status_code == 422
    page = soup(response)
    assert page.select_one("#confirm-active-error") is not None
    assert page.select_one("#accept-terms-error") is not None
    assert page.select_one("#bank-username")["value"] == "ops-user"
    assert not sandbox.calls("PUT")


def test_finish_sends_only_the_populated_fields_then_completes(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = start_listed(alice, "chase")
    sandbox.clear()
    finish(alice, connection_id, bank_customer_id="CUST-7781", password="")
    puts = sandbox.calls("PUT")
    assert [c.path.rsplit("/", 1)[-1] for c in puts] == ["credentials", "setupCompletion"]
    assert puts[0].body == {"bankCustomerId": "CUST-7781"}


def test_a_second_finish_after_completion_goes_to_activation(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = start_listed(alice, "chase")
    finish(alice, connection_id)
    sandbox.clear()
    response = finish(alice, connection_id)
    assert response.headers["location"] == f"/connections/{connection_id}/activation"
    assert not sandbox.calls("PUT")


def test_a_race_lost_to_another_tab_still_reaches_activation(
    alice: Browser, sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other tab completes setup between this tab's check and its own call (409)."""
    connection_id = start_listed(alice, "chase")
    real = WaycoreClient.complete_setup

    async def other_tab_first(self: WaycoreClient, cid: str) -> object:
        await real(self, cid)  # the other tab's completion
        return await real(self, cid)  # ours: 409 invalid_state

    monkeypatch.setattr(WaycoreClient, "complete_setup", other_tab_first)
    response = finish(alice, connection_id)
    assert [c.status for c in sandbox.calls("PUT")] == [200, 409]
    assert response.headers["location"] == f"/connections/{connection_id}/activation"


def test_a_conflict_while_still_in_setup_is_shown_calmly(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = start_listed(alice, "chase")
    path = f"/v1/connections/{connection_id}/setupCompletion"
    sandbox.fault(mode="error", status=409, count=1, pathPrefix=path)
    response = finish(alice, connection_id)
    assert response.status_code == 200
    assert "try again" in text_of(response, ".alert-danger")
    assert soup(response).select_one("#confirm-active") is not None  # still on finish setup


def test_a_malformed_institution_id_is_a_validation_error(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    for bad in ("a/b", "x?y", ".."):
        response = alice.post("/connections/drafts", {"institution_id": bad})
        assert response.status_code == 422
        assert "Choose your bank from the list" in response.text
    assert not sandbox.calls("GET", "/v1/institutions/")


def test_admins_can_remove_a_setup_members_cannot(alice: Browser, bob: Browser) -> None:
    connection_id = start_listed(alice, "chase")
    for browser, shown in ((alice, True), (bob, False)):
        page = soup(browser.get(f"/connections/{connection_id}/delegated-user"))
        link = page.select_one(".remove-setup a")
        assert (link is not None) is shown
        if link is not None:
            assert link["href"] == f"/connections/{connection_id}/delete"


# ---------------------------------------------------------------------------- activation


def test_activation_polls_every_5_seconds_then_moves_to_the_connection(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    location = alice.post("/connections/drafts", {"institution_id": "chase"}).headers["location"]
    draft_id = location.split("/")[-1]
    connection_id = connection_id_from(
        alice.post("/connections/continue", {"draft_id": draft_id, "mode": "listed"})
    )
    finish(alice, connection_id)
    page = soup(alice.get(f"/connections/{connection_id}/activation"))
    assert "Waycore is finalizing activation and will start the first sync automatically." in (
        page.select_one("main").get_text(" ")
    )
    status = page.select_one("#activation-status")
    poll_url = f"/connections/{connection_id}/activation/status?seen=pendingActivation"
    assert status["hx-get"] == poll_url
    assert status["hx-swap"] == "outerHTML" and status["hx-target"] == "this"
    first_delay = float(status["hx-trigger"].split("delay:")[1].rstrip("s"))
    assert 0 < first_delay <= 5  # the first poll is jittered, never later than 5 s

    polled = alice.get(poll_url, htmx=True, target="activation-status")
    fragment = soup(polled)
    assert fragment.find(True)["id"] == "activation-status"
    assert fragment.find(True)["hx-trigger"] == "load delay:5s"
    assert fragment.find(True)["hx-get"] == poll_url
    assert text_of(polled, ".badge") == "Activating"

    sandbox.advance(31)
    done = alice.get(poll_url, htmx=True, target="activation-status")
    assert done.headers["hx-location"] == (
        f'{{"path": "/connections/{connection_id}", "target": "#main"}}'
    )
    assert alice.get(f"/connections/drafts/{draft_id}").status_code == 404  # draft cleared


@pytest.mark.parametrize(
    ("institution_id", "label", "kind", "home", "heading"),
    [
        (
            "scenario_reauth_required",
            "Reauthentication required",
            "recoverable",
            "connection",
            "Reauthentication required for",
        ),
        ("scenario_errored", "Error", "recoverable", "activation", "hit an error"),
        (
            "scenario_invalid_config",
            "Needs correction",
            "recoverable",
            "activation",
            "needs correction",
        ),
        ("scenario_paused", "Paused", "terminal", "connection", "is paused"),
        ("scenario_revoked", "Revoked", "terminal", "connection", "was revoked"),
    ],
)
def test_activation_outcomes_say_what_happened_and_what_to_do(
    alice: Browser,
    sandbox: SandboxHandle,
    institution_id: str,
    label: str,
    kind: str,
    home: str,
    heading: str,
) -> None:
    """A setup-stage outcome stays on the activation screen; a ready or terminal one belongs on
    the connection page (the journey table). Either way the screen names the state in its
    heading and title, says what to do, and gives support a reference; a recoverable state keeps
    being watched with backoff, a terminal one is not."""
    connection_id = start_listed(alice, institution_id)
    finish(alice, connection_id)
    sandbox.advance(31)
    response = alice.get(
        f"/connections/{connection_id}/activation/status", htmx=True, target="activation-status"
    )
    if home == "connection":
        location = json.loads(response.headers["hx-location"])
        assert location == {"path": f"/connections/{connection_id}", "target": "#main"}
        response = alice.get(location["path"])
        region = soup(response).select_one("#status-watch")
    else:
        assert soup(response).select_one("#activation-status") is not None, response.text
        response = alice.get(f"/connections/{connection_id}/activation")
        region = soup(response).select_one("#activation-status")
        assert f"activation-{kind}" in region["class"]
    page = soup(response)
    assert heading in page.select_one("main h1").get_text()
    assert label.lower() in page.select_one("title").get_text().lower()
    assert "Activating" not in page.select_one("main h1").get_text()
    assert "finalizing activation" not in page.select_one(".lede").get_text()
    assert page.select_one("main .badge").get_text(strip=True) == label
    assert region.select_one(".guidance").get_text(strip=True)
    support = region.select_one(".support")
    assert connection_id in support.get_text() and f"Status {page_status(region)}" in (
        support.get_text()
    )
    if kind == "recoverable":
        assert region["hx-trigger"] == "load delay:10s"  # twice the poll interval, then more
        assert "n=1" in region["hx-get"]
    else:
        assert not region.has_attr("hx-trigger")  # nothing more will happen by waiting
    if institution_id == "scenario_invalid_config":
        assert "https://invalid-config.scenario-bank.test/login" in region.get_text()
        repair = region.select_one("a.repair")
        assert repair["href"] == f"/connections/{connection_id}/correct"
    if institution_id == "scenario_reauth_required":
        assert region.select_one(".reauth-check") is not None
        assert region.select_one("a.repair")["href"] == f"/connections/{connection_id}/reauth"
    if institution_id == "scenario_revoked":
        assert region.select_one("a.button[href='/connections/new']") is not None


def page_status(region: Any) -> str:
    return str(region["data-status"])


def test_unlisted_scenario_portal_ends_in_its_status(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = start_unlisted(alice, "Scenario Bank", "https://revoked.scenario.test/x")
    finish(alice, connection_id)
    sandbox.advance(31)
    polled = alice.get(f"/connections/{connection_id}/activation/status", htmx=True)
    page = soup(alice.get(json.loads(polled.headers["hx-location"])["path"]))
    assert page.select_one(".page-head .badge").get_text(strip=True) == "Revoked"


def test_slow_activation_keeps_polling(alice: Browser, sandbox: SandboxHandle) -> None:
    connection_id = start_listed(alice, "scenario_slow")
    finish(alice, connection_id)
    sandbox.advance(120)
    response = alice.get(
        f"/connections/{connection_id}/activation/status", htmx=True, target="activation-status"
    )
    assert soup(response).select_one("#activation-status")["hx-trigger"] == "load delay:5s"


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/activation/status", "activation-status"),
        ("/delegated-user", "delegated-details"),
    ],
)
def test_a_failed_poll_keeps_polling_instead_of_breaking_the_page(
    alice: Browser, sandbox: SandboxHandle, path: str, target: str
) -> None:
    connection_id = start_listed(alice, "chase")
    if path.startswith("/activation"):
        finish(alice, connection_id)
    url = f"/connections/{connection_id}{path}"
    # A status check is not retried in place: the region's next poll is the retry.
    sandbox.fault(mode="error", status=503, count=1, pathPrefix=f"/v1/connections/{connection_id}")
    response = alice.get(url, htmx=True, target=target)
    assert response.status_code == 200
    element = soup(response).find(True)
    assert element["id"] == target
    assert element["hx-get"] == url and element["hx-trigger"] == "load delay:10s"
    assert element.select_one(".reference code").get_text().startswith("req_")
    # Waycore is back: the next poll answers the normal region
    recovered = soup(alice.get(url, htmx=True, target=target)).find(True)
    assert recovered["id"] == target and not recovered.has_attr("data-retry")


def test_a_failed_navigation_still_shows_the_error_page(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = start_listed(alice, "chase")
    sandbox.fault(mode="error", status=503, count=3, pathPrefix=f"/v1/connections/{connection_id}")
    response = alice.get(f"/connections/{connection_id}/delegated-user", htmx=True)
    assert response.status_code == 502
    assert text_of(response, "h1") == "Temporarily unavailable"


def test_choosing_a_different_bank_updates_the_same_draft(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    location = alice.post("/connections/drafts", {"institution_id": "chase", "q": "cha"}).headers[
        "location"
    ]
    draft_id = location.split("/")[-1].split("?")[0]
    page = soup(alice.get(location))
    change = [a for a in page.select("a") if a.get_text(strip=True) == "Choose a different bank"][0]
    assert change["href"] == f"/connections/drafts/{draft_id}?change=1&q=cha"
    search = soup(alice.get(change["href"]))
    assert search.select_one("#institution-search")["value"] == "cha"
    assert json.loads(search.select_one("#institution-search")["hx-vals"]) == {"draft_id": draft_id}
    fragment = soup(
        alice.get(
            f"/connections/institutions?q=apple&draft_id={draft_id}",
            htmx=True,
            target="institution-results",
        )
    )
    assert fragment.select_one("input[name=draft_id]")["value"] == draft_id
    response = alice.post(
        "/connections/drafts", {"institution_id": "apple_bank", "draft_id": draft_id}
    )
    assert response.headers["location"] == f"/connections/drafts/{draft_id}"
    listing = soup(alice.get("/connections"))
    (row,) = listing.select("[data-draft-id]")
    assert "Apple Bank" in row.get_text()


def test_another_tenants_draft_cannot_be_changed_through_the_search(
    alice: Browser, dana: Browser
) -> None:
    location = alice.post("/connections/drafts", {"institution_id": "chase"}).headers["location"]
    draft_id = location.split("/")[-1]
    response = dana.get(
        f"/connections/institutions?q=apple&draft_id={draft_id}", htmx=True, target="x"
    )
    assert response.status_code == 404
    response = dana.post(
        "/connections/drafts", {"institution_id": "apple_bank", "draft_id": draft_id}
    )
    assert response.status_code == 404
    assert "JPMorgan Chase" in soup(alice.get(location)).select_one("#selected-bank-title").text
