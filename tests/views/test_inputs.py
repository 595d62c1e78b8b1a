"""What a crafted request can put in a field, an id or a URL: control characters and invalid
UTF-8 are refused with a message (never stored or sent on), ids of the wrong shape never reach a
URL (400 or 404, never 500), every GET route answers a plain request with a page or a redirect,
and every error page carries the security headers."""

from __future__ import annotations

import sqlite3
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from config import Settings
from security import SECURITY_HEADERS
from tests.support import Browser, SandboxHandle, finish, soup, start_listed
from views.inputs import CONTROL, NOT_UTF8

CONTROL_CHARACTERS = ["\x00", "\r\n", "\n", "\t", "\x7f", "\x1b", "\x85", "\x9f", "\u2028"]
FORM = {"content-type": "application/x-www-form-urlencoded"}


def stored_text(settings: Settings) -> list[str]:
    """Every text value in the app's database."""
    values: list[str] = []
    with sqlite3.connect(settings.database_path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f"SELECT * FROM {table}"):  # noqa: S608 (names from the schema)
                values.extend(v for v in row if isinstance(v, str))
    return values


def forwarded_text(sandbox: SandboxHandle) -> str:
    return "\n".join(f"{r.path} {r.query} {r.body}" for r in sandbox.requests)


def assert_clean(settings: Settings, sandbox: SandboxHandle, *needles: str) -> None:
    for value in stored_text(settings):
        for needle in needles:
            assert needle not in value, f"{needle!r} stored in {value!r}"
    text = forwarded_text(sandbox)
    for needle in needles:
        assert needle not in text, f"{needle!r} sent to Waycore"


def raw_post(browser: Browser, path: str, body: bytes, *, htmx: bool = True) -> httpx2.Response:
    """A form body exactly as given (bytes a browser would never send)."""
    headers = dict(FORM)
    if htmx:
        headers.update({"HX-Request": "true", "HX-Target": "main", "X-CSRF-Token": browser.csrf})
    else:
        body += b"&csrf_token=" + browser.csrf.encode()
    return browser._send("POST", path, content=body, headers=headers)


def field_error(response: httpx2.Response, input_id: str) -> str:
    """The error tied to the input by `aria-describedby`, and shown in the error summary."""
    page = soup(response)
    field = page.select_one(f"#{input_id}")
    assert field is not None, response.text[:3000]
    described = field.get("aria-describedby", "").split()
    errors = [page.select_one(f"#{i}") for i in described]
    messages = [e.get_text(" ", strip=True) for e in errors if e and "field-error" in e["class"]]
    assert messages, f"no error tied to #{input_id}"
    summary = page.select_one(".error-summary[role=alert]")
    assert summary is not None
    assert summary.select_one(f"a[href='#{input_id}']") is not None
    return messages[0]


# ---------------------------------------------------------------------------- text fields


@pytest.mark.parametrize("char", CONTROL_CHARACTERS)
@pytest.mark.parametrize(
    ("field", "input_id"), [("bank_name", "bank-name"), ("portal_url", "portal-url")]
)
def test_control_characters_in_the_unlisted_bank_form_are_refused(
    alice: Browser,
    sandbox: SandboxHandle,
    settings: Settings,
    char: str,
    field: str,
    input_id: str,
) -> None:
    form = {"mode": "unlisted", "bank_name": "Harbor Bank", "portal_url": "https://hb.example/"}
    form[field] = form[field][:5] + char + form[field][5:]
    sandbox.clear()
    response = alice.post("/connections/continue", form, htmx=True)
    assert response.status_code == 422
    assert field_error(response, input_id) == CONTROL
    assert sandbox.requests == []
    assert_clean(settings, sandbox, char)


@pytest.mark.parametrize("char", CONTROL_CHARACTERS)
@pytest.mark.parametrize(
    ("field", "input_id"),
    [
        ("bank_username", "bank-username"),
        ("bank_customer_id", "bank-customer-id"),
        ("password", "bank-password"),
    ],
)
def test_control_characters_in_the_bank_issued_details_are_refused(
    alice: Browser,
    sandbox: SandboxHandle,
    settings: Settings,
    char: str,
    field: str,
    input_id: str,
) -> None:
    connection_id = start_listed(alice, "chase")
    sandbox.clear()
    response = finish(alice, connection_id, **{field: "ab" + char + "cd"})
    assert response.status_code == 422
    assert field_error(response, input_id) == CONTROL
    assert not sandbox.calls("PUT")
    assert_clean(settings, sandbox, char)


@pytest.mark.parametrize("char", ["\x00", "\r\n", "\t", "\x7f", "\x85"])
def test_control_characters_in_a_search_are_refused(
    alice: Browser, sandbox: SandboxHandle, char: str
) -> None:
    sandbox.clear()
    response = alice.get("/connections/new", params={"q": "cha" + char + "se"})
    assert response.status_code == 200
    assert field_error(response, "institution-search") == CONTROL
    fragment = alice.get(
        "/connections/institutions",
        params={"q": "ch" + char},
        htmx=True,
        target="institution-results",
    )
    assert fragment.status_code == 200
    assert sandbox.requests == []


