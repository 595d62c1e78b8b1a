"""Every step and state at 320, 390 and 1280 px: no page-level sideways scroll, no overlapping
text, truncated values keep their full text, and axe-core finds no serious or critical
violation (in the light scheme at every width, and in the dark scheme at 390 px).

The walk covers the sign-in, the connections list (empty, then with connected, needing-attention,
in-setup and draft rows), connection details (search, results, a selected bank with several
portals, a refused unlisted bank with its error summary, the offer of a listed bank, a created
draft), the delegated user, finish setup (and its failed submit), activation (waiting, and
recoverable), the connection page (folded and unfolded, and in its sync cooldown), the delete
confirmation (and its failed submit) and the audit trail. The README's screenshots are taken
here, at 1280 and 390. Values are long on purpose (a long bank name and portal) to stress
truncation and wrapping.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.checks import (
    HEIGHTS,
    WIDTHS,
    axe_counts,
    axe_problems,
    layout_problems,
    settle,
)
from tests.e2e.conftest import CSP_LISTENER, RESULTS, SCREENSHOTS, LiveServer, PageLog

pytestmark = pytest.mark.e2e

LONG_NAME = "Harbor Point Community Bank and Trust Company of the Greater Northwestern Region"
LONG_PORTAL = (
    "https://online-banking.corporate-services.harborpoint-community-bank.example/"
    "business/login/with/a/deep/path?branch=042&lang=en"
)

ERRORED_PORTAL = "https://errored.scenario.test/business/login/with/a/deep/path?branch=042&lang=en"


class Walk:
    """Measures states as the journey reaches them and keeps every finding."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        self.report: dict[str, dict[str, object]] = {}

    def measure(self, state: str, *, shot: str | None = None) -> None:
        page = self.page
        entry: dict[str, object] = {"url": page.url, "widths": list(WIDTHS)}
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": HEIGHTS[width]})
            settle(page)
            for problem in layout_problems(page):
                self.problems.append(f"[{state} @ {width}px] {problem}")
            counts = axe_counts(page)
            entry[f"axe@{width}"] = counts
            for problem in axe_problems(page):
                self.problems.append(f"[{state} @ {width}px] {problem}")
            if shot and width in (390, 1280):
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                name = f"{shot}.png" if width == 1280 else f"{shot}-mobile.png"
                page.screenshot(path=str(SCREENSHOTS / name), full_page=True, caret="initial")
        page.emulate_media(color_scheme="dark")
        page.set_viewport_size({"width": 390, "height": HEIGHTS[390]})
        settle(page)
        entry["axe-dark@390"] = axe_counts(page)
        for problem in axe_problems(page):
            self.problems.append(f"[{state} @ 390px, dark] {problem}")
        page.emulate_media(color_scheme="light")
        page.set_viewport_size({"width": 1280, "height": HEIGHTS[1280]})
        settle(page)
        self.report[state] = entry


@pytest.fixture
def walk(browser: Browser, live_server: LiveServer, page_log: PageLog) -> Iterator[Walk]:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)

    def report(text: str) -> None:
        page_log.csp_violations.append(text)

    context.expose_function("__e2eCspViolation", report)
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()
    page.on("pageerror", lambda exc: page_log.page_errors.append(str(exc)))
    try:
        yield Walk(page)
    finally:
        context.close()


def _url(pattern: str) -> re.Pattern[str]:
    return re.compile(r"^https?://[^/]+" + pattern + r"$")


def _unlisted(page: Page, name: str, portal: str) -> None:
    page.goto("/connections/new")
    page.locator("summary", has_text="My bank isn").click()
    page.get_by_label("Bank name", exact=True).fill(name)
    page.get_by_label("Bank portal URL").fill(portal)
    page.locator("details.unlisted").get_by_role("button", name="Continue").click()


def _finish(page: Page) -> None:
    page.get_by_role("link", name=re.compile("created the delegated user")).click()
    expect(page.locator("#main h1")).to_have_text("Finish setup")
    page.get_by_label("The delegated user is created and active").check()
    page.get_by_label("I accept the").check()
    page.get_by_role("button", name="Finish setup").click()
    expect(page.locator("#main h1")).to_contain_text("Activating your connection")


