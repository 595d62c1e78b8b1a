"""Embedding: served at a prefix behind a proxy that rewrites `Host`, the host's sign-in handed
over with a signed token, a signed-out user sent to the host's sign-in, the demo sign-in only
where it is safe, and designers' template and stylesheet overrides."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from bs4 import BeautifulSoup
from starlette.applications import Starlette
from starlette.datastructures import Secret
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

import handoff
from config import Settings, load_settings
from server import ROOT, create_app
from tests.support import SandboxHandle, make_settings

PREFIX = "/banking"
PUBLIC = "https://books.example.com"
SECRET = "handoff-secret-" + "h" * 60  # long enough for HS512 too (the "wrong alg" case)
HOST_SIGN_IN = "https://books.example.com/login"
URL_ATTRIBUTES = ("href", "src", "action", "hx-get", "hx-post")


def behind_proxy(app: ASGIApp, prefix: str = PREFIX) -> ASGIApp:
    """What the app sees behind nginx's `location /banking/ { proxy_pass http://app:8000/; }`
    (prefix stripped, `Host` rewritten to the upstream's) with uvicorn's `--root-path /banking`
    (which puts the prefix back in front of the path and in `root_path`)."""

    async def proxy(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if not scope["path"].startswith(prefix + "/"):
                raise AssertionError(f"a request left the prefix: {scope['path']}")
            headers = [(k, v) for k, v in scope["headers"] if k != b"host"]
            scope = {**scope, "headers": [*headers, (b"host", b"127.0.0.1:8000")]}
            scope["root_path"] = prefix
        await app(scope, receive, send)

    return proxy


#: A navigation from the host's own pages (its link, or its backend's redirect), as browsers
#: mark it.
FROM_HOST = {"Sec-Fetch-Site": "same-origin"}


def token(**overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "host-user-17",
        "name": "Priya Shah",
        "email": "priya@northwind.example",
        "tenant": {"id": "northwind-001", "name": "Northwind Traders"},
        "role": "admin",
        "aud": "waycore-onboarding",
        "iat": now,
        "exp": now + 120,
        "jti": f"jti-{time.monotonic_ns()}",
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.fixture
def kit_settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        root_path=PREFIX,
        public_origins=(PUBLIC,),
        handoff_secret=Secret(SECRET),
        demo_mode=False,
        sign_in_url=HOST_SIGN_IN,
    )


class Walker:
    """A browser behind the proxy: every URL it meets must stay under the prefix."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""
        self.seen: list[str] = []

    def check(self, response: httpx2.Response) -> httpx2.Response:
        for name in ("location", "hx-location", "hx-redirect"):
            value = response.headers.get(name)
            if value:
                path = json.loads(value)["path"] if name == "hx-location" else value
                assert path.startswith((PREFIX + "/", HOST_SIGN_IN + "?")), (name, path)
        for cookie in response.headers.get_list("set-cookie"):
            assert f"path={PREFIX}" in cookie.lower(), cookie
        if "text/html" in response.headers.get("content-type", ""):
            page = BeautifulSoup(response.text, "html.parser")
            for element in page.find_all(True):
                for attribute in URL_ATTRIBUTES:
                    value = element.get(attribute)
                    if isinstance(value, str) and value.startswith("/"):
                        assert value.startswith(PREFIX + "/"), (element.name, attribute, value)
                        self.seen.append(value)
            field = page.select_one("input[name=csrf_token]")
            if field is not None:
                self.csrf = str(field["value"])
        return response

    def get(self, path: str, **headers: str) -> httpx2.Response:
        return self.check(self.client.get(path, headers=headers))

    def post(self, path: str, data: dict[str, str], **headers: str) -> httpx2.Response:
        headers = {"Origin": PUBLIC, "X-CSRF-Token": self.csrf, **headers}
        return self.check(self.client.post(path, data=data, headers=headers))

    def follow(self, response: httpx2.Response) -> httpx2.Response:
        while True:
            if "hx-location" in response.headers:
                path = json.loads(response.headers["hx-location"])["path"]
                response = self.get(path, **{"HX-Request": "true", "HX-Target": "main"})
            elif response.status_code == 303:
                response = self.get(response.headers["location"])
            else:
                return response


@pytest.fixture
def kit(kit_settings: Settings) -> Starlette:
    return create_app(kit_settings)


@pytest.fixture
def walker(kit: Starlette) -> Iterator[Walker]:
    with TestClient(
        behind_proxy(kit), base_url="http://books.example.com", follow_redirects=False
    ) as client:
        yield Walker(client)


def test_the_whole_journey_stays_under_the_prefix_behind_a_host_rewriting_proxy(
    walker: Walker, kit: Starlette
) -> None:
    sandbox = SandboxHandle(walker.client, kit)
    opened = walker.get(f"{PREFIX}/handoff?token={token()}&next={PREFIX}/connections", **FROM_HOST)
    page = walker.follow(opened)
    assert page.status_code == 200 and "Northwind Traders" in page.text
    page = walker.get(f"{PREFIX}/connections/new?q=chase")
    assert 'action="/banking/connections/drafts"' in page.text
    htmx = {"HX-Request": "true", "HX-Target": "main"}
    results = walker.get(f"{PREFIX}/connections/institutions?q=chase", **htmx)
    assert results.status_code == 200
    chosen = walker.follow(
        walker.post(f"{PREFIX}/connections/drafts", {"institution_id": "chase"}, **htmx)
    )
    draft_id = re.search(r'name="draft_id" value="([^"]+)"', chosen.text).group(1)  # type: ignore[union-attr]
    created = walker.post(
        f"{PREFIX}/connections/continue", {"draft_id": draft_id, "mode": "listed"}, **htmx
    )
    delegated = walker.follow(created)
    assert "Create a delegated user" in delegated.text
    connection_id = re.search(r"/connections/(conn_\w+)/", delegated.text).group(1)  # type: ignore[union-attr]
    walker.get(f"{PREFIX}/connections/{connection_id}/finish")
    finished = walker.post(
        f"{PREFIX}/connections/{connection_id}/finish",
        {"confirm_active": "yes", "accept_terms": "yes"},
        **htmx,
    )
    assert "Activating" in walker.follow(finished).text
    sandbox.advance(31)
    polled = walker.get(
        f"{PREFIX}/connections/{connection_id}/activation/status",
        **{"HX-Request": "true", "HX-Target": "activation-status"},
    )
    detail = walker.follow(polled)
    assert "Accounts" in detail.text and "Connected" in detail.text
    assert walker.get(f"{PREFIX}/static/app.css").status_code == 200
    assert any(url.startswith(f"{PREFIX}/static/") for url in walker.seen)
    signed_out = walker.post(f"{PREFIX}/signout", {})
    assert signed_out.headers["location"].startswith("https://books.example.com/login?next=")


def test_behind_a_host_rewriting_proxy_origin_is_checked_against_the_public_origin(
    tmp_path: Path,
) -> None:
    """Without `Sec-Fetch-Site`, `Origin` decides: the configured public origin passes; with no
    public origin configured, the rewritten `Host` does not match and the POST is refused."""
    for origins, expected in (((PUBLIC,), 303), ((), 403)):
        settings = make_settings(
            tmp_path,
            root_path=PREFIX,
            public_origins=origins,
            database_path=str(tmp_path / f"app{len(origins)}.sqlite3"),
        )
        app = create_app(settings)
        with TestClient(behind_proxy(app), base_url=PUBLIC, follow_redirects=False) as client:
            page = client.get(f"{PREFIX}/signin")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
            response = client.post(
                f"{PREFIX}/signin",
                data={"user_id": "u-alice", "csrf_token": csrf},
                headers={"Origin": PUBLIC},
            )
            assert response.status_code == expected
            refused = client.post(
                f"{PREFIX}/signin",
                data={"user_id": "u-alice", "csrf_token": csrf},
                headers={"Origin": "https://evil.example"},
            )
            assert refused.status_code == 403


def test_sec_fetch_site_same_origin_is_trusted_whatever_the_host(walker: Walker) -> None:
    walker.follow(walker.get(f"{PREFIX}/handoff?token={token()}", **FROM_HOST))
    response = walker.post(
        f"{PREFIX}/connections/drafts",
        {"institution_id": "chase"},
        Origin="https://somewhere.else",
        **{"Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 303
    cross = walker.post(
        f"{PREFIX}/connections/drafts",
        {"institution_id": "chase"},
        Origin=PUBLIC,
        **{"Sec-Fetch-Site": "cross-site"},
    )
    assert cross.status_code == 403


def test_asset_urls_never_follow_the_host_header(kit: Starlette) -> None:
    with TestClient(kit, base_url="http://evil.example", follow_redirects=False) as client:
        page = client.get("/signed-out")
        assert "evil.example" not in page.text
        scripts = [s["src"] for s in BeautifulSoup(page.text, "html.parser").select("script[src]")]
        assert scripts and all(src.startswith("/static/") for src in scripts)


# ---------------------------------------------------------------------------- handoff


def _handoff(
    walker: Walker, value: str, next_url: str = "", *, fetch_site: str | None = "same-origin"
) -> httpx2.Response:
    query = f"token={value}" + (f"&next={next_url}" if next_url else "")
    headers = {} if fetch_site is None else {"Sec-Fetch-Site": fetch_site}
    return walker.get(f"{PREFIX}/handoff?{query}", **headers)


def test_a_handoff_starts_a_session_for_that_user_and_tenant(
    walker: Walker, kit: Starlette
) -> None:
    response = _handoff(walker, token(), f"{PREFIX}/connections/new")
    assert (
        response.status_code == 303 and response.headers["location"] == f"{PREFIX}/connections/new"
    )
    page = walker.get(f"{PREFIX}/connections")
    assert "Priya Shah" in page.text and "Northwind Traders" in page.text
    sandbox = SandboxHandle(walker.client, kit)
    deadline = time.monotonic() + 5
    while not sandbox.calls("POST", "/v1/entities") and time.monotonic() < deadline:
        time.sleep(0.02)
    (created,) = sandbox.calls("POST", "/v1/entities")
    assert created.body["externalEntityId"] == "northwind-001"  # the tenant id


@pytest.mark.parametrize(
    "next_url",
    ["https://evil.example/", "//evil.example/x", "/elsewhere", "/banking/../x", "javascript:1"],
)
def test_a_handoff_never_redirects_outside_the_app(walker: Walker, next_url: str) -> None:
    response = _handoff(walker, token(), next_url)
    assert response.headers["location"] == f"{PREFIX}/connections"


def _none_token() -> str:
    header = {"alg": "none", "typ": "JWT"}
    now = int(time.time())
    body = {
        "sub": "x",
        "name": "X",
        "tenant": {"id": "t", "name": "T"},
        "role": "admin",
        "aud": "waycore-onboarding",
        "iat": now,
        "exp": now + 60,
        "jti": "none-1",
    }
    import base64

    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part(header)}.{part(body)}."


REFUSED = {
    "bad signature": lambda: jwt.encode(
        jwt.decode(token(), options={"verify_signature": False}),
        "another-secret-" + "x" * 40,
        algorithm="HS256",
    ),
    "alg none": _none_token,
    "alg HS512": lambda: jwt.encode(
        jwt.decode(token(), options={"verify_signature": False}), SECRET, algorithm="HS512"
    ),
    "wrong audience": lambda: token(aud="another-app"),
    "expired": lambda: token(iat=int(time.time()) - 200, exp=int(time.time()) - 10),
    "issued in the future": lambda: token(iat=int(time.time()) + 60, exp=int(time.time()) + 120),
    "lives too long": lambda: token(exp=int(time.time()) + 301),
    "unknown role": lambda: token(role="owner"),
    "no jti": lambda: token(jti=None),
    "no tenant": lambda: token(tenant=None),
    "garbage": lambda: "not-a-token",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_bad_handoff_gets_a_clear_page_and_no_session(walker: Walker, case: str) -> None:
    response = _handoff(walker, REFUSED[case]())
    assert response.status_code == 400
    assert "cannot be used" in BeautifulSoup(response.text, "html.parser").select_one("h1").text
    after = walker.get(f"{PREFIX}/connections")
    assert after.status_code == 303  # still signed out


def test_a_handoff_token_works_once(walker: Walker) -> None:
    once = token()
    assert _handoff(walker, once).status_code == 303
    walker.client.cookies.clear()
    assert _handoff(walker, once).status_code == 400
    assert walker.get(f"{PREFIX}/connections").status_code == 303


@pytest.mark.parametrize("fetch_site", ["cross-site", "none", None])
def test_a_handoff_opened_from_elsewhere_asks_who_to_continue_as(
    walker: Walker, fetch_site: str | None
) -> None:
    """A link from another site, an e-mail or a pasted URL could carry a token minted for
    someone else's account (login CSRF): nobody is signed in until the person confirms."""
    minted = token()
    offered = _handoff(walker, minted, f"{PREFIX}/connections/new", fetch_site=fetch_site)
    assert offered.status_code == 200
    page = BeautifulSoup(offered.text, "html.parser")
    assert "Priya Shah" in page.select_one(".lede").text
    assert "Northwind Traders" in page.select_one(".lede").text
    form = page.select_one(f"form[method=post][action='{PREFIX}/handoff']")
    assert form is not None and form.select_one("input[name=token]")["value"] == minted
    assert walker.get(f"{PREFIX}/connections").status_code == 303  # not signed in yet

    fields = {field["name"]: field["value"] for field in form.select("input[type=hidden]")}
    confirmed = walker.post(f"{PREFIX}/handoff", fields, **FROM_HOST)
    assert confirmed.status_code == 303
    assert confirmed.headers["location"] == f"{PREFIX}/connections/new"
    assert "Priya Shah" in walker.get(f"{PREFIX}/connections").text

    again = walker.post(f"{PREFIX}/handoff", fields, **FROM_HOST)  # the token was spent
    assert again.status_code == 400


def test_a_handoff_confirmation_must_come_from_the_kits_own_page(walker: Walker) -> None:
    offered = _handoff(walker, token(), fetch_site="cross-site")
    form = BeautifulSoup(offered.text, "html.parser").select_one("form[method=post]")
    fields = {field["name"]: field["value"] for field in form.select("input[type=hidden]")}
    forged = walker.post(f"{PREFIX}/handoff", fields, **{"Sec-Fetch-Site": "cross-site"})
    assert forged.status_code == 403
    assert walker.get(f"{PREFIX}/connections").status_code == 303


def test_a_refused_handoff_leaves_the_current_session_alone(walker: Walker) -> None:
    assert _handoff(walker, token()).status_code == 303
    assert _handoff(walker, "not-a-token", fetch_site="cross-site").status_code == 400
    assert "Priya Shah" in walker.get(f"{PREFIX}/connections").text


def test_a_token_within_the_leeway_is_accepted() -> None:
    now = time.time()
    minted = handoff.mint(
        SECRET,
        sub="u",
        name="U",
        tenant_id="t",
        tenant_name="T",
        role="viewer",
        jti="j",
        now=now + 20,
        lifetime=60,
    )
    assert handoff.verify(minted, SECRET, now=now).user.role == "viewer"


# ---------------------------------------------------------------------------- signed out


def test_signed_out_goes_to_the_hosts_sign_in_with_the_page_it_wanted(walker: Walker) -> None:
    response = walker.get(f"{PREFIX}/connections/new?q=chase")
    assert response.status_code == 303
    assert response.headers["location"] == (
        "https://books.example.com/login?next=%2Fbanking%2Fconnections%2Fnew%3Fq%3Dchase"
    )
    hx = walker.get(f"{PREFIX}/connections", **{"HX-Request": "true"})
    assert hx.headers["hx-redirect"].startswith("https://books.example.com/login?next=")


def test_signed_out_htmx_request_comes_back_to_the_page_it_was_made_from(walker: Walker) -> None:
    page = f"https://books.example.com{PREFIX}/connections/conn_0123456789abcdef?tab=balances"
    poll = walker.get(
        f"{PREFIX}/connections/conn_0123456789abcdef/sync",
        **{"HX-Request": "true", "HX-Current-URL": page},
    )
    assert poll.headers["hx-redirect"] == (
        "https://books.example.com/login?next="
        "%2Fbanking%2Fconnections%2Fconn_0123456789abcdef%3Ftab%3Dbalances"
    )
    # A page outside the kit's prefix is not a place to come back to: the list instead.
    elsewhere = walker.get(
        f"{PREFIX}/connections/conn_0123456789abcdef/sync",
        **{"HX-Request": "true", "HX-Current-URL": "https://books.example.com/invoices"},
    )
    assert elsewhere.headers["hx-redirect"] == (
        "https://books.example.com/login?next=%2Fbanking%2Fconnections"
    )


def test_signed_out_with_no_sign_in_page_says_so(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, demo_mode=False))
    with TestClient(app, follow_redirects=False) as client:
        response = client.get("/connections")
        assert response.headers["location"] == "/signed-out"
        page = client.get("/signed-out")
        assert page.status_code == 401 and "signed out" in page.text
        assert client.get("/signin").status_code == 404


# ---------------------------------------------------------------------------- demo mode


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("SECRET_KEY", "s" * 40)
    for name in ("WAYCORE_BASE_URL", "WAYCORE_API_KEY", "DEMO_MODE", "WAYCORE_SETUP_GUIDES"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_demo_sign_in_is_off_with_a_real_waycore_unless_asked_for(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.env"
    assert load_settings(env_file=missing).demo_mode  # the embedded sandbox
    env.setenv("WAYCORE_BASE_URL", "https://api.waycore.com")
    env.setenv("WAYCORE_API_KEY", "way_live_abc_def")
    assert not load_settings(env_file=missing).demo_mode
    env.setenv("DEMO_MODE", "true")
    assert load_settings(env_file=missing).demo_mode


def test_demo_mode_with_a_real_waycore_is_announced_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import httpx

    settings = make_settings(tmp_path, waycore_base_url="https://api.waycore.test", demo_mode=True)
    transport = httpx.MockTransport(lambda request: httpx.Response(404))
    caplog.set_level(logging.WARNING, logger="app")
    with TestClient(create_app(settings, waycore_transport=transport)):
        pass
    assert any("DEMO_MODE is on with a real Waycore" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------- designers


@pytest.fixture
def overrides(tmp_path: Path) -> Path:
    folder = tmp_path / "overrides"
    (folder / "connections").mkdir(parents=True)
    (folder / "base.html").write_text(
        '{% extends "_layout.html" %}\n'
        '{% block header %}<header class="acme-chrome">Acme Books</header>{% endblock %}\n'
    )
    (folder / "connections" / "_status_badge.html").write_text(
        '<span class="badge acme-badge" data-status="{{ connection.status }}">'
        "{{ status_view(connection).label }}</span>"
    )
    return folder


def test_overrides_and_the_host_stylesheet_are_used_and_fragments_still_swap(
    tmp_path: Path, overrides: Path
) -> None:
    from tests.support import Browser, finish, soup, start_listed

    settings = make_settings(
        tmp_path, template_overrides=str(overrides), host_stylesheet_url="/brand/kit.css"
    )
    with TestClient(create_app(settings), follow_redirects=False) as client:
        alice = Browser(client)
        alice.sign_in("u-alice")
        page = soup(alice.get("/connections"))
        assert page.select_one("header.acme-chrome").get_text() == "Acme Books"
        assert page.select_one("header.host-bar") is None
        sheets = [link["href"] for link in page.select("link[rel=stylesheet]")]
        assert sheets == ["/static/app.css", "/brand/kit.css"]  # the host's after the app's
        assert page.select_one("main#main[hx-boost=true][hx-target='#main']") is not None
        fragment = alice.get("/connections/new", htmx=True)
        assert "<html" not in fragment.text and "acme-chrome" not in fragment.text
        assert soup(fragment).select_one("h1").get_text(strip=True) == "Connect your bank"
        connection_id = start_listed(alice, "scenario_slow")
        finish(alice, connection_id)
        polled = alice.get(
            f"/connections/{connection_id}/activation/status", htmx=True, target="activation-status"
        )
        region = soup(polled).select_one("#activation-status")
        assert region is not None and region.select_one(".acme-badge") is not None
        assert "acme-chrome" not in polled.text


def test_a_status_badge_shows_the_state_and_nothing_of_the_connection(tmp_path: Path) -> None:
    """The badge is rendered once per status and kind and shown on every connection in that
    state: an override naming the connection's id or bank gets neither, of any connection (a
    link in it still works)."""
    from tests.support import Browser, finish, soup, start_listed

    folder = tmp_path / "overrides"
    (folder / "connections").mkdir(parents=True)
    (folder / "connections" / "_status_badge.html").write_text(
        '<span class="badge nosy" data-status="{{ connection.status }}" '
        'data-kind="{{ connection.kind }}">[{{ connection.id }}|{{ connection.institution_name }}]'
        "{{ status_view(connection).label }}<a href=\"{{ url_for('connections') }}\">all</a></span>"
    )
    settings = make_settings(tmp_path, template_overrides=str(folder))
    with TestClient(create_app(settings), follow_redirects=False) as client:
        alice = Browser(client)
        alice.sign_in("u-alice")
        ids = [start_listed(alice, "scenario_slow"), start_listed(alice, "chase")]
        for connection_id in ids:
            finish(alice, connection_id)
        listing = soup(alice.get("/connections"))
        rows = {row["data-connection-id"]: row for row in listing.select("[data-connection-id]")}
        assert set(ids) <= set(rows)
        badges = [rows[connection_id].select_one(".nosy") for connection_id in ids]
        badges.append(soup(alice.get(f"/connections/{ids[1]}/activation")).select_one(".nosy"))
        for badge in badges:
            assert (badge["data-status"], badge["data-kind"]) == ("pendingActivation", "setup")
            shown = badge.get_text()
            assert shown.endswith("]Activatingall")
            assert badge.select_one("a")["href"] == "/connections"
            assert not any(connection_id in shown for connection_id in ids)
            assert "Chase" not in shown and "Slow" not in shown


def test_a_shared_region_shows_no_viewer_whatever_an_override_asks(tmp_path: Path) -> None:
    """The search region is rendered once for everyone searching the same: an override that
    puts a CSRF field and the user's name in it (as the built-in template did before it was
    shared) shows neither of one viewer to another."""
    from tests.support import Browser, soup

    folder = tmp_path / "overrides"
    (folder / "connections").mkdir(parents=True)
    built_in = (ROOT / "templates" / "connections" / "choose_bank.html").read_text()
    guarded = "{% if not token_in_header %}{{ csrf_field() }}{% endif %}"
    assert guarded in built_in
    nosy = '{{ csrf_field() }}<span class="nosy">{{ user.name }}|{{ user.tenant.name }}</span>'
    (folder / "connections" / "choose_bank.html").write_text(built_in.replace(guarded, nosy))
    settings = make_settings(tmp_path, template_overrides=str(folder))
    with TestClient(create_app(settings), follow_redirects=False) as client:
        alice, dana = Browser(client), Browser(client)
        alice.sign_in("u-alice")
        dana.sign_in("u-dana")
        for browser in (alice, dana):
            response = browser.get(
                "/connections/institutions?q=bank", htmx=True, target="institution-results"
            )
            region = soup(response)
            assert region.select("button.option")
            assert region.select_one(".nosy").get_text() == "|"
            assert region.select_one("input[name=csrf_token]") is None
            assert alice.csrf not in response.text and dana.csrf not in response.text
        page = soup(dana.get("/connections/new?q=bank"))  # the page itself is Dana's own
        assert page.select_one(".nosy").get_text() == "Dana Admin|Globex Treasury Inc"
        assert page.select_one("#institution-results input[name=csrf_token]")["value"] == dana.csrf


@pytest.mark.parametrize("reload", [True, False])
def test_an_edited_template_shows_at_once_only_with_template_reload(
    tmp_path: Path, overrides: Path, reload: bool
) -> None:
    from tests.support import Browser, soup

    settings = make_settings(tmp_path, template_overrides=str(overrides), template_reload=reload)
    with TestClient(create_app(settings), follow_redirects=False) as client:
        alice = Browser(client)
        alice.sign_in("u-alice")
        assert soup(alice.get("/connections")).select_one("header.acme-chrome") is not None
        base = overrides / "base.html"
        base.write_text(base.read_text().replace("acme-chrome", "acme-chrome-v2"))
        later = base.stat().st_mtime + 5  # a later modification time, whatever the clock's grain
        os.utime(base, (later, later))
        page = soup(alice.get("/connections"))
        assert (page.select_one("header.acme-chrome-v2") is not None) is reload
        assert (page.select_one("header.acme-chrome") is not None) is not reload


def test_an_edited_shared_partial_shows_at_once_with_template_reload(tmp_path: Path) -> None:
    """Renderings reused for everyone (the search suggestions) follow an edited template too."""
    from tests.support import Browser, soup

    folder = tmp_path / "overrides"
    (folder / "connections").mkdir(parents=True)
    options = folder / "connections" / "_institution_options.html"
    built_in = (ROOT / "templates" / "connections" / "_institution_options.html").read_text()
    options.write_text(built_in.replace('class="listbox"', 'class="listbox acme-v1"'))
    settings = make_settings(tmp_path, template_overrides=str(folder), template_reload=True)
    with TestClient(create_app(settings), follow_redirects=False) as client:
        alice = Browser(client)
        alice.sign_in("u-alice")

        def listbox_classes() -> list[str]:
            response = alice.get(
                "/connections/institutions?q=bank", htmx=True, target="institution-results"
            )
            classes: list[str] = soup(response).select_one("[role=listbox]")["class"]
            return classes

        assert "acme-v1" in listbox_classes()
        options.write_text(built_in.replace('class="listbox"', 'class="listbox acme-v2"'))
        later = options.stat().st_mtime + 5
        os.utime(options, (later, later))
        assert "acme-v2" in listbox_classes()


def test_a_stylesheet_from_another_origin_is_refused(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("HOST_STYLESHEET_URL", "https://cdn.example/kit.css")
    with pytest.raises(ValueError, match="same-origin"):
        load_settings(env_file=tmp_path / "missing.env")


def test_settings_replace_keeps_the_prefix_rules(tmp_path: Path) -> None:
    assert replace(make_settings(tmp_path), root_path="/banking").root_path == "/banking"
