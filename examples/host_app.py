"""An example host product, "Ledgerly", that embeds the onboarding kit in its own pages.

Ledgerly has its own users, sign-in page, session and layout. It mounts the kit at `/banking`
with Starlette's `Mount` alone (the kit starts itself on first use), passes its own `HostAuth`
(the signed-in Ledgerly user and their company become the kit's user and tenant), and restyles
the kit's pages with a template override (`examples/host_templates/base.html`) and a stylesheet
of its own. Nothing else of the kit is changed.

    .venv/bin/python examples/host_app.py        # http://127.0.0.1:8001, over the embedded sandbox

Sign in as maria@northwind.example or sam@northwind.example (password `ledgerly-demo`), or
lee@harbor.example for another company.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sys
from dataclasses import dataclass, replace
from html import escape
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from host import HostUser, Role, Tenant  # noqa: E402
from server import create_app, settings_or_exit  # noqa: E402

HERE = Path(__file__).resolve().parent
KIT_PREFIX = "/banking"


@dataclass(frozen=True)
class Account(BaseUser):
    """A Ledgerly user: one company, one role in it."""

    id: str
    name: str
    email: str
    password_hash: str
    company_id: str
    company_name: str
    role: Role

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.name


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return salt.hex() + ":" + digest.hex()


def check_password(password: str, stored: str) -> bool:
    salt, digest = stored.split(":")
    return hmac.compare_digest(hash_password(password, bytes.fromhex(salt)), stored)


def _users() -> dict[str, Account]:
    demo = hash_password("ledgerly-demo")
    northwind, harbor = ("nw-001", "Northwind Traders"), ("hb-002", "Harbor Foods")
    accounts = [
        Account("lg-1", "Maria Lopez", "maria@northwind.example", demo, *northwind, "admin"),
        Account("lg-2", "Sam Okafor", "sam@northwind.example", demo, *northwind, "member"),
        Account("lg-3", "Lee Chan", "lee@harbor.example", demo, *harbor, "admin"),
    ]
    return {a.email: a for a in accounts}


#: Ledgerly's user table (in a real host: its own database).
USERS = _users()


class LedgerlySession(AuthenticationBackend):
    """Ledgerly's own sign-in: its session cookie names the user."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        email = conn.session.get("ledgerly_user")
        account = USERS.get(email) if isinstance(email, str) else None
        return (AuthCredentials(["authenticated"]), account) if account else None


class LedgerlyAuth:
    """The kit's `HostAuth`: the Ledgerly user already authenticated by the host's middleware
    (`scope["user"]`), with their company as the kit's tenant."""

    async def current_user(self, request: Request) -> HostUser | None:
        account = request.scope.get("user")
        if not isinstance(account, Account):
            return None
        tenant = Tenant(account.company_id, account.company_name)
        return HostUser(account.id, account.name, account.email, account.role, tenant)


