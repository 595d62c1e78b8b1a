"""Demo sign-in and sign-out (`/signin`, `/signout`).

In demo mode the sign-in page lists the seeded host customers and their users. Signing in
starts a fresh server-side session (a new id and a new CSRF token, so nothing from before
sign-in carries over); signing out deletes that session row, so the old cookie is worthless even
if replayed. A host with its own authentication turns demo mode off and passes its `HostAuth`.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from host import DEMO_DIRECTORY, SESSION_ID_KEY
from security import csrf_token
from views import inputs
from views.guards import app_state, current_user
from views.render import render
from views.urls import url_for


async def signin_page(request: Request) -> Response:
    if not app_state(request).settings.demo_mode:
        raise HTTPException(404)
    user = await current_user(request)
    return render(request, "signin.html", {"tenants": DEMO_DIRECTORY.tenants(), "signed_in": user})


async def signin(request: Request) -> Response:
    settings = app_state(request).settings
    if not settings.demo_mode:
        raise HTTPException(404)
    user = DEMO_DIRECTORY.get((await inputs.form(request)).raw("user_id"))
    if user is None:
        context = {"tenants": DEMO_DIRECTORY.tenants(), "error": "Choose a user to sign in as."}
        return render(request, "signin.html", context, status=422)
    store = app_state(request).store
    old_sid = request.session.get(SESSION_ID_KEY)
    if isinstance(old_sid, str):
        await store.delete_session(old_sid)
    request.session.clear()
    sid = await store.create_session(user.id, user.tenant.id, settings.session_max_age_seconds)
    request.session[SESSION_ID_KEY] = sid
    csrf_token(request.session)
    return RedirectResponse(url_for(request, "connections"), status_code=303)


async def signout(request: Request) -> Response:
    sid = request.session.get(SESSION_ID_KEY)
    if isinstance(sid, str):
        await app_state(request).store.delete_session(sid)
    request.session.clear()
    return RedirectResponse(url_for(request, "signin_page"), status_code=303)


async def home(request: Request) -> Response:
    return RedirectResponse(url_for(request, "connections"), status_code=303)


routes = [
    Route("/", home, methods=["GET"]),
    Route("/signin", signin_page, methods=["GET"], name="signin_page"),
    Route("/signin", signin, methods=["POST"], name="signin"),
    Route("/signout", signout, methods=["POST"], name="signout"),
]
