"""Exception handlers, registered once in `create_app`.

Each renders the full error page for a normal request and just the `content` block for an htmx
request (htmx is configured to swap error statuses in, so the message shows where the user is).
Unexpected errors are logged with a reference the page shows; no stack trace, key or request
body reaches the browser.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from views import htmx
from views._deps import PermissionDenied, SignInRequired
from views._entities import EntityUnavailable
from views._errors import new_reference, problem_for
from views._render import render
from waycore.errors import NotFound, WaycoreError

log = logging.getLogger("app")


async def sign_in_required(request: Request, exc: Exception) -> Response:
    if htmx.is_htmx(request):
        response = Response(status_code=200)
        response.headers[htmx.HX_REDIRECT] = "/signin"
        return response
    return RedirectResponse("/signin", status_code=303)


async def permission_denied(request: Request, exc: Exception) -> Response:
    return render(request, "errors/403.html", {}, status=403)


async def http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return render(request, "errors/404.html", {}, status=404)
    if exc.status_code == 405:
        return render(request, "errors/404.html", {}, status=405)
    return render(
        request,
        "errors/problem.html",
        {"title": "Request refused", "message": exc.detail, "reference": None},
        status=exc.status_code,
    )


async def waycore_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WaycoreError)
    if isinstance(exc, NotFound):
        problem_for(exc, f"handling {request.method} {request.url.path}")
        return render(request, "errors/404.html", {}, status=404)
    problem = problem_for(exc, f"handling {request.method} {request.url.path}")
    return render(request, "errors/problem.html", problem.__dict__, status=502)


async def entity_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EntityUnavailable)
    problem = problem_for(exc.cause, "resolving the customer's Waycore entity")
    return render(request, "errors/entity.html", {"problem": problem}, status=503)


async def server_error(request: Request, exc: Exception) -> Response:
    reference = new_reference()
    log.error("unhandled error [reference %s]", reference, exc_info=exc)
    return render(
        request,
        "errors/problem.html",
        {
            "title": "Something went wrong",
            "message": "This page could not be shown. Nothing you entered was lost; try again, "
            "or contact support with the reference below.",
            "reference": reference,
        },
        status=500,
    )


Handler = Callable[[Request, Exception], Awaitable[Response]]
EXCEPTION_HANDLERS: Mapping[Any, Handler] = {
    SignInRequired: sign_in_required,
    PermissionDenied: permission_denied,
    HTTPException: http_exception,
    WaycoreError: waycore_error,
    EntityUnavailable: entity_unavailable,
    Exception: server_error,
}
