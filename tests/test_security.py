"""Sessions, CSRF, roles and response headers."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from server import create_app
from tests.support import Browser, SandboxHandle, make_settings, soup, start_listed


def session_payload(browser: Browser) -> dict[str, str]:
    raw = browser.cookies.get("onboarding_session")
    assert raw, "no session cookie"
    data = raw.split(".")[0]
    return json.loads(base64.b64decode(data + "=" * (-len(data) % 4)))


def set_cookie_header(browser: Browser, path: str = "/signin") -> str:
    browser.cookies.clear()
    response = browser.get(path)
    return response.headers["set-cookie"]


# ---------------------------------------------------------------------------- sessions


def test_pages_need_a_signed_in_user(client: TestClient) -> None:
    browser = Browser(client)
    response = browser.get("/connections")
    assert response.status_code == 303 and response.headers["location"] == "/signin"
    response = browser.get("/connections/new", htmx=True)
    assert response.headers["hx-redirect"] == "/signin"


def test_session_cookie_is_httponly_samesite_and_holds_no_identity(alice: Browser) -> None:
    header = set_cookie_header(Browser(alice.client)).lower()
    assert "httponly" in header and "samesite=lax" in header
    alice.get("/connections")
    payload = session_payload(alice)
    assert set(payload) <= {"sid", "csrf", "flash"}
    assert "alice" not in json.dumps(payload).lower()


def test_health_checks_and_assets_set_no_cookie(client: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/static/app.css"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "set-cookie" not in response.headers, path
    assert "onboarding_session=" in client.get("/signin").headers["set-cookie"]


def test_secure_flag_outside_development(tmp_path: Path) -> None:
    settings = replace(make_settings(tmp_path), session_https_only=True)
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        assert "secure" in client.get("/signin").headers["set-cookie"].lower()


def test_sign_in_rotates_the_session_and_the_csrf_token(client: TestClient) -> None:
    browser = Browser(client)
    browser.get("/signin")
    before = session_payload(browser)
    browser.sign_in("u-alice")
    after = session_payload(browser)
    assert after["csrf"] != before["csrf"]
    assert after["sid"] and after.get("sid") != before.get("sid")

    old_cookie = browser.cookies.get("onboarding_session")
    assert replay(client, old_cookie).get("/connections").status_code == 200
    browser.sign_in("u-bob")  # a second sign-in in the same browser: the old session is gone
    assert replay(client, old_cookie).get("/connections").headers.get("location") == "/signin"


def replay(client: TestClient, cookie: str) -> Browser:
    """Another browser presenting a copied session cookie."""
    browser = Browser(client)
    browser.cookies.set("onboarding_session", cookie, domain="testserver.local")
    return browser


def test_sign_out_really_ends_the_session(alice: Browser, client: TestClient) -> None:
    cookie = alice.cookies.get("onboarding_session")
    assert replay(client, cookie).get("/connections").status_code == 200  # a copy works ...
    response = alice.post("/signout")
    assert response.status_code == 303 and response.headers["location"] == "/signin"
    assert replay(client, cookie).get("/connections").headers["location"] == "/signin"  # not now


def test_a_tampered_session_cookie_is_no_session(alice: Browser, client: TestClient) -> None:
    cookie = alice.cookies.get("onboarding_session")
    assert cookie and replay(client, cookie).get("/connections").status_code == 200
    payload, signature = cookie.split(".", 1)
    data = json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.b64encode(json.dumps({**data, "sid": "x" + data["sid"]}).encode()).decode()
    for value in (f"{forged}.{signature}", cookie[:-2] + ("AA" if cookie[-2:] != "AA" else "BB")):
        response = replay(client, value).get("/connections")
        assert response.status_code == 303 and response.headers["location"] == "/signin"
    assert replay(client, cookie).get("/connections").status_code == 200


def test_a_session_cookie_expires_even_after_it_was_verified(
    alice: Browser, client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A cookie value whose signature was checked once is remembered, but only while valid."""
    import sessions

    cookie = alice.cookies.get("onboarding_session")
    assert cookie and replay(client, cookie).get("/connections").status_code == 200
    max_age = make_settings(tmp_path).session_max_age_seconds  # the fixture's settings
    later = sessions._now() + max_age + 5
    monkeypatch.setattr(sessions, "_now", lambda: later)
    response = replay(client, cookie).get("/connections")
    assert response.status_code == 303 and response.headers["location"] == "/signin"


def test_an_unknown_demo_user_cannot_sign_in(client: TestClient) -> None:
    browser = Browser(client)
    browser.get("/signin")
    response = browser.post("/signin", {"user_id": "u-mallory"})
    assert response.status_code == 422
    assert "Choose a user" in soup(response).select_one(".alert-danger").get_text()


def test_sign_in_page_lists_two_tenants_with_roles(client: TestClient) -> None:
    page = soup(Browser(client).get("/signin"))
    tenants = [h.get_text(strip=True) for h in page.select("section.tenant h2")]
    assert len(tenants) >= 2
    roles = {b.select_one(".role").get_text(strip=True) for b in page.select("button.user-choice")}
    assert roles == {"admin", "member", "viewer"}


