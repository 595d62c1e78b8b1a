"""An activation that errors, then recovers, while the page stays open in a real browser.

Here `python server.py` talks to a standalone sandbox process (`python -m waycore.sandbox`), so
the test can drive Waycore's side through the sandbox's control API while Chromium shows the
page: the sandbox clock is advanced past activation (which ends in `errored` for this scenario
portal), then the connection is set `active`. Nobody clicks: the page names the error by itself,
keeps checking with backoff, and moves to the connected page by itself when Waycore recovers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import (
    E2E_SECRET_KEY,
    ROOT,
    LiveServer,
    PageLog,
    _free_port,
    _wait_until_healthy,
)

pytestmark = pytest.mark.e2e

SANDBOX_KEY = "way_test_e2erecovery_" + "r" * 24
PORTAL = "https://errored.scenario.test/online/login"
SUPPORT_EMAIL = "help@host.example"


class SandboxProcess:
    def __init__(self, url: str, process: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.process = process

    def control(self, method: str, path: str, body: dict[str, Any]) -> Any:
        response = httpx.request(
            method,
            self.url + path,
            json=body,
            headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
            timeout=5.0,
        )
        assert response.status_code < 300, response.text
        return response.json()


@pytest.fixture(scope="module")
def sandbox_process() -> Iterator[SandboxProcess]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "waycore.sandbox", "--port", str(port)]
        + ["--activation-seconds", "600"],  # activation only when the test moves the clock
        cwd=ROOT,
        env={**os.environ, "WAYCORE_API_KEY": SANDBOX_KEY},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url + "/v1/institutions", timeout=1.0)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        yield SandboxProcess(url, process)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, sandbox_process: SandboxProcess
) -> Iterator[LiveServer]:
    """`python server.py` against the standalone sandbox, checking every second."""
    tmp = tmp_path_factory.mktemp("e2e-recovery")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAYCORE_", "HOST_EVENTS"))}
    env.update(
        HOST="127.0.0.1",
        PORT=str(port),
        SECRET_KEY=E2E_SECRET_KEY,
        DATABASE_PATH=str(tmp / "app.sqlite3"),
        WAYCORE_BASE_URL=sandbox_process.url,
        WAYCORE_API_KEY=SANDBOX_KEY,
        POLL_INTERVAL_SECONDS="1",
        SUPPORT_EMAIL=SUPPORT_EMAIL,
        DEMO_MODE="true",
        PYTHONUNBUFFERED="1",
    )
    log = tmp / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "server.py"], cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_until_healthy(server)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)


def _url(pattern: str) -> re.Pattern[str]:
    return re.compile(r"^https?://[^/]+" + pattern + r"$")


def test_an_errored_activation_recovers_while_the_page_is_open(
    page: Page, page_log: PageLog, sandbox_process: SandboxProcess
) -> None:
    page.goto("/signin")
    page.get_by_role("button", name=re.compile("Alice Admin")).click()
    page.get_by_role("link", name="Connect a bank").click()
    page.locator("summary", has_text="My bank isn").click()
    page.get_by_label("Bank name", exact=True).fill("Errorville Bank")
    page.get_by_label("Bank portal URL").fill(PORTAL)
    page.locator("details.unlisted").get_by_role("button", name="Continue").click()
    page.get_by_role("link", name=re.compile("created the delegated user")).click()
    page.get_by_label("The delegated user is created and active").check()
    page.get_by_label("I accept the").check()
    page.get_by_role("button", name="Finish setup").click()
    expect(page).to_have_url(_url(r"/connections/conn_[A-Za-z0-9]+/activation"))
    connection_id = page.url.split("/")[-2]
    heading = page.locator("#main h1")
    expect(heading).to_have_text("Activating your connection to Errorville Bank")

    # Waycore's side: activation ends in `errored` (the scenario portal).
    sandbox_process.control("POST", "/_sandbox/clock", {"advanceSeconds": 601})
    expect(heading).to_have_text("Activation of your connection to Errorville Bank hit an error")
    expect(page).to_have_title("Activation error")
    expect(page.locator(".lede")).to_contain_text("retrying automatically")
    expect(page.locator("#activation-status .watching")).to_contain_text("checks again by itself")
    support = page.locator("#activation-status .support")
    expect(support.locator("a.support-email")).to_have_text(SUPPORT_EMAIL)
    expect(support.locator(".reference-details code")).to_contain_text(connection_id)
    expect(page).to_have_url(_url(f"/connections/{connection_id}/activation"))

    # Waycore recovers: the page notices by itself and moves to the connection.
    sandbox_process.control(
        "PUT", f"/_sandbox/connections/{connection_id}/status", {"status": "active"}
    )
    expect(page).to_have_url(_url(f"/connections/{connection_id}"), timeout=20_000)
    expect(page.locator(".page-head .badge")).to_have_text("Connected")
    expect(page.locator("table.accounts tbody tr[data-account-id]").first).to_be_visible()

    assert not page_log.console_errors, page_log.console_errors
    assert not page_log.page_errors and not page_log.csp_violations
    assert not page_log.foreign_requests()
    assert not [(s, u) for s, u in page_log.responses if s >= 400]
