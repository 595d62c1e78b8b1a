"""One test for each implementation constraint of the integrator's guide.

API key in no response; the browser's `entityId` ignored; `requestedInstitutionName` never sent;
credentials skipped when blank; a sentinel password absent from the database file, the logs and
every page; `DELETE` only after confirmation; `/v1` paths only; another tenant's ids answer 404
with no Waycore call.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from config import Settings
from server import create_app
from tests.support import (
    ROOT_KEY,
    Browser,
    SandboxHandle,
    connection_id_from,
    finish,
    make_settings,
    soup,
    start_listed,
    start_unlisted,
)
from views.guards import STATE_KEY
from waycore.sandbox import Sandbox, SandboxConfig

SENTINEL_PASSWORD = "Sentinel-Pa55word-4a1f9c"


class Recorder:
    """Keeps every response a browser got: bodies, headers and decoded cookies."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.responses: list[httpx.Response] = []

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        response = self.browser.get(path, **kwargs)  # type: ignore[arg-type]
        self.responses.append(response)
        return response

    def post(
        self, path: str, data: dict[str, str] | None = None, **kwargs: object
    ) -> httpx.Response:
        response = self.browser.post(path, data, **kwargs)  # type: ignore[arg-type]
        self.responses.append(response)
        return response

    def everything(self) -> str:
        parts: list[str] = []
        for response in self.responses:
            parts.append(response.text)
            parts.extend(f"{name}: {value}" for name, value in response.headers.items())
        for value in self.browser.cookies.values():
            payload = value.split(".")[0]
            parts.append(base64.b64decode(payload + "=" * (-len(payload) % 4)).decode())
        return "\n".join(parts)


def walk_journey(rec: Recorder, sandbox: SandboxHandle, password: str = "") -> str:
    """Every screen of a listed-bank journey, through delete; returns the connection id."""
    rec.get("/connections")
    rec.get("/connections/new?q=chase")
    rec.get("/connections/institutions?q=cha", htmx=True, target="institution-results")
    draft = rec.post("/connections/drafts", {"institution_id": "chase"}).headers["location"]
    rec.get(draft)
    created = rec.post(
        "/connections/continue", {"draft_id": draft.split("/")[-1], "mode": "listed"}
    )
    connection_id = connection_id_from(created)
    rec.get(f"/connections/{connection_id}/delegated-user")
    rec.get(f"/connections/{connection_id}/finish")
    form = {"bank_username": "ops", "password": password}
    rec.post(f"/connections/{connection_id}/finish", form)  # missing confirmations: re-rendered
    rec.post(
        f"/connections/{connection_id}/finish",
        {**form, "confirm_active": "yes", "accept_terms": "yes"},
    )
    rec.get(f"/connections/{connection_id}/activation")
    rec.get(f"/connections/{connection_id}/activation/status", htmx=True)
    sandbox.advance(36)
    rec.get(f"/connections/{connection_id}/activation/status", htmx=True)
    detail = rec.get(f"/connections/{connection_id}")
    assert detail.status_code == 200
    rec.post(f"/connections/{connection_id}/sync", htmx=True, target="sync-panel")
    rec.get(f"/connections/{connection_id}/sync", htmx=True, target="sync-panel")
    rec.get(f"/connections/{connection_id}/delete")
    rec.post(f"/connections/{connection_id}/delete", {"confirm": "delete"})
    rec.get("/connections")
    return connection_id


