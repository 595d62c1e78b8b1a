"""Shared view helpers: proving a tenant owns a connection, and Post/Redirect/Get navigation."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from host import HostUser
from store import OwnedConnection
from views import _deps, htmx
from waycore.errors import NotFound
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
