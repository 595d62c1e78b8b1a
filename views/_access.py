"""Shared view helpers: proving a tenant owns a connection, Post/Redirect/Get navigation, and
keeping a polled region alive when one check fails."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from host import HostUser
from store import OwnedConnection
from views import _deps, htmx
from views._errors import problem_for
from views._render import render
from waycore.errors import NotFound, WaycoreError
from waycore.models import Connection


def navigate(request: Request, url: str) -> Response:
    """Post/Redirect/Get: 303 for a plain request, an htmx client navigation otherwise."""
    if htmx.is_htmx(request):
        return htmx.client_location(url, Response(status_code=200))
    return RedirectResponse(url, status_code=303)


async def owned_connection(request: Request, user: HostUser) -> tuple[OwnedConnection, Connection]:
    """The tenant's local record and Waycore's view of the connection in the URL.

    Another tenant's (or an unknown) id is a 404 before any Waycore call. A connection Waycore
    no longer has is forgotten locally, then reported as not found."""
    connection_id = request.path_params["connection_id"]
    store = _deps.store(request)
    owned = await store.owned_connection(user.tenant.id, connection_id)
    if owned is None:
        raise HTTPException(404)
    try:
        connection = await _deps.waycore(request).get_connection(connection_id)
    except NotFound:
        await store.forget_connection(user.tenant.id, connection_id)
        raise
    return owned, connection


def poll_retry(request: Request, element_id: str, exc: WaycoreError) -> Response:
    """The polled element `element_id` again, polling the same URL after a longer pause, when
    this check could not reach Waycore (a 5xx or error fragment would replace the element and
    end the polling for good)."""
    problem = problem_for(exc, f"polling {request.url.path}")
    url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    context = {
        "poll_id": element_id,
        "poll_url": url,
        "poll_delay": 2 * _deps.settings(request).poll_interval_seconds,
        "problem": problem,
    }
    return render(request, "connections/_poll_retry.html", context, block="content")


async def owned_connection_or_retry(
    request: Request, user: HostUser, element_id: str
) -> tuple[OwnedConnection, Connection] | Response:
    """`owned_connection` for a polled region: a transient Waycore failure answers the region
    again (still polling) instead of an error page; a 404 stays a 404."""
    try:
        return await owned_connection(request, user)
    except NotFound:
        raise
    except WaycoreError as exc:
        if not htmx.is_htmx(request) or htmx.target(request) != element_id:
            raise  # not the poll itself: the usual error page
        return poll_retry(request, element_id, exc)