def test_the_api_key_is_in_no_response_header_cookie_or_error_page(
    alice: Browser, sandbox: SandboxHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rec = Recorder(alice)
    walk_journey(rec, sandbox)
    # Configuration errors from Waycore (401/403) and an outage still show no key.
    for status in (401, 403, 500):
        sandbox.fault(mode="error", status=status, count=3, pathPrefix="/v1/institutions")
        rec.get("/connections/new?q=chase")
    sandbox.fault(mode="error", status=401, count=1, pathPrefix="/v1/connections")
    rec.get("/connections")
    assert any("not set up correctly" in r.text for r in rec.responses)
    everything = rec.everything()
    assert ROOT_KEY not in everything
    assert ROOT_KEY.split("_")[-1] not in everything
    assert "Bearer" not in everything
    for name in ("app.js", "app.css", "vendor/htmx-2.0.11.min.js"):
        assert ROOT_KEY not in alice.get(f"/static/{name}").text
    assert ROOT_KEY not in caplog.text


def test_an_entity_id_sent_by_the_browser_is_ignored(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    _, other = sandbox.control("POST", "/v1/entities", {"externalEntityId": "someone-else"})
    draft = alice.post("/connections/drafts", {"institution_id": "chase"}).headers["location"]
    alice.post(
        "/connections/continue",
        {
            "draft_id": draft.split("/")[-1],
            "mode": "listed",
            "entityId": other["entityId"],
            "entity_id": other["entityId"],
        },
    )
    (create,) = sandbox.calls("POST", "/v1/connections")
    _, mine = sandbox.control("GET", "/v1/entities?externalEntityId=acme-manufacturing")
    assert create.body["entityId"] == mine["data"][0]["entityId"] != other["entityId"]


def test_requested_institution_name_is_never_sent(alice: Browser, sandbox: SandboxHandle) -> None:
    connection_id = start_unlisted(alice, "Harbour Credit Union", "https://hb.example.org/login")
    finish(alice, connection_id)
    assert sandbox.calls("POST", "/v1/connections")
    for recorded in sandbox.requests:
        assert "requestedInstitutionName" not in str(recorded.body)
        assert "Harbour Credit Union" not in str(recorded.body) + str(recorded.query)


def test_credentials_are_skipped_when_every_field_is_blank(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = start_listed(alice, "chase")
    sandbox.clear()
    response = finish(alice, connection_id, bank_username=" ", bank_customer_id="", password="")
    assert response.status_code == 303
    assert [c.path for c in sandbox.calls("PUT")] == [
        f"/v1/connections/{connection_id}/setupCompletion"
    ]


def test_a_sentinel_password_is_in_no_database_file_log_or_page(
    alice: Browser,
    sandbox: SandboxHandle,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    rec = Recorder(alice)
    walk_journey(rec, sandbox, password=SENTINEL_PASSWORD)
    # It did reach Waycore, exactly once, on the credentials call.
    (credentials,) = [c for c in sandbox.calls("PUT") if c.path.endswith("/credentials")]
    assert credentials.body["password"] == "[redacted]"  # the sandbox's record redacts it
    assert SENTINEL_PASSWORD not in rec.everything()
    assert SENTINEL_PASSWORD not in caplog.text
    for record in caplog.records:
        assert SENTINEL_PASSWORD not in str(record.args)
    database = Path(settings.database_path)
    files = [p for p in database.parent.iterdir() if p.name.startswith(database.name)]
    assert files
    for path in files:  # the file, its WAL and shared memory
        assert SENTINEL_PASSWORD.encode() not in path.read_bytes()


def test_delete_reaches_waycore_only_after_the_confirmation(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = start_listed(alice, "chase")
    finish(alice, connection_id)
    sandbox.advance(36)
    for path in ("", "/delete", "/delegated-user", "/activation"):
        alice.get(f"/connections/{connection_id}{path}")
    alice.post(f"/connections/{connection_id}/delete", {"confirm": "yes"})
    alice.post(f"/connections/{connection_id}/delete", {}, htmx=True)
    alice.post("/connections/drafts/whatever/discard")
    assert sandbox.calls("DELETE") == []
    alice.post(f"/connections/{connection_id}/delete", {"confirm": "delete"})
    assert [c.path for c in sandbox.calls("DELETE")] == [f"/v1/connections/{connection_id}"]


class RecordingTransport(httpx.AsyncBaseTransport):
    """Sees every request the app's Waycore client sends, before the sandbox answers it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return await self.inner.handle_async_request(request)


@pytest.fixture
def recorded_app(tmp_path: Path) -> Iterator[tuple[Browser, RecordingTransport, Sandbox]]:
    sandbox = Sandbox(SandboxConfig(api_key=ROOT_KEY, activation_seconds=30))
    transport = RecordingTransport(httpx.ASGITransport(app=sandbox.app))
    app = create_app(make_settings(tmp_path), waycore_transport=transport)
    with TestClient(app, follow_redirects=False) as client:
        assert client.portal is not None
        client.portal.call(sandbox.start)
        browser = Browser(client)
        browser.sign_in("u-alice")
        yield browser, transport, sandbox
        client.portal.call(sandbox.stop)


def test_only_v1_paths_reach_waycore(
    recorded_app: tuple[Browser, RecordingTransport, Sandbox],
) -> None:
    browser, transport, sandbox = recorded_app

    class Handle:
        def advance(self, seconds: float) -> None:
            assert browser.client.portal is not None
            browser.client.portal.call(sandbox.advance_clock, seconds)
            store = browser.client.app_state[STATE_KEY].store
            browser.client.portal.call(store.expire_state)  # the app's clock stood still

    walk_journey(Recorder(browser), Handle())  # type: ignore[arg-type]
    start_unlisted(browser, "Other Bank", "https://ib.otherbank.example/login?x=1")
    methods = {request.method for request in transport.seen}
    assert methods >= {"GET", "POST", "PUT", "DELETE"}
    for request in transport.seen:
        assert request.url.path.startswith("/v1/"), request.url
        assert request.url.host == "api.waycore.test"
        assert request.headers["authorization"] == f"Bearer {ROOT_KEY}"


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("GET", "/connections/{c}", None),
        ("GET", "/connections/{c}/delegated-user", None),
        ("GET", "/connections/{c}/finish", None),
        ("POST", "/connections/{c}/finish", {"confirm_active": "yes", "accept_terms": "yes"}),
        ("GET", "/connections/{c}/activation", None),
        ("GET", "/connections/{c}/activation/status", None),
        ("GET", "/connections/{c}/transactions", None),
        ("GET", "/connections/{c}/sync", None),
        ("POST", "/connections/{c}/sync", {}),
        ("GET", "/connections/{c}/delete", None),
        ("POST", "/connections/{c}/delete", {"confirm": "delete"}),
        ("GET", "/connections/drafts/{d}", None),
        ("POST", "/connections/drafts/{d}/discard", {}),
        ("POST", "/connections/continue", {"draft_id": "{d}", "mode": "listed"}),
    ],
)
def test_another_tenants_ids_answer_404_with_no_waycore_call(
    alice: Browser,
    dana: Browser,
    sandbox: SandboxHandle,
    method: str,
    path: str,
    data: dict[str, str] | None,
) -> None:
    connection_id = start_listed(alice, "chase")
    draft = alice.post("/connections/drafts", {"institution_id": "apple_bank"})
    draft_id = draft.headers["location"].split("/")[-1]
    url = path.format(c=connection_id, d=draft_id)
    form = {k: v.format(d=draft_id) for k, v in (data or {}).items()}
    sandbox.clear()
    response = dana.get(url) if method == "GET" else dana.post(url, form)
    assert response.status_code == 404
    assert sandbox.requests == []
    # and Alice's things are untouched
    assert alice.get(f"/connections/drafts/{draft_id}").status_code == 200
    assert alice.get(f"/connections/{connection_id}/delegated-user").status_code == 200


def test_the_password_is_sent_once_even_when_waycore_fails(
    alice: Browser, sandbox: SandboxHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    connection_id = start_listed(alice, "chase")
    path = f"/v1/connections/{connection_id}/credentials"
    sandbox.fault(mode="error", status=503, count=2, pathPrefix=path)
    response = finish(alice, connection_id, password=SENTINEL_PASSWORD)
    assert response.status_code == 200  # the step again, with the problem
    puts = [c for c in sandbox.calls("PUT") if c.path.endswith("/credentials")]
    assert len(puts) == 1 and puts[0].status == 503
    page = soup(response)
    assert page.select_one(".alert-danger .reference code") is not None
    assert "enter the password again" in page.select_one("#bank-password-again").get_text()
    assert not page.select_one("#bank-password").has_attr("aria-invalid")
    assert page.select_one("#bank-password")["value"] == ""
    assert SENTINEL_PASSWORD not in response.text and SENTINEL_PASSWORD not in caplog.text