# ---------------------------------------------------------------------------- CSRF


def test_state_changes_without_the_csrf_token_are_refused(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    response = alice.post("/connections/drafts", {"institution_id": "chase"}, csrf=False)
    assert response.status_code == 403
    response = alice.post("/connections/drafts", {"institution_id": "chase"}, htmx=True, csrf=False)
    assert response.status_code == 403
    response = alice.post("/connections/drafts", {"institution_id": "chase", "csrf_token": "x"})
    assert response.status_code == 403
    assert sandbox.calls("GET", "/v1/institutions/") == []
    assert not soup(alice.get("/connections")).select("[data-draft-id]")


def test_a_refused_htmx_request_gets_a_fragment_not_a_page(alice: Browser) -> None:
    response = alice.post("/connections/drafts", {"institution_id": "chase"}, htmx=True, csrf=False)
    assert response.status_code == 403
    assert "<html" not in response.text and "<main" not in response.text
    assert "refused" in soup(response).select_one(".alert-danger h1").get_text()


def test_the_htmx_header_token_is_accepted(alice: Browser) -> None:
    response = alice.post("/connections/drafts", {"institution_id": "chase"}, htmx=True)
    assert response.status_code == 200 and "hx-location" in response.headers


def test_the_page_hands_htmx_its_token_through_hx_headers(alice: Browser) -> None:
    body = soup(alice.get("/connections")).select_one("body")
    assert json.loads(body["hx-headers"]) == {"X-CSRF-Token": alice.csrf}


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
    ],
)
def test_cross_site_posts_are_refused_even_with_a_token(
    alice: Browser, headers: dict[str, str]
) -> None:
    response = alice.post("/connections/drafts", {"institution_id": "chase"}, headers=headers)
    assert response.status_code == 403


def test_same_origin_posts_pass(alice: Browser) -> None:
    response = alice.post(
        "/connections/drafts",
        {"institution_id": "chase"},
        headers={"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"},
    )
    assert response.status_code == 303


# ---------------------------------------------------------------------------- roles


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("GET", "/connections/new", None),
        ("GET", "/connections/institutions?q=chase", None),
        ("POST", "/connections/drafts", {"institution_id": "chase"}),
        ("POST", "/connections/continue", {"mode": "unlisted", "bank_name": "X"}),
    ],
)
def test_viewers_cannot_start_connections(
    carol: Browser, sandbox: SandboxHandle, method: str, path: str, data: dict[str, str] | None
) -> None:
    sandbox.clear()
    response = carol.get(path) if method == "GET" else carol.post(path, data)
    assert response.status_code == 403
    assert "permission" in soup(response).select_one("h1").get_text()
    assert sandbox.requests == []


def test_viewers_cannot_finish_setup(
    alice: Browser, carol: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = start_listed(alice, "chase")
    sandbox.clear()
    assert carol.get(f"/connections/{connection_id}/finish").status_code == 403
    form = {"confirm_active": "yes", "accept_terms": "yes"}
    assert carol.post(f"/connections/{connection_id}/finish", form).status_code == 403
    assert sandbox.requests == []
    # ... but may read the setup
    assert carol.get(f"/connections/{connection_id}/delegated-user").status_code == 200


# ---------------------------------------------------------------------------- headers


def test_pages_carry_a_strict_csp_and_no_store(alice: Browser) -> None:
    response = alice.get("/connections")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


def test_htmx_is_configured_without_eval_and_with_error_swaps(alice: Browser) -> None:
    meta = soup(alice.get("/connections")).select_one("meta[name=htmx-config]")
    config = json.loads(meta["content"])
    assert config["allowEval"] is False and config["allowScriptTags"] is False
    assert config["selfRequestsOnly"] is True and config["historyCacheSize"] == 0
    assert {"code": "[45]..", "swap": True, "error": True} in config["responseHandling"]


def test_no_inline_scripts_or_styles_in_pages(alice: Browser, sandbox: SandboxHandle) -> None:
    connection_id = start_listed(alice, "chase")
    for path in ["/connections", "/connections/new", f"/connections/{connection_id}/finish"]:
        page = soup(alice.get(path))
        assert all(script.get("src") for script in page.select("script"))
        assert not page.select("style") and not page.select("[style]")
        assert not [a for tag in page.find_all(True) for a in tag.attrs if a.startswith("on")]


def test_the_webhook_secret_is_not_in_the_app_states_repr(tmp_path: Path) -> None:
    from starlette.datastructures import Secret

    from views.guards import STATE_KEY

    secret = "whsec_" + "s" * 32
    settings = make_settings(tmp_path, webhook_secret=Secret(secret))
    with TestClient(create_app(settings)) as client:
        state = client.app_state[STATE_KEY]
        assert state.webhook_secret == secret
        assert secret not in repr(state)