def test_every_step_and_state_at_every_width(walk: Walk, page_log: PageLog) -> None:
    page = walk.page
    page.goto("/signin")
    walk.measure("sign-in")
    page.get_by_role("button", name=re.compile("Alice Admin")).click()
    expect(page).to_have_url(_url("/connections"))
    walk.measure("list-empty")

    # Connection details: search, results, a bank with several portals.
    page.get_by_role("link", name="Connect a bank").click()
    expect(page.locator("#main h1")).to_have_text("Connect your bank")
    walk.measure("choose-bank")
    page.locator("#institution-search").press_sequentially("chase", delay=60)
    expect(page.locator("#institution-results .option").first).to_be_visible()
    walk.measure("search-results")
    page.locator("#institution-results .option", has_text="JPMorgan Chase").click()
    expect(page.locator("#selected-bank-title")).to_have_text("JPMorgan Chase")
    walk.measure("selected-bank", shot="connection-details")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#main h1")).to_contain_text("Create a delegated user at JPMorgan Chase")
    expect(page.locator("#delegated-details .copy-row")).to_have_count(6)
    walk.measure("delegated-user", shot="delegated-user")
    page.go_back()
    expect(page.locator(".selected-bank.created")).to_be_visible()
    walk.measure("details-created")
    page.go_forward()
    expect(page.locator("#main h1")).to_contain_text("Create a delegated user at")
    page.get_by_role("link", name=re.compile("created the delegated user")).click()
    expect(page.locator("#main h1")).to_have_text("Finish setup")
    walk.measure("finish", shot="finish-setup")
    page.get_by_role("button", name="Finish setup").click()
    expect(page.locator(".error-summary")).to_be_visible()
    walk.measure("finish-errors")
    page.get_by_label("The delegated user is created and active").check()
    page.get_by_label("I accept the").check()
    page.get_by_role("button", name="Finish setup").click()
    connection_url = re.compile(r"^https?://[^/]+/connections/conn_[A-Za-z0-9]+$")
    expect(page).to_have_url(connection_url, timeout=30_000)
    expect(page.locator("#sync-panel .sync-state")).to_contain_text(
        "Not currently syncing", timeout=20_000
    )
    page.wait_for_load_state("networkidle")
    walk.measure("connection", shot="connection")
    page.locator("summary", has_text="Daily balances").click()
    walk.measure("connection-balances-open")
    page.get_by_role("button", name="Sync now").click()
    expect(page.locator("#sync-panel .cooldown")).to_be_visible(timeout=20_000)
    expect(page.locator("#sync-panel .sync-state")).to_contain_text(
        "Not currently syncing", timeout=20_000
    )
    walk.measure("connection-cooldown")
    page.get_by_role("link", name=re.compile("Delete connection")).click()
    expect(page.locator("#main h1")).to_contain_text("Delete the connection")
    walk.measure("delete")
    page.get_by_role("button", name="Delete connection").click()
    expect(page.locator(".error-summary")).to_be_visible()
    walk.measure("delete-errors")

    # An unlisted bank: refused, then a portal that looks like a listed bank.
    _unlisted(page, LONG_NAME, "http://online.harborpoint-bank.example/login")
    expect(page.locator(".error-summary")).to_be_visible()
    walk.measure("unlisted-errors")
    page.get_by_label("Bank portal URL").fill("https://chase.com/business/login")
    page.locator("details.unlisted").get_by_role("button", name="Continue").click()
    expect(page.locator(".offer")).to_be_visible()
    walk.measure("listed-bank-offer")
    page.get_by_role("button", name=re.compile("No, mine is different")).click()
    expect(page.locator("#main h1")).to_contain_text("Create a delegated user at")
    walk.measure("delegated-user-unlisted")

    # Activation: still waiting (the slow scenario), and recoverable (the errored one).
    _unlisted(page, "Slow Savings", "https://slow.scenario.test/login")
    expect(page.locator("#main h1")).to_contain_text("Create a delegated user at")
    _finish(page)
    walk.measure("activation", shot="activation")
    _unlisted(page, LONG_NAME, ERRORED_PORTAL)
    expect(page.locator("#main h1")).to_contain_text("Create a delegated user at")
    _finish(page)
    expect(page.locator("#activation-status[data-status=errored]")).to_be_visible(timeout=30_000)
    walk.measure("activation-recoverable")

    # A draft, and the list with every kind of row.
    page.goto("/connections/new?q=apple")
    page.locator("#institution-results .option", has_text="Apple Bank").click()
    expect(page.locator("#selected-bank-title")).to_have_text("Apple Bank")
    page.goto("/connections")
    expect(page.locator("[data-draft-id]")).to_have_count(1)
    expect(page.locator("#attention-title")).to_be_visible()
    walk.measure("list-full", shot="connections")
    page.get_by_role("link", name="Audit trail").click()
    expect(page.locator("#main h1")).to_have_text("Audit trail")
    expect(page.locator("tr.audit-entry").first).to_be_visible()
    walk.measure("audit-trail")
    page.goto("/connections/conn_unknown")
    walk.measure("not-found")

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "layout-report.json").write_text(json.dumps(walk.report, indent=2))
    assert not walk.problems, "\n".join(walk.problems)
    assert not page_log.csp_violations, page_log.csp_violations
    assert not page_log.page_errors, page_log.page_errors
