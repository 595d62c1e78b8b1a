"""Helpers for app tests: a signed-in browser over Starlette's TestClient, and a handle on the
embedded sandbox (its request record, clock and faults), driven on the app's own event loop."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import httpx2
from bs4 import BeautifulSoup
from starlette.applications import Starlette
from starlette.datastructures import Secret
from starlette.testclient import TestClient

from config import Settings
from onboarding.audit import AuditEntry, AuditTrail
from onboarding.events import HostEvent, HostEvents
from store import Store
from views.guards import STATE_KEY
from waycore.sandbox import Sandbox

#: The embedded sandbox's root key in tests: it must never reach a browser.
ROOT_KEY = "way_test_suitekey_9f8e7d6c5b4a39281706"
SECRET_KEY = "test-secret-key-" + "k" * 32
TENANT_ACME = "acme-manufacturing"
TENANT_GLOBEX = "globex-treasury"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    settings = Settings(
        secret_key=Secret(SECRET_KEY),
        database_path=str(tmp_path / "app.sqlite3"),
        waycore_api_key=Secret(ROOT_KEY),
        sandbox_database=":memory:",
        sandbox_activation_seconds=30.0,
        setup_guides={"customers_bank": "https://docs.waycore.com/user-setup/customers_bank"},
        # Status reads are answered at once here (a held read would wait out its hold in a
        # test); tests/views/test_live.py turns long-poll on.
        long_poll_seconds=0.0,
    )
    return replace(settings, **overrides)


class RecordedEvents(HostEvents):
    """Host events, kept in a list (and logged, as the real ones are)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.emitted: list[HostEvent] = []

    async def emit(self, event: HostEvent) -> None:
        await super().emit(event)
        self.emitted.append(event)

    def types(self) -> list[str]:
        return [str(e.type) for e in self.emitted]


class RecordedAudit(AuditTrail):
    """Audit entries, kept in a list (and logged, as the real ones are)."""

    def __init__(self, store: Store | None = None) -> None:
        super().__init__(store)
        self.entries: list[AuditEntry] = []

    async def _write(self, entry: AuditEntry) -> None:
        await super()._write(entry)
        self.entries.append(entry)

    def actions(self) -> list[str]:
        return [str(e.action) for e in self.entries]


def soup(response: httpx2.Response) -> BeautifulSoup:
    return BeautifulSoup(response.text, "html.parser")


def text_of(response: httpx2.Response, selector: str) -> str:
    element = soup(response).select_one(selector)
    assert element is not None, f"no {selector!r} in:\n{response.text[:2000]}"
    return " ".join(element.get_text(" ").split())


class Browser:
    """One signed-in browser: keeps cookies, sends the CSRF token like the pages do."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""
        # Each browser has its own cookie jar, so several users can share one running app.
        self.cookies = type(client.cookies)()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        self.client.cookies = self.cookies
        try:
            return self.client.request(method, path, **kwargs)
        finally:
            self.cookies = type(self.client.cookies)(self.client.cookies)

    def _remember_csrf(self, response: httpx2.Response) -> None:
        match = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
        if match:
            self.csrf = match.group(1)

    def sign_in(self, user_id: str) -> httpx2.Response:
        self._remember_csrf(self._send("GET", "/signin"))
        response = self._send(
            "POST",
            "/signin",
            data={"user_id": user_id, "csrf_token": self.csrf},
            follow_redirects=True,
        )
        self._remember_csrf(response)
        self.settle()
        return response

    def settle(self) -> None:
        """Wait for the app's background work (the tenant's entity resolution, started by the
        connections page), so a test's next request or assertion does not race it."""
        state = self.client.app_state.get(STATE_KEY)
        if state is not None and self.client.portal is not None:
            self.client.portal.call(state.entities.settled)

    def get(
        self, path: str, *, htmx: bool = False, target: str | None = None, **kwargs: Any
    ) -> httpx2.Response:
        headers = dict(kwargs.pop("headers", {}))
        if htmx:
            headers["HX-Request"] = "true"
            headers["HX-Target"] = target or "main"
        response = self._send("GET", path, headers=headers, **kwargs)
        self._remember_csrf(response)
        return response

    def post(
        self,
        path: str,
        data: dict[str, Any] | None = None,
        *,
        htmx: bool = False,
        target: str | None = None,
        csrf: bool = True,
        **kwargs: Any,
    ) -> httpx2.Response:
        headers = dict(kwargs.pop("headers", {}))
        form = dict(data or {})
        if htmx:
            headers["HX-Request"] = "true"
            headers["HX-Target"] = target or "main"
            if csrf:
                headers["X-CSRF-Token"] = self.csrf
        elif csrf:
            form.setdefault("csrf_token", self.csrf)
        response = self._send("POST", path, data=form, headers=headers, **kwargs)
        self._remember_csrf(response)
        return response