def _page(title: str, body: str, account: Account | None) -> HTMLResponse:
    who = (
        f"<span>{escape(account.name)} · {escape(account.company_name)}</span>"
        ' <a href="/logout">Sign out</a>'
        if account
        else ""
    )
    return HTMLResponse(
        f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Ledgerly</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/ledgerly.css"></head>
<body><header class="ledgerly-bar"><a class="ledgerly-brand" href="/">Ledgerly</a>
<nav><a href="/">Dashboard</a> <a href="{KIT_PREFIX}/connections">Bank connections</a></nav>
<div class="ledgerly-who">{who}</div></header>
<main class="ledgerly-main">{body}</main></body></html>""",
        headers={"Cache-Control": "no-store"},
    )


async def dashboard(request: Request) -> Response:
    account = request.user if isinstance(request.user, Account) else None
    if account is None:
        return RedirectResponse("/login", status_code=303)
    body = (
        f"<h1>Welcome back, {escape(account.name)}</h1>"
        f"<p>Connect {escape(account.company_name)}'s bank to reconcile automatically: "
        f'<a href="{KIT_PREFIX}/connections">Bank connections</a>.</p>'
    )
    return _page("Dashboard", body, account)


def _next(value: str | None) -> str:
    """Only a path on this site (no scheme, host or `//`)."""
    if (
        value
        and value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
        and not urlsplit(value).netloc
    ):
        return value
    return "/"


def _login_form(next_url: str, token: str, error: str = "") -> str:
    message = f'<p class="ledgerly-error" role="alert">{error}</p>' if error else ""
    return f"""<h1>Sign in to Ledgerly</h1>{message}
<form method="post" action="/login"><input type="hidden" name="next" value="{escape(next_url)}">
<input type="hidden" name="token" value="{token}">
<label for="email">Email</label><input id="email" name="email" type="email" autocomplete="username">
<label for="password">Password</label><input id="password" name="password" type="password"
 autocomplete="current-password"><button type="submit">Sign in</button></form>"""


def _form_token(request: Request) -> str:
    token = request.session.get("ledgerly_csrf")
    if not isinstance(token, str):
        token = request.session["ledgerly_csrf"] = secrets.token_urlsafe(24)
    return token


async def login_page(request: Request) -> Response:
    next_url = _next(request.query_params.get("next"))
    return _page("Sign in", _login_form(next_url, _form_token(request)), None)


async def login(request: Request) -> Response:
    form = await request.form()
    next_url = _next(str(form.get("next", "")))
    if not hmac.compare_digest(str(form.get("token", "")), _form_token(request)):
        return _page("Sign in", _login_form(next_url, _form_token(request), "Try again."), None)
    account = USERS.get(str(form.get("email", "")).strip().lower())
    if account is None or not check_password(str(form.get("password", "")), account.password_hash):
        error = "That email and password do not match."
        return _page("Sign in", _login_form(next_url, _form_token(request), error), None)
    request.session.clear()
    request.session["ledgerly_user"] = account.email
    return RedirectResponse(next_url, status_code=303)


async def logout_page(request: Request) -> Response:
    account = request.user if isinstance(request.user, Account) else None
    body = (
        '<h1>Sign out of Ledgerly?</h1><form method="post" action="/logout">'
        f'<input type="hidden" name="token" value="{_form_token(request)}">'
        '<button type="submit">Sign out</button></form>'
    )
    return _page("Sign out", body, account)


async def logout(request: Request) -> Response:
    form = await request.form()
    if hmac.compare_digest(str(form.get("token", "")), _form_token(request)):
        request.session.clear()
    return RedirectResponse("/login", status_code=303)


def kit_settings(base: Settings) -> Settings:
    """The kit's settings inside Ledgerly: at its prefix, Ledgerly's sign-in for signed-out
    users, no demo sign-in, Ledgerly's layout and stylesheet."""
    return replace(
        base,
        root_path=KIT_PREFIX,
        demo_mode=False,
        sign_in_url="/login",
        template_overrides=str(HERE / "host_templates"),
        host_stylesheet_url="/assets/ledgerly.css",
    )


def create_host_app(kit: Settings, *, secret_key: str) -> Starlette:
    """Ledgerly, with the kit mounted at `/banking`."""
    banking = create_app(kit_settings(kit), auth_backend=LedgerlyAuth())
    host = Starlette(
        routes=[
            Route("/", dashboard),
            Route("/login", login_page, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout_page, methods=["GET"]),
            Route("/logout", logout, methods=["POST"]),
            Mount("/assets", StaticFiles(directory=HERE / "host_assets"), name="assets"),
            Mount(KIT_PREFIX, app=banking),
        ],
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=secret_key,
                session_cookie="ledgerly_session",
                same_site="lax",
            ),
            Middleware(AuthenticationMiddleware, backend=LedgerlySession()),
        ],
    )
    host.state.kit = banking
    return host


def main() -> None:
    """Serve Ledgerly on `PORT` (default 8001). The kit's settings come from the environment
    and `.env` like the kit's own (`config.load_settings`); Ledgerly's session is signed with a
    key derived from the same `SECRET_KEY`."""
    import uvicorn

    kit = settings_or_exit("examples/host_app.py")
    host_secret = hmac.new(str(kit.secret_key).encode(), b"ledgerly-session", "sha256").hexdigest()
    port = int(os.environ.get("PORT", "8001"))
    uvicorn.run(create_host_app(kit, secret_key=host_secret), host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
