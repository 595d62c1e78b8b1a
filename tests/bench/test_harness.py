"""The benchmark harness's own setup code (`bench/`), without load: the measurements need wrk
and minutes, and never run in the test command.

What is checked: the harness starts the app, the bare endpoint and a standalone sandbox the way
an operator does; signs in and makes a waiting connection through the app's routes; follows the
activation region as htmx does; counts the upstream reads in the sandbox's record; and, after a
status change through the control API, sees the region navigate. Also the wrk settings it writes
and the result line it reads.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from bench import wrk
from bench.browser import Browser, Tab, region_attrs, trigger_delay
from bench.processes import Processes, free_port
from bench.scenarios import (
    HTMX_POLL,
    SLOW_PORTAL,
    Options,
    SandboxControl,
    Stores,
    page_path,
    start_cluster,
    start_stack,
)

pytestmark = pytest.mark.anyio


async def test_setup_through_the_app_and_a_standalone_sandbox(tmp_path: Path) -> None:
    with Processes(tmp_path) as procs:
        _, upstream = procs.start_sandbox()
        control = SandboxControl(upstream)
        opts = Options(long_poll_seconds=2)
        cluster = await start_cluster(
            procs, opts, Stores(), upstream, control, receiver=True, label="smoke"
        )
        try:
            browser = cluster.browsers[0]
            connection_id = await browser.activating_connection(SLOW_PORTAL.format("smoke"))
            # The sandbox's webhook for the new status has the app check the connection once;
            # after that check, the record counts the polls alone.
            assert await reads_reach(control, connection_id, 1)
            tab = Tab(browser.on(browser.base_url), page_path(connection_id))
            cluster.browsers.append(tab.browser)
            await tab.open()
            assert tab.first_status == "pendingActivation"

            await control.clear_requests()
            waiting = await tab.poll_once()  # held: nothing changes, the webhook's state holds
            assert (waiting.status, waiting.navigated) == (200, None)
            assert waiting.received - waiting.sent >= opts.long_poll_seconds - 0.5
            assert await control.connection_reads([connection_id]) == {connection_id: 0}

            await control.set_status(connection_id, "active")
            for _ in range(5):  # the webhook of the change wakes a held poll, or the next one
                ready = await tab.poll_once()
                if ready.navigated:
                    break
            assert ready.navigated and f"/connections/{connection_id}" in ready.navigated
            assert tab.first_change_after(waiting.received) is ready
            assert tab.ended == "navigated"
        finally:
            await cluster.aclose()
            await control.aclose()
        assert [s.name for s in procs.services] == ["sandbox", "smoke-a"]
    assert all(s.process.poll() is not None for s in cluster.instances)


async def reads_reach(control: SandboxControl, connection_id: str, count: int) -> bool:
    """Whether the sandbox's record holds `count` reads of the connection within 10 s."""
    for _ in range(100):
        if (await control.connection_reads([connection_id]))[connection_id] >= count:
            return True
        await asyncio.sleep(0.1)
    return False


async def test_bare_endpoint_on_the_apps_uvicorn_settings(tmp_path: Path) -> None:
    """Silent as `python server.py` serves (the app writes its own line, uvicorn none), or with
    uvicorn's own access line."""
    with Processes(tmp_path) as procs:
        bare = procs.start_bare()
        logged = procs.start_bare("bare-logged", access_log=True)
        async with httpx.AsyncClient() as http:
            response = await http.get(bare.url + "/?silent")
            answered = await http.get(logged.url + "/?logged")
    assert (response.status_code, response.text) == (200, "Hello, world!")
    assert (answered.status_code, answered.text) == (200, "Hello, world!")
    assert bare.process.poll() is not None and logged.process.poll() is not None
    assert '"GET /?silent HTTP/1.1" 200' not in bare.log.read_text()
    assert '"GET /?logged HTTP/1.1" 200' in logged.log.read_text()


async def test_signed_in_browser_keeps_its_session_cookie(tmp_path: Path) -> None:
    with Processes(tmp_path) as procs:
        app = procs.start_app("app", procs.app_env(free_port(), name="app", poll_seconds=5))
        browser = Browser(app.url)
        try:
            await browser.sign_in("u-alice")
            page = await browser.get("/connections")
        finally:
            await browser.aclose()
    assert page.status_code == 200
    assert browser.cookie_header.startswith("onboarding_session=")


async def test_the_stack_alone_answers_the_polls_bytes_to_the_same_session(
    tmp_path: Path,
) -> None:
    """The stack-only instance shares the app's database: the same cookie is signed in there,
    and its poll answers the saved answer as it is (its other routes are the app's own)."""
    with Processes(tmp_path) as procs:
        app = procs.start_app("app", procs.app_env(free_port(), name="app", poll_seconds=5))
        browser = Browser(app.url)
        try:
            await browser.sign_in("u-alice")
            connection_id = await browser.activating_connection(SLOW_PORTAL.format("stack"))
            path = f"/connections/{connection_id}/activation/status"
            real = await browser.get(path, headers=HTMX_POLL)
            stack = start_stack(procs, app, real.text, tmp_path)
            there = browser.on(stack.url)
            try:
                fixed = await there.get(path, headers=HTMX_POLL)
                listed = await there.get("/connections")
            finally:
                await there.aclose()
        finally:
            await browser.aclose()
    assert (real.status_code, fixed.status_code) == (200, 200)
    assert fixed.content == real.content and 'id="activation-status"' in fixed.text
    assert fixed.headers["cache-control"] == real.headers["cache-control"] == "no-store"
    assert listed.status_code == 200 and "Sign out" in listed.text  # signed in there too
    assert stack.process.poll() is not None


def test_htmx_triggers_read_as_delays() -> None:
    assert trigger_delay("load delay:4.2s") == 4.2
    assert trigger_delay("load delay:500ms") == 0.5
    assert trigger_delay("every 5s") == 5.0
    assert trigger_delay("load") == 0.0
    assert trigger_delay("transactionsChanged from:body") is None


def test_region_attributes_of_the_first_element_with_the_id() -> None:
    html = '<div><section id="activation-status" hx-get="/x" data-status="active"></section></div>'
    assert region_attrs(html, "activation-status") == {
        "id": "activation-status",
        "hx-get": "/x",
        "data-status": "active",
    }
    assert region_attrs(html, "elsewhere") is None


def test_wrk_settings_escape_header_values() -> None:
    load = wrk.Load(
        [("/a", {"Cookie": 's="x\\y"'}), ("/b", {})],
        threads=2,
        connections=10,
        duration_seconds=1,
        period_seconds=5,
    )
    text = wrk.lua_settings(load)
    assert '["Cookie"] = "s=\\"x\\\\y\\""' in text
    assert "period_ms = 5000," in text
    assert "connections_per_thread = 5," in text


def test_wrk_result_line_is_parsed() -> None:
    line = (
        'BENCH-JSON {"duration_us": 2000000, "requests": 100, "bytes": 5000, "sent": 104, '
        '"errors_connect": 0, "errors_read": 1, "errors_write": 0, "errors_status": 2, '
        '"errors_timeout": 0, "latency_min_us": 100, "latency_max_us": 9000, '
        '"latency_mean_us": 1000, "p50_us": 800, "p90_us": 2000, "p99_us": 8000, '
        '"p99_9_us": 9000, "slow": 3, "statuses": {"200": 98, "500": 2}}'
    )
    result = wrk.parse_output("Running 2s test\n" + line + "\n")
    assert result.rps == 50
    assert result.unanswered == 4
    assert result.latency_ms["p99"] == 8
    assert result.statuses == {200: 98, 500: 2}
    assert result.socket_errors == 1
