"""Signing in and out: the demo sign-in (`/signin`), the host's sign-in handoff (`/handoff`),
sign-out (`/signout`), and where a signed-out user is sent.

Every sign-in starts a fresh server-side session (a new id and a new CSRF token, so nothing from
before sign-in carries over); signing out deletes that session row, so the old cookie is
worthless even if replayed.
- Demo mode (the embedded default) lists the seeded host customers and their users.
- The handoff (`HANDOFF_SECRET` set) takes a short-lived token the host's backend signed
  (`handoff.py`), once, and redirects to `next` when it is a path under this app.
- Otherwise a signed-out user is sent to the host's sign-in page (`SIGN_IN_URL`, with `?next=`),
  or shown a page saying to sign in through the host.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode, urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

import handoff
from host import DEMO_DIRECTORY, SESSION_ID_KEY, HostUser
from security import csrf_token
from store import SessionUser
from views import htmx, inputs
from views.guards import app_state, current_user
from views.render import render
from views.urls import url_for

log = logging.getLogger("app.auth")


async def start_session(request: Request, user: HostUser) -> None:
    """Sign `user` in here: the old session (if any) is deleted, a new one is started."""
    state = app_state(request)
    old_sid = request.session.get(SESSION_ID_KEY)
    if isinstance(old_sid, str):
        await state.store.delete_session(old_sid)
    request.session.clear()
    record = SessionUser(
        user.id, user.name, user.email, user.role, user.tenant.id, user.tenant.name
    )
    sid = await state.store.create_session(record, state.settings.session_max_age_seconds)
    request.session[SESSION_ID_KEY] = sid
    csrf_token(request.session)


async def signin_page(request: Request) -> Response:
    if not app_state(request).settings.demo_mode:
        raise HTTPException(404)
    user = await current_user(request)
    return render(request, "signin.html", {"tenants": DEMO_DIRECTORY.tenants(), "signed_in": user})


async def signin(request: Request) -> Response:
    if not app_state(request).settings.demo_mode:
        raise HTTPException(404)
    user = DEMO_DIRECTORY.get((await inputs.form(request)).raw("user_id"))
    if user is None:
        context = {"tenants": DEMO_DIRECTORY.tenants(), "error": "Choose a user to sign in as."}
        return render(request, "signin.html", context, status=422)
    await start_session(request, user)
    return RedirectResponse(url_for(request, "connections"), status_code=303)


def safe_next(request: Request, value: str | None) -> str:
    """`value` when it is a path under this app (no scheme, host or `//`); else the list."""
    home = url_for(request, "connections")
    if not value or len(value) > 2000 or any(ord(c) < 32 or c == "\\" for c in value):
        return home
    parts = urlsplit(value)
    prefix = str(request.scope.get("root_path", "")).rstrip("/")
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return home
    if prefix and not (parts.path == prefix or parts.path.startswith(prefix + "/")):
        return home
    if "/../" in parts.path + "/" or parts.path.endswith("/.."):
        return home
    return value


#: `Sec-Fetch-Site` of a navigation that came from the host's own pages (a link or its
#: backend's redirect on the same site): the token is used at once.
FROM_THE_HOST = frozenset({"same-origin", "same-site"})


async def handoff_signin(request: Request) -> Response:
    """`GET /handoff?token=...&next=...`: the host's signed sign-in, used once.

    Opened from the host's own pages, it signs in at once. Opened from anywhere else (another
    site, an e-mail, a pasted link, or a browser that does not say), it first asks the person
    to confirm who they continue as: otherwise anyone could send a token minted for their own
    account and sign a victim in to it (login CSRF). A refused token leaves any current
    session as it was."""
    settings = app_state(request).settings
    if settings.handoff_secret is None:
        raise HTTPException(404)
    token = request.query_params.get("token", "")
    wanted = safe_next(request, request.query_params.get("next"))
    try:
        signed = handoff.verify(token, str(settings.handoff_secret))
    except handoff.HandoffRefused as exc:
        return _refused(request, exc)
    if request.headers.get("sec-fetch-site") not in FROM_THE_HOST:
        context = {
            "person": signed.user,
            "token": token,
            "next": wanted,
            "signed_in": await current_user(request),
        }
        return render(request, "handoff_confirm.html", context)
    return await _use_token(request, signed, wanted)


async def handoff_confirm(request: Request) -> Response:
    """`POST /handoff`: the person confirmed the sign-in a link from elsewhere offered."""
    settings = app_state(request).settings
    if settings.handoff_secret is None:
        raise HTTPException(404)
    fields = await inputs.form(request)
    token, wanted = fields.raw("token"), safe_next(request, fields.raw("next"))
    try:
        signed = handoff.verify(token or "", str(settings.handoff_secret))
    except handoff.HandoffRefused as exc:
        return _refused(request, exc)
    return await _use_token(request, signed, wanted)


async def _use_token(request: Request, signed: handoff.Handoff, wanted: str) -> Response:
    """Spend the token's id (once, across instances) and start the session it names."""
    if not await app_state(request).store.claim_token(signed.jti, signed.expires_at):
        return _refused(request, handoff.HandoffRefused("token already used"))
    await start_session(request, signed.user)
    log.info("signed in %s (%s) by handoff", signed.user.id, signed.user.tenant.id)
    return RedirectResponse(wanted, 303)


