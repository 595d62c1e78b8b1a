"""The whole journey in a real browser: sign in, choose a bank (listed, by keyboard, or
unlisted, by portal URL), create the delegated user, finish setup, wait for activation, read the
connection, page its transactions and (for the listed bank) delete it.

It runs `python server.py` over the embedded Waycore sandbox (activation after 3 s, the guide's
5 s polling) in Debian's headless Chromium, and checks what only a browser shows: htmx swaps and
pushed URLs, debounced search, keyboard choice, copy buttons, Back and Reload, polling that
moves the page by itself, and the out-of-band append of transaction rows. Nothing may log a
JavaScript error, violate the CSP, or request anything outside the app's own origin.
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import PageLog

pytestmark = pytest.mark.e2e

CONNECTION_URL = r"/connections/(conn_[A-Za-z0-9]+)"
ACTIVATION_COPY = "Waycore is finalizing activation and will start the first sync automatically."
COPY_FIELDS = ("first-name", "last-name", "address", "username", "phone-number", "email")
CHASE_PORTALS = (
    "https://secure.chase.com/web/auth/dashboard",
    "https://www.chase.com/business/banking",
    "https://access.jpmorgan.com/",
)
UNLISTED_NAME = "Harbor Point Community Bank"
UNLISTED_PORTAL = "https://online.harborpoint-bank.example/login?branch=042&lang=en"
#: What a validation answer (422, swapped in on purpose so its message shows) logs in Chromium:
#: the network error line and htmx's own `htmx:responseError`. Nothing else is tolerated.
EXPECTED_422_CONSOLE = re.compile(
    r"^(Failed to load resource: the server responded with a status of 422 "
    r"|Response Status Error Code 422 from /connections/)"
)


def _url(pattern: str) -> re.Pattern[str]:
    return re.compile(r"^https?://[^/]+" + pattern + r"$")


#: Recorded right after each Back or Forward (once the browser and the app have handled the
#: popstate): which URL, which step's heading, and whether that step is on screen.
HISTORY_FRAMES = """
window.addEventListener("popstate", function () {
  setTimeout(function () {
    var main = document.getElementById("main");
    var heading = main && main.querySelector("h1");
    window.__e2eHistoryFrame(JSON.stringify({
      url: location.pathname,
      heading: heading ? heading.textContent.trim() : "",
      visible: main ? main.checkVisibility({visibilityProperty: true}) : false
    }));
  }, 0);
});
"""


def _record_history_frames(page: Page) -> list[dict[str, object]]:
    frames: list[dict[str, object]] = []

    def record(frame: str) -> None:
        frames.append(json.loads(frame))

    page.context.expose_function("__e2eHistoryFrame", record)
    page.context.add_init_script(HISTORY_FRAMES)
    return frames


def _assert_no_stale_step(frames: list[dict[str, object]]) -> None:
    """Under a URL reached by Back or Forward, the step being left is never on screen."""
    assert frames, "no Back or Forward was recorded"
    shown = [f for f in frames if f["visible"]]
    assert not shown, f"a step showed under another step's URL: {shown}"


def _sign_in_as_alice(page: Page) -> None:
    page.goto("/signin")
    page.get_by_role("button", name=re.compile("Alice Admin")).click()
    expect(page).to_have_url(_url("/connections"))
    expect(page.locator(".host-user .who")).to_contain_text("Alice Admin")


def _open_new_connection(page: Page) -> None:
    page.get_by_role("link", name="Connect a bank").click()
    expect(page).to_have_url(_url("/connections/new"))
    expect(page.locator("#main h1")).to_have_text("Connect your bank")


def _choose_chase_by_keyboard(page: Page) -> None:
    search = page.locator("#institution-search")
    expect(search).to_have_attribute("aria-expanded", "false")
    search.click()
    # Real keystrokes, slower than nothing but inside htmx's 300 ms debounce window.
    search.press_sequentially("chase", delay=90)
    options = page.locator("#institution-results .option")
    expect(options.filter(has_text="JPMorgan Chase")).to_have_count(1)
    expect(search).to_be_focused()
    expect(search).to_have_value("chase")
    expect(search).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("ArrowDown")
    names = [text.strip() for text in options.locator(".option-name").all_inner_texts()]
    for _ in range(names.index("JPMorgan Chase")):
        page.keyboard.press("ArrowDown")
    focused = page.locator("#institution-results .option:focus")
    expect(focused).to_contain_text("JPMorgan Chase")
    expect(focused).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Enter")


def _details_listed(page: Page) -> None:
    expect(page).to_have_url(_url(r"/connections/drafts/[A-Za-z0-9_-]+\?q=chase"))
    expect(page.locator("#selected-bank-title")).to_have_text("JPMorgan Chase")
    radios = page.locator(".portal-choice input[type=radio][name=portal_url]")
    expect(radios).to_have_count(len(CHASE_PORTALS))
    assert [radios.nth(i).get_attribute("value") for i in range(3)] == list(CHASE_PORTALS)
    expect(radios.nth(0)).to_be_checked()  # the canonical portal, preselected
    expect(radios.nth(1)).not_to_be_checked()
    expect(page.locator(".portal-choice")).to_contain_text("(default)")
    page.get_by_text("www.chase.com", exact=True).click()
    expect(radios.nth(1)).to_be_checked()
    expect(radios.nth(0)).not_to_be_checked()
    page.get_by_role("button", name="Continue").click()


def _details_unlisted(page: Page) -> None:
    page.locator("summary", has_text="My bank isn").click()
    page.get_by_label("Bank name", exact=True).fill(UNLISTED_NAME)
    page.get_by_label("Bank portal URL").fill("http://online.harborpoint-bank.example/login")
    page.locator("details.unlisted").get_by_role("button", name="Continue").click()
    error = page.locator("#portal-url-error")
    expect(error).to_have_text("The portal URL must use HTTPS: it should start with https://")
    expect(page).to_have_url(_url("/connections/new"))
    # The answer kept what was typed and left the section open for the correction.
    expect(page.locator("details.unlisted")).to_have_attribute("open", "")
    expect(page.get_by_label("Bank name", exact=True)).to_have_value(UNLISTED_NAME)
    expect(page.get_by_label("Bank portal URL")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Bank portal URL").fill(UNLISTED_PORTAL)
    page.locator("details.unlisted").get_by_role("button", name="Continue").click()


def _delegated_user(page: Page, *, listed: bool) -> str:
    expect(page).to_have_url(_url(CONNECTION_URL + "/delegated-user"))
    match = re.search(CONNECTION_URL, page.url)
    assert match
    connection_id = match.group(1)
    heading = page.locator("#main h1")
    expect(heading).to_contain_text("Create a delegated user at")
    expect(heading).to_contain_text("JPMorgan Chase" if listed else UNLISTED_NAME)
    # After a swapped-in step, keyboard and screen-reader users start at its heading.
    expect(heading).to_be_focused()
    expect(page.locator("[aria-current=step]")).to_contain_text("Delegated user")
    rows = page.locator("#delegated-details .copy-row")
    expect(rows).to_have_count(len(COPY_FIELDS))
    assert [rows.nth(i).get_attribute("data-field") for i in range(6)] == list(COPY_FIELDS)
    for name in COPY_FIELDS:
        assert page.locator(f"#value-{name}").inner_text().strip(), f"{name} is blank"
    portal = page.locator(".callout .portal-domain")
    expect(portal).to_have_text("www.chase.com" if listed else "online.harborpoint-bank.example")

    username = page.locator("#value-username").inner_text().strip()
    button = page.get_by_role("button", name="Copy username")
    button.click()
    expect(button).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == username
    expect(button).to_have_text("Copy", timeout=5_000)

    guide = page.locator("a.guide-link")
    expect(guide).to_have_attribute("href", "https://docs.waycore.com/user-setup")
    expect(guide).to_have_attribute("target", "_blank")
    expect(guide).to_have_attribute("rel", re.compile("noopener"))

    # Reload: the pushed URL serves the same step as a full page.
    page.reload()
    expect(page).to_have_url(_url(f"/connections/{connection_id}/delegated-user"))
    expect(page.locator("#main h1")).to_contain_text("Create a delegated user at")
    expect(rows).to_have_count(len(COPY_FIELDS))
    assert page.locator("#value-username").inner_text().strip() == username
    if listed:
        # Back lands on the step the URL names (the details, now settled), not forward again.
        page.go_back()
        expect(page).to_have_url(_url(r"/connections/drafts/[A-Za-z0-9_-]+\?q=chase"))
        expect(page.locator("#main h1")).to_have_text("Connect your bank")
        expect(page.locator("[aria-current=step]")).to_contain_text("Connection details")
        expect(page.locator(".selected-bank.created h2")).to_have_text("JPMorgan Chase")
        page.go_forward()
        expect(page).to_have_url(_url(f"/connections/{connection_id}/delegated-user"))
        expect(rows).to_have_count(len(COPY_FIELDS))
    return connection_id


def _finish_setup(page: Page, connection_id: str, *, listed: bool) -> None:
    page.get_by_role("link", name=re.compile("created the delegated user")).click()
    expect(page).to_have_url(_url(f"/connections/{connection_id}/finish"))
    expect(page.locator("#main h1")).to_have_text("Finish setup")
    expect(page.locator("#main h1")).to_be_focused()

    # Back and Forward: each history entry renders its own step again.
    page.go_back()
    expect(page).to_have_url(_url(f"/connections/{connection_id}/delegated-user"))
    expect(page.locator("#main h1")).to_contain_text("Create a delegated user at")
    expect(page.locator("#delegated-details .copy-row")).to_have_count(len(COPY_FIELDS))
    page.go_forward()
    expect(page).to_have_url(_url(f"/connections/{connection_id}/finish"))
    expect(page.locator("#main h1")).to_have_text("Finish setup")

    password = page.get_by_label("Password")
    # A bank-issued secret passed on once: the browser is not invited to generate or save it.
    expect(password).to_have_attribute("autocomplete", "off")
    # A password manager or extension styles the fields; htmx must not carry those inline styles
    # over to the swapped-in form (the CSP refuses inline styles: a console error).
    page.evaluate(
        """() => ["bank-password", "bank-username"].forEach(id => {
            document.getElementById(id).style.backgroundImage = "none"; })"""
    )
    password.fill("correct horse battery staple")
    page.get_by_role("button", name="Finish setup").click()
    # The failed submit is announced: an error summary, focused, linking to each field.
    summary = page.locator(".error-summary[role=alert]")
    expect(summary).to_be_focused()
    expect(summary.locator("a")).to_have_count(2)
    expect(page.locator("#confirm-active-error")).to_have_text(
        "Confirm that the delegated user is active in your bank portal."
    )
    expect(page.locator("#accept-terms-error")).to_have_text(
        "Accept the Waycore terms of use to continue."
    )
    # The optional password is never marked invalid because other fields were.
    expect(page.locator("#bank-password-again")).to_have_text(
        "For your security, enter the password again."
    )
    expect(password).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("#bank-password-error")).to_have_count(0)
    expect(password).to_have_value("")
    assert page.locator("#bank-password").get_attribute("style") is None
    assert page.locator("#bank-username").get_attribute("style") is None
    expect(page).to_have_url(_url(f"/connections/{connection_id}/finish"))
    summary.locator("a", has_text="Confirm that the delegated user").click()
    expect(page.get_by_label("The delegated user is created and active")).to_be_focused()

    page.get_by_label("Customer ID").fill("ACME-0042")
    password.fill("correct horse battery staple")
    page.get_by_label("The delegated user is created and active").check()
    page.get_by_label("I accept the").check()
    page.get_by_role("button", name="Finish setup").click()


def _activation_then_detail(page: Page, connection_id: str) -> None:
    expect(page).to_have_url(_url(f"/connections/{connection_id}/activation"))
    expect(page.locator(".lede")).to_have_text(ACTIVATION_COPY)
    expect(page.locator("#activation-status")).to_contain_text("Checking every 5 seconds")
    # Nobody clicks: the 5 s poll notices the activation and moves the page by itself.
    expect(page).to_have_url(_url(f"/connections/{connection_id}"), timeout=30_000)
    expect(page.locator(".page-head .badge")).to_have_text("Connected")
    expect(page.locator(".alert-success")).to_contain_text("Your bank is connected.")
    expect(page.locator("table.accounts tbody tr[data-account-id]").first).to_be_visible()
    assert page.locator("table.accounts tbody tr[data-account-id]").count() >= 2


def _load_more_transactions(page: Page) -> None:
    # The first sync runs for a few seconds after activation; once the panel reports it done it
    # also refreshes the transactions section, so wait for that before paging.
    expect(page.locator("#sync-panel .sync-state")).to_contain_text(
        "Not currently syncing", timeout=15_000
    )
    page.wait_for_load_state("networkidle")
    rows = page.locator("#transaction-rows tr[data-transaction-id]")
    expect(rows.first).to_be_visible()
    before = rows.count()
    assert before == 25
    first_ids = rows.evaluate_all("rows => rows.map(r => r.dataset.transactionId)")
    load_more = page.get_by_role("link", name="Load more transactions")
    first_cursor = load_more.get_attribute("hx-get")
    load_more.click()
    expect(rows).not_to_have_count(before)
    # The answer also replaced the link with one for the following page.
    expect(load_more).to_have_count(1)
    assert load_more.get_attribute("hx-get") != first_cursor
    after = rows.evaluate_all("rows => rows.map(r => r.dataset.transactionId)")
    assert len(after) > before
    assert after[:before] == first_ids, "the first page must stay in place"
    assert len(set(after)) == len(after), "no transaction appended twice"
    # Still the detail page (the rows were appended, not navigated to).
    assert re.search(CONNECTION_URL + "$", page.url)


def _sync_now(page: Page) -> None:
    """An accepted sync starts the 45-minute cooldown: the control stays disabled through it
    (also after the sync itself is over, and after a reload), with the status line kept."""
    button = page.get_by_role("button", name="Sync now")
    expect(button).to_be_enabled()
    button.click()
    expect(page.locator("#sync-panel .sync-state")).to_contain_text("Syncing now")
    expect(page.locator("#sync-panel .sync-state")).to_contain_text(
        "Not currently syncing", timeout=20_000
    )
    expect(button).to_be_disabled()
    expect(page.locator("#sync-panel .cooldown")).to_contain_text("next sync is allowed at")
    page.reload()
    expect(page.get_by_role("button", name="Sync now")).to_be_disabled()
    expect(page.locator("#sync-panel .sync-state")).to_contain_text("last synced")


def _delete(page: Page, connection_id: str) -> None:
    page.get_by_role("link", name=re.compile("Delete connection")).click()
    expect(page).to_have_url(_url(f"/connections/{connection_id}/delete"))
    expect(page.locator("#main h1")).to_contain_text("Delete the connection to JPMorgan Chase?")
    page.get_by_role("button", name="Delete connection").click()
    expect(page.locator("#confirm-delete-error")).to_have_text(
        "Tick the box to confirm you want to delete this connection."
    )
    page.get_by_label("I understand that the connection").check()
    page.get_by_role("button", name="Delete connection").click()
    expect(page).to_have_url(_url("/connections"))
    expect(page.locator(".alert-success")).to_contain_text("were deleted")
    expect(page.locator(f"[data-connection-id='{connection_id}']")).to_have_count(0)
    page.reload()
    expect(page.locator("#main h1")).to_have_text("Bank connections")
    expect(page.locator(f"[data-connection-id='{connection_id}']")).to_have_count(0)


def _assert_clean(page_log: PageLog, expected_422: set[str]) -> None:
    unexpected = [m for m in page_log.console_errors if not EXPECTED_422_CONSOLE.match(m)]
    assert not unexpected, f"JavaScript console errors: {unexpected}"
    assert not page_log.page_errors, f"uncaught JavaScript errors: {page_log.page_errors}"
    assert not page_log.csp_violations, f"CSP violations: {page_log.csp_violations}"
    assert not page_log.foreign_requests(), (
        f"requests outside {page_log.origin}: {page_log.foreign_requests()}"
    )
    failed = [(s, u) for s, u in page_log.responses if s >= 400 and s != 422]
    assert not failed, f"failed responses: {failed}"
    invalid = {re.sub(r"conn_[A-Za-z0-9]+", "{id}", u) for s, u in page_log.responses if s == 422}
    assert invalid == {page_log.origin + path for path in expected_422}


@pytest.mark.parametrize("bank", ["listed", "unlisted"])
def test_connect_a_bank_end_to_end(page: Page, page_log: PageLog, bank: str) -> None:
    listed = bank == "listed"
    frames = _record_history_frames(page)
    _sign_in_as_alice(page)
    _open_new_connection(page)
    if listed:
        _choose_chase_by_keyboard(page)
        _details_listed(page)
    else:
        _details_unlisted(page)
    connection_id = _delegated_user(page, listed=listed)
    _finish_setup(page, connection_id, listed=listed)
    _activation_then_detail(page, connection_id)
    _load_more_transactions(page)
    if listed:
        _sync_now(page)
        _delete(page, connection_id)
    # The only 4xx answers were the validation steps the journey provoked on purpose.
    expected_422 = (
        {"/connections/{id}/finish", "/connections/{id}/delete"}
        if listed
        else {"/connections/continue", "/connections/{id}/finish"}
    )
    _assert_clean(page_log, expected_422)
    _assert_no_stale_step(frames)
