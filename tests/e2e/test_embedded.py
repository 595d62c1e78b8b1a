"""Embedded, in a real browser: the kit at /banking behind a real nginx configured with the
location block of docs/embedding.md (prefix stripped, Host rewritten), signed in by a handoff
token; and the kit mounted in the example host (examples/host_app.py) with the host's sign-in.
Every request the browser makes stays under the prefix (or on the host's own pages), with no
console error or CSP violation."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

import handoff
from tests.e2e.checks import HEIGHTS, WIDTHS, axe_problems, layout_problems, settle
from tests.e2e.conftest import CHROMIUM_ARGS, CSP_LISTENER, ROOT, PageLog
from tests.test_docs import snippet

pytestmark = pytest.mark.e2e

NGINX = Path("/usr/sbin/nginx")
PREFIX = "/banking"
SECRET = "e2e-handoff-secret-" + "e" * 40


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    url: str
    processes: list[subprocess.Popen[bytes]]
    logs: list[Path]

    def output(self) -> str:
        return "\n".join(log.read_text(errors="replace")[-4000:] for log in self.logs)


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)


def _wait(url: str, served: Served) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for process in served.processes:
            if process.poll() is not None:
                pytest.fail(f"{process.args} exited early:\n{served.output()}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} did not answer:\n{served.output()}")


def _stop(served: Served) -> None:
    for process in served.processes:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _kit_env(tmp: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAYCORE_", "SANDBOX_"))}
    env.update(
        HOST="127.0.0.1",
        PORT=str(port),
        SECRET_KEY="e2e-secret-key-" + "s" * 40,
        DATABASE_PATH=str(tmp / "app.sqlite3"),
        SANDBOX_DATABASE=str(tmp / "sandbox.sqlite3"),
        SANDBOX_ACTIVATION_SECONDS="2",
        POLL_INTERVAL_SECONDS="5",
        WAYCORE_SETUP_GUIDES="setup_guides.json",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="module")
def behind_nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if not NGINX.exists():
        reason = f"{NGINX} is missing: scripts/install --test installs Debian's nginx"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("behind-nginx")
    kit_port, public_port = _free_port(), _free_port()
    public = f"http://127.0.0.1:{public_port}"
    env = _kit_env(tmp, kit_port)
    env.update(
        ROOT_PATH=PREFIX,
        FORWARDED_ALLOW_IPS="127.0.0.1",
        PUBLIC_ORIGINS=public,
        HANDOFF_SECRET=SECRET,
        DEMO_MODE="false",
        SIGN_IN_URL=public + "/login",
    )
    location = snippet("nginx-location").replace("127.0.0.1:8000", f"127.0.0.1:{kit_port}")
    config = tmp / "nginx.conf"
    config.write_text(
        f"""daemon off; master_process off; worker_processes 1;
error_log {tmp}/nginx-error.log; pid {tmp}/nginx.pid;
events {{ worker_connections 256; }}
http {{
  access_log {tmp}/nginx-access.log;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  server {{
    listen 127.0.0.1:{public_port};
{location}
  }}
}}
"""
    )
    kit = _start([sys.executable, "server.py"], env, tmp / "kit.log")
    nginx = _start([str(NGINX), "-c", str(config), "-p", str(tmp)], env, tmp / "nginx.log")
    served = Served(public, [kit, nginx], [tmp / "kit.log", tmp / "nginx.log"])
    try:
        _wait(f"http://127.0.0.1:{kit_port}/healthz", served)
        _wait(f"{public}{PREFIX}/healthz", served)
        yield served
    finally:
        _stop(served)


@pytest.fixture(scope="module")
def example_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("example-host")
    port = _free_port()
    env = _kit_env(tmp, port)
    process = _start([sys.executable, "examples/host_app.py"], env, tmp / "host.log")
    served = Served(f"http://127.0.0.1:{port}", [process], [tmp / "host.log"])
    try:
        _wait(f"{served.url}/login", served)
        yield served
    finally:
        _stop(served)


def _page(browser: Browser, base_url: str, log: PageLog) -> Page:
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    context.on("request", lambda req: log.requests.append(req.url))
    context.on("response", lambda res: log.responses.append((res.status, res.url)))
    context.expose_function("__e2eCspViolation", lambda text: log.csp_violations.append(text))
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()
    page.on("console", lambda m: log.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: log.page_errors.append(str(exc)))
    return page


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    from tests.e2e.conftest import CHROMIUM

    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            instance.close()


def _connect_chase(page: Page, url_prefix: str) -> str:
    """From the connections list to activation, through the kit's screens."""
    page.get_by_role("link", name="Connect a bank").click()
    expect(page).to_have_url(re.compile(re.escape(url_prefix) + r"/connections/new$"))
    search = page.locator("#institution-search")
    search.press_sequentially("chase", delay=60)
    page.locator("#institution-results .option", has_text="JPMorgan Chase").click()
    expect(page.locator("#selected-bank-title")).to_have_text("JPMorgan Chase")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#main h1")).to_contain_text("Create a delegated user at JPMorgan Chase")
    connection_id = re.search(r"/connections/(conn_\w+)/", page.url).group(1)  # type: ignore[union-attr]
    page.get_by_role("link", name=re.compile("created the delegated user")).click()
    page.get_by_label("The delegated user is created and active").check()
    page.get_by_label("I accept the").check()
    page.get_by_role("button", name="Finish setup").click()
    expect(page).to_have_url(
        re.compile(f"{re.escape(url_prefix)}/connections/{connection_id}/activation$")
    )
    expect(page).to_have_url(
        re.compile(f"{re.escape(url_prefix)}/connections/{connection_id}$"), timeout=30_000
    )
    expect(page.locator(".page-head .badge")).to_have_text("Connected")
    return connection_id