@pytest.mark.parametrize(
    "encoded",
    [b"%FF%FEbank", b"caf%C3", b"\xff\xfe", b"%C0%AF", b"%ED%A0%80"],  # incl. overlong, surrogate
)
@pytest.mark.parametrize(
    ("field", "input_id"), [("bank_name", "bank-name"), ("portal_url", "portal-url")]
)
def test_invalid_utf8_is_refused_not_replaced(
    alice: Browser,
    sandbox: SandboxHandle,
    settings: Settings,
    encoded: bytes,
    field: str,
    input_id: str,
) -> None:
    """Starlette would read `%FF` as U+FFFD and a raw byte as Latin-1, silently."""
    values = {"bank_name": b"Harbor+Bank", "portal_url": b"https%3A%2F%2Fhb.example%2F"}
    values[field] = encoded
    body = b"mode=unlisted&" + b"&".join(k.encode() + b"=" + v for k, v in values.items())
    sandbox.clear()
    response = raw_post(alice, "/connections/continue", body)
    assert response.status_code == 422
    assert field_error(response, input_id) == NOT_UTF8
    assert sandbox.requests == []
    assert_clean(settings, sandbox, "\ufffd", "\xff")


def test_invalid_utf8_in_the_bank_issued_details_is_refused(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = start_listed(alice, "chase")
    sandbox.clear()
    body = b"bank_username=ab%FFcd&confirm_active=yes&accept_terms=yes"
    response = raw_post(alice, f"/connections/{connection_id}/finish", body)
    assert response.status_code == 422
    assert field_error(response, "bank-username") == NOT_UTF8
    assert not sandbox.calls("PUT")


def test_valid_unicode_is_kept_as_typed(alice: Browser, settings: Settings) -> None:
    name = "Caixa Geral de Dep\u00f3sitos \u9280\u884c \U0001f3e6"
    response = alice.post(
        "/connections/continue",
        {"mode": "unlisted", "bank_name": name, "portal_url": "https://cgd.example/login"},
    )
    assert response.status_code == 303
    assert name in stored_text(settings)


def test_a_form_in_another_format_is_refused_with_the_security_headers(alice: Browser) -> None:
    response = alice._send(
        "POST",
        "/connections/continue",
        files={"bank_name": ("x.txt", b"\x00\x01")},
        headers={"X-CSRF-Token": alice.csrf},
    )
    assert response.status_code == 415
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value


def test_an_oversized_form_is_refused_unread(alice: Browser, sandbox: SandboxHandle) -> None:
    sandbox.clear()
    body = (
        b"mode=unlisted&bank_name=" + b"A" * (70 * 1024) + b"&portal_url=https%3A%2F%2Fx.example%2F"
    )
    response = raw_post(alice, "/connections/continue", body)
    assert response.status_code == 413
    assert response.headers["x-frame-options"] == "DENY"
    assert sandbox.requests == []


# ---------------------------------------------------------------------------- ids


BAD_IDS = [
    "ch\x00ase",
    "chase\r\nX-Injected: 1",
    "cha\tse",
    "chase\x7f",
    "a/b",
    "..",
    "x y",
    "\u00e9",
    "%00",
    "c" * 500,
    "chase?x=1",
    "chase#x",
    "\\",
]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_a_malformed_institution_id_is_refused_before_any_url(
    alice: Browser, sandbox: SandboxHandle, bad: str
) -> None:
    sandbox.clear()
    for htmx in (False, True):
        response = alice.post("/connections/drafts", {"institution_id": bad}, htmx=htmx)
        assert response.status_code == 422
        assert "Choose your bank from the list." in soup(response).get_text()
    assert sandbox.requests == []


@pytest.mark.parametrize("bad", BAD_IDS)
def test_a_malformed_draft_id_is_not_found(
    alice: Browser, sandbox: SandboxHandle, bad: str
) -> None:
    sandbox.clear()
    assert (
        alice.post("/connections/drafts", {"institution_id": "chase", "draft_id": bad}).status_code
        == 404
    )
    assert (
        alice.post("/connections/continue", {"mode": "listed", "draft_id": bad}).status_code == 404
    )
    response = alice.get(
        "/connections/institutions", params={"q": "ch", "draft_id": bad}, htmx=True
    )
    assert response.status_code == 404
    if bad != "..":  # a client resolves `..` in a path before it is sent
        assert alice.get("/connections/drafts/" + quote(bad, safe="")).status_code == 404
    assert not [r for r in sandbox.requests if bad in r.path]


@pytest.mark.parametrize("bad", ["conn\x00x", "conn\r\nx", "conn\tx", "conn\x7fx", "\u00e9", "a b"])
@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("GET", "/sync"),
        ("POST", "/sync"),
        ("GET", "/delegated-user"),
        ("POST", "/finish"),
        ("GET", "/activation/status"),
        ("POST", "/delete"),
    ],
)
def test_a_malformed_connection_id_is_not_found_before_any_waycore_call(
    alice: Browser, sandbox: SandboxHandle, bad: str, method: str, suffix: str
) -> None:
    sandbox.clear()
    path = "/connections/" + quote(bad, safe="") + suffix
    response = alice.post(path, {}) if method == "POST" else alice.get(path)
    assert response.status_code == 404
    assert sandbox.requests == []