class SandboxHandle:
    """The embedded sandbox of a running app, driven on the app's event loop."""

    def __init__(self, client: TestClient, app: Starlette) -> None:
        self.client = client
        self.app = app
        self.sandbox: Sandbox = app.state.sandbox

    @property
    def requests(self) -> list[Any]:
        return self.sandbox.requests

    def calls(self, method: str | None = None, path_prefix: str = "/v1/") -> list[Any]:
        return [
            r
            for r in self.sandbox.requests
            if (method is None or r.method == method) and r.path.startswith(path_prefix)
        ]

    def clear(self) -> None:
        self.sandbox.clear_requests()

    def advance(self, seconds: float) -> None:
        """Move the sandbox's clock on. The app's own clock does not move with it, so what the
        app last saw of each connection is treated as old (as it would be that much later)."""
        assert self.client.portal is not None
        self.client.portal.call(self.sandbox.advance_clock, seconds)
        self.expire_app_state()

    def expire_app_state(self) -> None:
        """The app checks every connection with Waycore on its next read (no webhook here)."""
        # The app's lifespan state; mounted in a host, the state it started on first use.
        state = self.client.app_state.get(STATE_KEY) or getattr(self.app.state, "runtime", {}).get(
            STATE_KEY
        )
        if state is not None:
            assert self.client.portal is not None
            self.client.portal.call(state.live.expire)
            state.waycore.forget_cached()

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the sandbox's `/_sandbox/*` or `/v1` API with the root key."""

        async def call() -> Any:
            transport = httpx.ASGITransport(app=self.sandbox.app)
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://sandbox",
                headers={"Authorization": f"Bearer {ROOT_KEY}"},
            ) as http:
                response = await http.request(method, path, json=body)
                return response.status_code, (response.json() if response.content else None)

        assert self.client.portal is not None
        return self.client.portal.call(call)

    def fault(self, **body: Any) -> None:
        status, _ = self.control("POST", "/_sandbox/faults", body)
        assert status == 201
        self.expire_app_state()  # the next read checks with Waycore, and meets the fault

    def set_status(self, connection_id: str, status: str, kind: str | None = None) -> None:
        body = {"status": status} if kind is None else {"status": status, "kind": kind}
        code, _ = self.control("PUT", f"/_sandbox/connections/{connection_id}/status", body)
        assert code == 200
        self.expire_app_state()  # changed behind the app's back, with no webhook to tell it


def connection_id_from(response: httpx2.Response) -> str:
    """The connection id in the URL a step navigated to (303 Location or HX-Location)."""
    location = response.headers.get("location") or response.headers.get("hx-location", "")
    match = re.search(r"/connections/(conn_[A-Za-z0-9]+)", location or str(response.url))
    assert match, f"no connection id in {location!r} / {response.url}"
    return match.group(1)


def start_listed(browser: Browser, institution_id: str = "chase", **form: str) -> str:
    """Choose a listed bank and continue; returns the connection id."""
    response = browser.post("/connections/drafts", {"institution_id": institution_id})
    assert response.status_code == 303, response.text
    draft_id = response.headers["location"].split("/")[-1].split("?")[0]
    response = browser.post(
        "/connections/continue", {"draft_id": draft_id, "mode": "listed", **form}
    )
    assert response.status_code == 303, response.text
    return connection_id_from(response)


def start_unlisted(browser: Browser, bank_name: str, portal_url: str) -> str:
    response = browser.post(
        "/connections/continue",
        {"mode": "unlisted", "bank_name": bank_name, "portal_url": portal_url},
    )
    assert response.status_code == 303, response.text
    return connection_id_from(response)


def finish(browser: Browser, connection_id: str, **fields: str) -> httpx2.Response:
    form = {"confirm_active": "yes", "accept_terms": "yes", **fields}
    return browser.post(f"/connections/{connection_id}/finish", form)


def all_text(responses: Iterator[httpx2.Response]) -> str:
    parts = []
    for response in responses:
        parts.append(response.text)
        parts.extend(f"{k}: {v}" for k, v in response.headers.items())
    return "\n".join(parts)
