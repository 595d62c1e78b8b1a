"""Fuzz every form field and query parameter the app reads with long, binary, unicode and markup
values, as a plain request and as an htmx one: no answer is a 5xx, no markup comes back
unescaped, and nothing that should not be is stored or sent to Waycore (control characters,
U+FFFD from a silent decoding, over-long values, the password).

The fields fuzzed are checked against the forms the pages really render, so a new field cannot
be left out unnoticed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_from_bytes

import httpx2
import pytest

from config import Settings
from onboarding.service import MAX_BANK_NAME, MAX_CREDENTIAL, MAX_URL
from tests.support import Browser, SandboxHandle, finish, soup, start_listed
from tests.views.test_inputs import raw_post, stored_text
from views.inputs import CONTROL_CHARACTERS

SENTINEL_PASSWORD = "fuzz-password-\u00e9-7d1c"
MARKUP = '<script>alert("x")</script>'
#: Text values (sent percent-encoded as UTF-8) ...
TEXT_PAYLOADS = [
    "A" * 10_000,
    "\u00e9" * 3_000,
    "\x00\x01\x02\x03\x7f\x80\x9f",
    "line\r\nbreak",
    "tab\there",
    "Zo\u00eb \u9280\u884c \U0001f3e6 \u202erlt\u202c \u200b",
    "\ufeff\u00ad\u0301",
    MARKUP,
    '"><img src=x onerror=alert(1)>',
    "{{ 7*7 }} {% raw %}",
    "'; DROP TABLE drafts; --",
    "https://secure.chase.com/%00/../..;/login",
    "",
    " ",
]
#: ... and raw bytes that are not UTF-8 at all.
BYTE_PAYLOADS = [b"%FF%FE%FD", b"\xff\xfe\x00", b"%C0%80", b"%ED%A0%80", b"%", b"%G1"]


@dataclass(frozen=True)
class Form:
    method: str
    path: str
    fields: dict[str, str]
    query: bool = False


@pytest.fixture
def forms(alice: Browser, sandbox: SandboxHandle) -> list[Form]:
    """Every form and query string the app reads, each with valid values to start from."""
    draft = alice.post("/connections/drafts", {"institution_id": "chase"}).headers["location"]
    draft_id = draft.split("/")[-1]
    setup = start_listed(alice, "apple_bank")
    ready = start_listed(alice, "customers_bank")
    finish(alice, ready)
    reauth = start_listed(alice, "united_bank")
    finish(alice, reauth)
    correct = start_listed(alice, "scenario_invalid_config")
    finish(alice, correct)
    sandbox.advance(40)
    sandbox.set_status(reauth, "reauthRequired", "ready")
    unlisted = {"mode": "unlisted", "bank_name": "Harbor Bank", "portal_url": "https://hb.example/"}
    return [
        Form("POST", "/signin", {"user_id": "u-alice"}),
        Form("GET", "/connections/new", {"q": "chase"}, query=True),
        Form("GET", "/connections/institutions", {"q": "chase", "draft_id": draft_id}, query=True),
        Form(
            "POST",
            "/connections/drafts",
            {"institution_id": "chase", "q": "ch", "draft_id": draft_id},
        ),
        Form("GET", f"/connections/drafts/{draft_id}", {"q": "chase", "change": "1"}, query=True),
        Form("POST", f"/connections/drafts/{draft_id}/discard", {}),
        Form(
            "POST",
            "/connections/continue",
            {"mode": "listed", "draft_id": draft_id, "portal_url": ""},
        ),
        Form("POST", "/connections/continue", {**unlisted, "not_listed": "yes"}),
        Form(
            "POST",
            f"/connections/{setup}/finish",
            {
                "bank_username": "u",
                "bank_customer_id": "c",
                "password": SENTINEL_PASSWORD,
                "confirm_active": "yes",
                "accept_terms": "yes",
            },
        ),
        Form("GET", f"/connections/{ready}", {"cursor": "abc"}, query=True),
        Form("GET", f"/connections/{ready}/transactions", {"cursor": "abc"}, query=True),
        Form("GET", f"/connections/{ready}/sync", {"after": "sync"}, query=True),
        Form("POST", f"/connections/{ready}/sync", {}),
        Form("POST", f"/connections/{ready}/delete", {"confirm": "x", "replaced_by": "conn_x"}),
        Form("GET", f"/connections/{ready}/delete", {"replaced_by": "conn_x"}, query=True),
        Form("GET", "/connections", {"from": "finish_setup", "drafts": "40"}, query=True),
        Form("GET", f"/connections/{reauth}/status", {"seen": "errored", "n": "3"}, query=True),
        Form("GET", f"/connections/{correct}/activation/status", {"seen": "x", "n": "1"}, True),
        Form(
            "POST",
            f"/connections/{reauth}/reauth",
            {"bank_username": "u", "bank_customer_id": "c", "password": SENTINEL_PASSWORD},
        ),
        Form("POST", f"/connections/{correct}/correct", {"portal_url": "https://x.example/"}),
        Form("GET", "/handoff", {"token": "t", "next": "/connections"}, query=True),
    ]


def test_the_fuzzed_fields_are_every_field_the_pages_render(
    alice: Browser, forms: list[Form], sandbox: SandboxHandle
) -> None:
    ready = next(f.path.split("/")[2] for f in forms if f.path.endswith("/sync"))
    setup = next(f.path.split("/")[2] for f in forms if f.path.endswith("/finish"))
    draft = next(f.path for f in forms if f.path.startswith("/connections/drafts/") and f.query)
    pages = [
        "/signin",
        "/connections",
        "/connections/new?q=chase",
        draft,
        draft + "?change=1&q=chase",
        f"/connections/{setup}/delegated-user",
        f"/connections/{setup}/finish",
        f"/connections/{ready}",
        f"/connections/{ready}/delete",
        next(f.path for f in forms if f.path.endswith("/reauth")),
        next(f.path for f in forms if f.path.endswith("/correct")),
    ]
    rendered: set[str] = set()
    for page in pages:
        html = soup(alice.get(page))
        for element in html.select("form [name]"):
            rendered.add(element["name"])
    # A portal that looks like a listed bank: the offer's forms.
    offer = alice.post(
        "/connections/continue",
        {"mode": "unlisted", "bank_name": "x", "portal_url": "https://chase.com/"},
    )
    rendered |= {e["name"] for e in soup(offer).select("form [name]")}
    fuzzed = {name for form in forms for name in form.fields} | {"csrf_token"}
    assert rendered <= fuzzed, f"fields no fuzz case covers: {rendered - fuzzed}"


def _send(browser: Browser, form: Form, fields: dict[str, str], *, htmx: bool) -> httpx2.Response:
    if form.query:
        return browser.get(form.path, params=fields, htmx=htmx)
    return browser.post(form.path, fields, htmx=htmx)


def _send_bytes(browser: Browser, form: Form, name: str, raw: bytes, htmx: bool) -> httpx2.Response:
    encoded = [
        quote(k).encode() + b"=" + (raw if k == name else quote(v).encode())
        for k, v in form.fields.items()
    ]
    body = b"&".join(encoded)
    if form.query:  # raw bytes cannot travel in a URL: they arrive percent-encoded
        return browser.get(form.path + "?" + quote_from_bytes(body, safe="%&="), htmx=htmx)
    return raw_post(browser, form.path, body, htmx=htmx)


def _cases(forms: list[Form]) -> Iterator[tuple[Form, str, Any]]:
    for form in forms:
        for name in form.fields:
            for payload in [*TEXT_PAYLOADS, *BYTE_PAYLOADS]:
                yield form, name, payload


def _check(response: httpx2.Response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code}\n{response.text[:1500]}"
    assert MARKUP not in response.text, f"{what}: markup came back unescaped"
    assert "onerror=alert" not in response.text.replace("onerror=alert(1)&gt;", ""), what
    assert SENTINEL_PASSWORD not in response.text, f"{what}: the password came back"


def test_fuzz_every_field_and_query_parameter(
    alice: Browser, forms: list[Form], sandbox: SandboxHandle, settings: Settings
) -> None:
    sent = 0
    for form, name, payload in _cases(forms):
        for htmx in (False, True):
            if isinstance(payload, bytes):
                response = _send_bytes(alice, form, name, payload, htmx)
            else:
                response = _send(alice, form, {**form.fields, name: payload}, htmx=htmx)
            _check(response, f"{form.method} {form.path} {name}={payload!r:.40} htmx={htmx}")
            sent += 1
            if form.path == "/signin":  # signing in again starts a new session: keep Alice's
                alice.sign_in("u-alice")
    assert sent == 2 * sum(len(f.fields) for f in forms) * (len(TEXT_PAYLOADS) + len(BYTE_PAYLOADS))

    for value in stored_text(settings):
        assert not CONTROL_CHARACTERS.search(value), f"control character stored: {value!r:.80}"
        assert "\ufffd" not in value, f"a silently replaced byte was stored: {value!r:.80}"
        assert len(value) <= max(MAX_URL, 200), f"an over-long value was stored: {value!r:.80}"
        assert SENTINEL_PASSWORD not in value
    with open(settings.database_path, "rb") as db:
        assert SENTINEL_PASSWORD.encode() not in db.read()
    for recorded in sandbox.requests:
        text = f"{recorded.path} {recorded.query} {recorded.body}"
        assert not CONTROL_CHARACTERS.search(recorded.path + str(recorded.query)), text[:200]
        body = recorded.body if isinstance(recorded.body, dict) else {}
        for key, value in body.items():
            if isinstance(value, str):
                assert not CONTROL_CHARACTERS.search(value), f"{key} sent with a control character"
                assert "\ufffd" not in value, f"{key} sent with a replaced byte"
                assert len(value) <= max(MAX_URL, MAX_CREDENTIAL, MAX_BANK_NAME), key
        assert "Harbor Bank" not in text  # the typed bank name is never sent