@pytest.mark.parametrize("cursor", ["abc\x00", "abc\r\n", "a b", "<script>", "%FF"])
def test_a_malformed_cursor_is_refused_before_any_waycore_call(
    alice: Browser, sandbox: SandboxHandle, cursor: str
) -> None:
    connection_id = start_listed(alice, "chase")
    finish(alice, connection_id)
    sandbox.advance(40)
    sandbox.clear()
    for path in (f"/connections/{connection_id}", f"/connections/{connection_id}/transactions"):
        response = alice.get(path, params={"cursor": cursor}, htmx=path.endswith("transactions"))
        assert response.status_code == 400
        assert (
            response.headers["content-security-policy"]
            == SECURITY_HEADERS["Content-Security-Policy"]
        )
    assert sandbox.requests == []


# ---------------------------------------------------------------------------- every GET route


def _get_routes(app: Starlette) -> list[Route]:
    return [r for r in app.routes if isinstance(r, Route) and "GET" in (r.methods or ())]


@pytest.fixture
def states(alice: Browser, sandbox: SandboxHandle) -> dict[str, dict[str, str]]:
    """A draft, and a connection in each state the journey table knows."""
    draft = alice.post("/connections/drafts", {"institution_id": "chase"}).headers["location"]
    draft_id = draft.split("/")[-1]
    setup = start_listed(alice, "apple_bank")
    activating = start_listed(alice, "scenario_slow")
    finish(alice, activating)
    ready = start_listed(alice, "chase")
    finish(alice, ready)
    errored = start_listed(alice, "scenario_errored")
    finish(alice, errored)
    sandbox.advance(40)
    revoked = start_listed(alice, "customers_bank")
    finish(alice, revoked)
    sandbox.advance(40)
    sandbox.set_status(revoked, "revoked")
    created = alice.post("/connections/drafts", {"institution_id": "united_bank"})
    created_draft = created.headers["location"].split("/")[-1]
    alice.post("/connections/continue", {"draft_id": created_draft, "mode": "listed"})
    return {
        name: {"connection_id": connection, "draft_id": d}
        for name, connection, d in [
            ("draft", ready, draft_id),
            ("setup", setup, created_draft),
            ("activating", activating, draft_id),
            ("ready", ready, draft_id),
            ("errored", errored, draft_id),
            ("revoked", revoked, draft_id),
        ]
    }


TARGETS = [
    None,
    "main",
    "sync-panel",
    "activation-status",
    "delegated-details",
    "transactions",
    "transactions-more",
    "institution-results",
]


def test_every_get_route_answers_a_plain_request_with_a_page_or_a_redirect(
    app: Starlette, alice: Browser, states: dict[str, dict[str, Any]]
) -> None:
    walked = set()
    for route in _get_routes(app):
        for state, params in states.items():
            path = route.path.format(**params) if "{" in route.path else route.path
            plain = alice.get(path)
            walked.add(route.path)
            # 401: the signed-out page; 404: the handoff, off without a HANDOFF_SECRET.
            expected = {200, 303, 401} | ({404} if route.path == "/handoff" else set())
            assert plain.status_code in expected, (route.path, state, plain.status_code)
            if plain.status_code == 200 and route.path not in ("/healthz", "/readyz"):
                assert soup(plain).select_one("html main#main") is not None, (route.path, state)
            for header, value in SECURITY_HEADERS.items():
                assert plain.headers.get(header) == value, (route.path, header)
            for target in TARGETS:
                fragment = alice.get(path, htmx=True, target=target or "")
                assert fragment.status_code < 500, (route.path, state, target)
            if "{" not in route.path:
                break
    assert "/connections/{connection_id}/sync" in walked
    assert len(walked) == len(_get_routes(app))


def test_a_plain_get_of_the_sync_panel_goes_to_the_connection_page(
    alice: Browser, states: dict[str, dict[str, Any]]
) -> None:
    connection_id = states["ready"]["connection_id"]
    response = alice.get(f"/connections/{connection_id}/sync")
    assert response.status_code == 303
    assert response.headers["location"] == f"/connections/{connection_id}"


# ---------------------------------------------------------------------------- error pages


def test_the_500_page_carries_the_security_headers(
    alice: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    from store import Store

    async def broken(self: Store, tenant_id: str, limit: int) -> list[object]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Store, "open_drafts", broken)
    monkeypatch.setattr(alice.client._transport, "raise_server_exceptions", False)
    for htmx in (False, True):
        response = alice.get("/connections", htmx=htmx)
        assert response.status_code == 500
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, name
        assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nowhere", 404),
        ("GET", "/connections/conn_unknown", 404),
        ("GET", "/connections/conn_unknown/finish", 404),
        ("POST", "/connections/continue", 403),
    ],
)
def test_error_pages_carry_the_security_headers(
    alice: Browser, method: str, path: str, status: int
) -> None:
    response = alice._send(method, path)
    assert response.status_code == status
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