def _refused(request: Request, exc: handoff.HandoffRefused) -> Response:
    log.warning("refused a sign-in handoff: %s", exc)
    return render(request, "errors/handoff.html", {}, status=400)


async def signout(request: Request) -> Response:
    sid = request.session.get(SESSION_ID_KEY)
    if isinstance(sid, str):
        await app_state(request).store.delete_session(sid)
    request.session.clear()
    return RedirectResponse(sign_in_url(request, url_for(request, "connections")), 303)


def sign_in_url(request: Request, wanted: str) -> str:
    """Where to sign in: the demo sign-in page; the host's sign-in page (`SIGN_IN_URL`) with the
    page wanted as `next`; or this app's page saying to sign in through the host."""
    settings = app_state(request).settings
    if settings.demo_mode:
        return url_for(request, "signin_page")
    if settings.sign_in_url:
        separator = "&" if urlsplit(settings.sign_in_url).query else "?"
        return f"{settings.sign_in_url}{separator}{urlencode({'next': wanted})}"
    return url_for(request, "signed_out")


async def signed_out(request: Request) -> Response:
    """Signed out, with no sign-in of this app's own to offer: sign in through the host."""
    return render(request, "errors/signed_out.html", {}, status=401)


def sign_in_redirect(request: Request) -> Response:
    """Send a signed-out request to sign in (a full page load even from htmx: the sign-in page is
    not a fragment of this one), remembering the page to come back to: the one asked for, or
    for an htmx request the page it was made from (`HX-Current-URL`); a plain form post cannot
    be replayed, so it comes back to the list."""
    wanted: str | None = None
    if htmx.is_htmx(request):
        page = urlsplit(request.headers.get("HX-Current-URL", ""))
        wanted = page.path + (f"?{page.query}" if page.query else "")
    elif request.method == "GET":
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return htmx.full_redirect(request, sign_in_url(request, safe_next(request, wanted)))


async def home(request: Request) -> Response:
    return RedirectResponse(url_for(request, "connections"), status_code=303)


routes = [
    Route("/", home, methods=["GET"]),
    Route("/signin", signin_page, methods=["GET"], name="signin_page"),
    Route("/signin", signin, methods=["POST"], name="signin"),
    Route("/handoff", handoff_signin, methods=["GET"], name="handoff"),
    Route("/handoff", handoff_confirm, methods=["POST"], name="handoff_confirm"),
    Route("/signed-out", signed_out, methods=["GET"], name="signed_out"),
    Route("/signout", signout, methods=["POST"], name="signout"),
]
