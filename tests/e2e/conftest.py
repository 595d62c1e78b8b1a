"""Real-browser fixtures: the app served by `python server.py` on a loopback port (over its
embedded Waycore sandbox), and headless Debian Chromium driven by Playwright's sync API.

Every page records console errors, uncaught exceptions, CSP violations and every request the
browser makes, so a test can assert the journey stayed clean and same-origin. A failing test
leaves a full-page screenshot under `test-results/` (gitignored).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
RESULTS = ROOT / "test-results"
#: The README's screenshots are refreshed only when asked (`SCREENSHOTS=1 ./scripts/test -m e2e`);
#: otherwise they go to `test-results/screenshots/`, so a test run leaves the work tree clean.
SCREENSHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("SCREENSHOTS") == "1"
    else ROOT / "test-results" / "screenshots"
)
VIEWPORT = {"width": 1280, "height": 900}
E2E_SECRET_KEY = "e2e-secret-key-" + "s" * 40
STARTUP_TIMEOUT_SECONDS = 20.0


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item, so fixtures can tell whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-6000:]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`python server.py` on a free 127.0.0.1 port, with its own app and sandbox databases."""
    tmp = tmp_path_factory.mktemp("e2e-server")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAYCORE_")}
    env.update(
        HOST="127.0.0.1",
        PORT=str(port),
        SECRET_KEY=E2E_SECRET_KEY,
        DATABASE_PATH=str(tmp / "app.sqlite3"),
        DATABASE_URL="",  # the embedded default (SQLite), whatever a local .env says
        SANDBOX_DATABASE=str(tmp / "sandbox.sqlite3"),
        SANDBOX_ACTIVATION_SECONDS="3",
        # The guide's 5 s activation polling (the default), stated so a local .env cannot
        # change it; likewise no real Waycore and a test key for the embedded sandbox.
        POLL_INTERVAL_SECONDS="5",
        WAYCORE_BASE_URL="",
        WAYCORE_API_KEY="way_test_e2e_" + "k" * 24,
        WAYCORE_SETUP_GUIDES="setup_guides.json",
        DEMO_MODE="true",
        DEBUG="false",
        SESSION_HTTPS_ONLY="false",
        PYTHONUNBUFFERED="1",
    )
    log = tmp / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "server.py"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_until_healthy(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _wait_until_healthy(server: LiveServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    last = "no answer yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"server.py exited with {server.process.returncode} before /healthz answered:\n"
                + server.output()
            )
        try:
            response = httpx.get(server.url + "/healthz", timeout=1.0)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    pytest.fail(
        f"server.py did not answer /healthz within {STARTUP_TIMEOUT_SECONDS:.0f} s ({last}):\n"
        + server.output()
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium (Playwright's own browser download is not used)."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: install Debian's chromium package to run e2e tests"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            instance.close()


@dataclass
class PageLog:
    """What the browser did besides rendering: errors, CSP violations and requests."""

    origin: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    responses: list[tuple[int, str]] = field(default_factory=list)

    def foreign_requests(self) -> list[str]:
        return [url for url in self.requests if not _same_origin(url, self.origin)]


def _same_origin(url: str, origin: str) -> bool:
    return url == origin or url.startswith(origin + "/")


#: Reported on every page that listens for CSP violations (the page itself cannot be blocked
#: from this: Playwright injects init scripts outside the page's CSP).
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", function (event) {
  window.__e2eCspViolation(
    event.violatedDirective + " blocked " + (event.blockedURI || "inline") +
    " at " + event.sourceFile + ":" + event.lineNumber + ":" + event.columnNumber +
    " sample=" + event.sample);
});
"""


@pytest.fixture
def page_log(live_server: LiveServer) -> PageLog:
    return PageLog(origin=live_server.url)


@pytest.fixture
def page(
    browser: Browser, live_server: LiveServer, page_log: PageLog, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A fresh context (own cookies) at 1280 px wide, clipboard allowed, fully instrumented."""
    context = browser.new_context(
        base_url=live_server.url,
        viewport=VIEWPORT,
        permissions=["clipboard-read", "clipboard-write"],
    )
    context.set_default_timeout(10_000)
    context.on("request", lambda req: page_log.requests.append(req.url))
    context.on("response", lambda res: page_log.responses.append((res.status, res.url)))

    def report_csp_violation(text: str) -> None:
        page_log.csp_violations.append(text)

    context.expose_function("__e2eCspViolation", report_csp_violation)
    context.add_init_script(CSP_LISTENER)
    tab = context.new_page()
    tab.on(
        "console",
        lambda msg: (
            page_log.console_errors.append(f"{msg.text} ({msg.location.get('url')})")
            if msg.type == "error"
            else None
        ),
    )
    tab.on("pageerror", lambda exc: page_log.page_errors.append(str(exc)))
    try:
        yield tab
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            RESULTS.mkdir(exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
            try:
                tab.screenshot(path=str(RESULTS / f"{name}.png"), full_page=True)
            except Exception as exc:  # best effort: the failure itself is already reported
                sys.stderr.write(f"could not save the failure screenshot: {exc}\n")
        context.close()