def _assert_clean(log: PageLog, allowed: tuple[str, ...]) -> None:
    assert not log.console_errors, log.console_errors
    assert not log.page_errors, log.page_errors
    assert not log.csp_violations, log.csp_violations
    strays = [url for url in log.requests if not url.startswith(allowed)]
    assert not strays, f"requests outside {allowed}: {strays}"
    failed = [(s, u) for s, u in log.responses if s >= 400]
    assert not failed, failed


def test_the_journey_at_a_prefix_behind_nginx_with_a_handoff(
    chromium: Browser, behind_nginx: Served
) -> None:
    log = PageLog(origin=behind_nginx.url)
    page = _page(chromium, behind_nginx.url, log)
    token = handoff.mint(
        SECRET,
        sub="host-7",
        name="Priya Shah",
        tenant_id="northwind-001",
        tenant_name="Northwind Traders",
        role="admin",
        jti=f"e2e-{time.time_ns()}",
    )
    # Opened directly (not from the host's pages): the person confirms who they continue as.
    page.goto(f"{PREFIX}/handoff?token={token}&next={PREFIX}/connections")
    expect(page.locator("h1")).to_have_text("Continue to bank connections")
    for width in WIDTHS:  # the confirmation is a screen like the others: every width, axe
        page.set_viewport_size({"width": width, "height": HEIGHTS[width]})
        settle(page)
        assert layout_problems(page) == [], width
    assert axe_problems(page) == []
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("button", name="Continue as Priya Shah").click()
    expect(page).to_have_url(f"{behind_nginx.url}{PREFIX}/connections")
    expect(page.locator(".host-brand")).to_have_text("Northwind Traders")
    _connect_chase(page, behind_nginx.url + PREFIX)
    page.reload()  # the pushed URL is a real page behind the proxy too
    expect(page.locator(".page-head .badge")).to_have_text("Connected")
    _assert_clean(log, (behind_nginx.url + PREFIX + "/",))
    page.context.close()


def test_the_journey_in_the_example_host_with_its_own_sign_in(
    chromium: Browser, example_host: Served
) -> None:
    log = PageLog(origin=example_host.url)
    page = _page(chromium, example_host.url, log)
    page.goto("/banking/connections")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fbanking%2Fconnections$"))
    page.get_by_label("Email").fill("maria@northwind.example")
    page.get_by_label("Password").fill("ledgerly-demo")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{example_host.url}/banking/connections")
    expect(page.locator(".ledgerly-who")).to_contain_text("Maria Lopez · Northwind Traders")
    _connect_chase(page, example_host.url + PREFIX)
    page.get_by_role("link", name="Dashboard").click()
    expect(page.locator("h1")).to_have_text("Welcome back, Maria Lopez")
    allowed = tuple(f"{example_host.url}{p}" for p in (PREFIX + "/", "/login", "/assets/", "/"))
    _assert_clean(log, allowed)
    page.context.close()
