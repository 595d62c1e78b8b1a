"""Request ids: every response says its id, every log line of the request carries it, and it is
the support reference a page shows when Waycore gave none of its own."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from logs import ACCESS_FORMAT, LOG_FORMAT, RequestIdFilter
from tests.support import Browser, SandboxHandle, soup, start_listed

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def lines() -> Iterator[list[logging.LogRecord]]:
    """Records as a configured handler sees them (with the filter that adds the id)."""
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep()
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    client = logging.getLogger("waycore.client")
    client.setLevel(logging.DEBUG)  # the client's line per Waycore call is DEBUG detail
    yield seen
    client.setLevel(logging.NOTSET)
    root.removeHandler(handler)
    root.setLevel(level)


def test_every_log_line_of_a_request_carries_its_id(
    alice: Browser, sandbox: SandboxHandle, lines: list[logging.LogRecord]
) -> None:
    connection_id = start_listed(alice, "chase")
    sandbox.expire_app_state()  # so this request checks the connection with Waycore
    lines.clear()
    response = alice.get(f"/connections/{connection_id}/delegated-user")
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"rid_[0-9a-f]{20}", request_id)
    mine = [r for r in lines if r.name.startswith(("app.", "waycore"))]
    assert any("waycore GET" in r.getMessage() for r in mine)  # the client's lines too
    assert {r.request_id for r in mine} == {request_id}  # type: ignore[attr-defined]
    other = alice.get("/connections")
    assert other.headers["x-request-id"] != request_id


def test_a_proxy_request_id_is_kept_and_a_malformed_one_replaced(alice: Browser) -> None:
    kept = alice.get("/connections", headers={"X-Request-ID": "edge-7f3a9c21"})
    assert kept.headers["x-request-id"] == "edge-7f3a9c21"
    replaced = alice.get("/connections", headers={"X-Request-ID": "bad id\r\nInjected: 1"})
    assert replaced.headers["x-request-id"].startswith("rid_")


def test_the_request_id_is_the_reference_when_waycore_gave_none(
    alice: Browser,
    monkeypatch: pytest.MonkeyPatch,
    lines: list[logging.LogRecord],
) -> None:
    from store import Store

    async def broken(self: Store, tenant_id: str, limit: int) -> list[object]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Store, "open_drafts", broken)
    monkeypatch.setattr(alice.client._transport, "raise_server_exceptions", False)
    response = alice.get("/connections")
    assert response.status_code == 500
    reference = soup(response).select_one(".support .reference code").get_text(strip=True)
    (logged,) = [r for r in lines if "unhandled error" in r.getMessage()]
    assert logged.request_id == reference  # type: ignore[attr-defined]
    assert reference in logged.getMessage()


def _stderr_lines(script: str) -> list[str]:
    """What `script` printed on stderr, run in a Python process of its own (which must succeed)."""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stderr.splitlines()


def test_configured_logging_prints_the_id_on_each_line() -> None:
    """In a process of its own: the configuration replaces the process's logging."""
    script = (
        "import logging, logs\n"
        "logs.configure_logging()\n"
        "logs.bind_request_id('rid_testline')\n"
        "logging.getLogger('app.test').info('hello')\n"
        "logging.getLogger('app.access').info('GET / 200')\n"
        "logs.bind_request_id('')\n"
        "logging.getLogger('app.test').info('outside')\n"
    )
    first, access, outside = _stderr_lines(script)
    assert first.endswith("INFO app.test [rid_testline] hello")
    assert access.endswith("INFO app.access [rid_testline] GET / 200")
    assert outside.endswith("INFO app.test [-] outside")
    assert "%(request_id)s" in LOG_FORMAT


def test_the_access_line_is_the_same_with_or_without_a_record() -> None:
    """Under the app's own logging the access line skips the `LogRecord` (the costliest part of
    a poll's line); it prints what the record would, and any other handler (a host's, a test's)
    gets the record as before."""
    script = (
        "import asyncio, logging, logs\n"
        "logs.configure_logging()\n"
        "access = logging.getLogger('app.access')\n"
        "assert logs.only_handler(access) is not None\n"
        "async def app(scope, receive, send):\n"
        "    await send({'type': 'http.response.start', 'status': 204, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b''})\n"
        "async def call():\n"
        "    scope = {'type': 'http', 'method': 'GET', 'path': '/handoff',\n"
        "             'query_string': b'token=abc.def&next=/x', 'client': ('10.0.0.1', 5000),\n"
        "             'headers': [(b'x-request-id', b'edge-0123456789')]}\n"
        "    async def receive(): return {'type': 'http.request'}\n"
        "    async def send(message): pass\n"
        "    await logs.RequestIdMiddleware(app)(scope, receive, send)\n"
        "asyncio.run(call())\n"
        "logs.bind_request_id('edge-0123456789')\n"
        "access.info('%s', '10.0.0.1:5000 \"GET /handoff?token=%5Bredacted%5D&next=%2Fx\" '\n"
        "            '204 0.0 ms')\n"
        "logging.getLogger().addHandler(logging.NullHandler())\n"
        "assert logs.only_handler(access) is None\n"
    )
    direct, recorded = _stderr_lines(script)
    pattern = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (.*) \d+\.\d ms"
    direct_match, recorded_match = re.fullmatch(pattern, direct), re.fullmatch(pattern, recorded)
    assert direct_match and recorded_match, (direct, recorded)
    assert direct_match[1] == recorded_match[1]
    assert direct_match[1] == (
        'INFO app.access [edge-0123456789] 10.0.0.1:5000 "GET /handoff?token=%5Bredacted%5D'
        '&next=%2Fx" 204'
    )


def test_one_line_per_request_and_never_a_sign_in_token(
    alice: Browser, sandbox: SandboxHandle, lines: list[logging.LogRecord]
) -> None:
    connection_id = start_listed(alice, "scenario_slow")
    lines.clear()
    alice.get(
        f"/connections/{connection_id}/activation/status", htmx=True, target="activation-status"
    )
    alice.get("/handoff?token=eyJhbGciOiJIUzI1NiJ9.secret-part.sig&next=/connections")
    mine = [r for r in lines if r.levelno >= logging.INFO and not r.name.startswith("httpx")]
    assert [r.name for r in mine] == ["app.access", "app.access"]
    assert {r.msg for r in mine} == {ACCESS_FORMAT}  # a host's handler gets the fields apart
    poll, handoff = (r.getMessage() for r in mine)
    assert f'"GET /connections/{connection_id}/activation/status" 200' in poll
    assert "secret-part" not in handoff and "token=%5Bredacted%5D" in handoff


def test_a_line_reads_as_the_standard_format_would_print_it() -> None:
    """The log thread's formatter (its date and time formatted once per second) prints exactly
    what `logging.Formatter` prints, across a change of second."""
    from logs import LineFormatter

    ours, standard = LineFormatter(LOG_FORMAT), logging.Formatter(LOG_FORMAT)
    for created in (1_790_000_000.001, 1_790_000_000.999, 1_790_000_001.5, 1_790_000_001.5):
        record = logging.makeLogRecord(
            {
                "name": "app.access",
                "levelno": 20,
                "levelname": "INFO",
                "msg": "GET %s",
                "args": ("/connections",),
                "created": created,
                "msecs": (created % 1) * 1000,
                "request_id": "rid_1",
            }
        )
        assert ours.format(record) == standard.format(record)
