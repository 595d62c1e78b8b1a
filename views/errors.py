"""Errors, handled in one place: Waycore failures as user-safe problems, and the exception
handlers `create_app` registers.

`problem_for()` follows the guide's error table: the user sees a plain message in the step they
are on, with a support reference (Waycore's request id, or this request's own id, the one on
every log line, when Waycore gave none); the raw Waycore error goes to the server log under that
same reference. A 401 or 403 from Waycore is a configuration problem on our side: the user is
never asked for a key. Every error shown is also a `flow.error_shown` host event.

The handlers render the full error page for a normal request and just the `content` block for an
htmx request (htmx is configured to swap error statuses in, so the message shows where the user
is). A polled region whose check failed is answered with the region again, still polling, so one
Waycore hiccup never ends activation or sync tracking. Unexpected errors are logged with a
reference the page shows; no stack trace, key or request body reaches the browser.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from logs import current_request_id
from onboarding import events as host_events
from onboarding.entities import EntityUnavailable
from onboarding.errors import NotOwned, WaitForWaycore
from views import htmx
from views.guards import STATE_KEY, PermissionDenied, SignInRequired, WrongStep, app_state
from views.render import render
from waycore.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthorized,
    WaycoreAPIError,
    WaycoreError,
    WaycoreTimeout,
)

log = logging.getLogger("app.waycore")

#: Messages for 400 codes the user can act on; anything else gets the generic one.
_BAD_REQUEST_MESSAGES = {
    "invalid_portal_url": (
        "The bank portal URL was not accepted. Check that it is the full HTTPS address of the "
        "page where you sign in to your bank, then try again."
    ),
    "invalid_institution": (
        "That bank is no longer available in the catalog. Search again, or enter its portal "
        "URL under \u201cMy bank isn\u2019t listed\u201d."
    ),
    "invalid_credentials": (
        "The bank details were not accepted. Check them, or leave them blank if your bank did "
        "not issue any."
    ),
    "invalid_cursor": "That page of results has expired. Reload to start from the first page.",
}


@dataclass(frozen=True)
class Problem:
    """What the user is told when a step could not complete."""

    title: str
    message: str
    reference: str
    #: Seconds before a retry makes sense (from `Retry-After`), when known.
    retry_after: float | None = None
    #: True for configuration problems the user cannot fix (401/403 from Waycore).
    configuration: bool = False

    @property
    def retry_at(self) -> float | None:
        """When the step may be tried again (epoch seconds): until then its action stays off."""
        return time.time() + self.retry_after if self.retry_after else None


_SECRET_FIELDS = re.compile(r'("password"\s*:\s*)"(?:[^"\\]|\\.)*"', re.IGNORECASE)


def loggable(raw_body: str) -> str:
    """Waycore's raw error body for the developer log, with any password value removed (a
    validation error could echo a field back) and its length capped."""
    return _SECRET_FIELDS.sub(r'\1"[redacted]"', raw_body)[:4000]


def new_reference() -> str:
    """This request's id (the one on its log lines), or a fresh reference outside a request."""
    return current_request_id() or "ref_" + secrets.token_hex(6)


#: A polled region that keeps failing (Waycore down) tells the host once per this window.
POLL_ERROR_EVENT_SECONDS = 15 * 60


async def error_shown(request: Request, title: str, reference: str, context: str) -> None:
    """Tell the host an error was shown to the signed-in customer (a funnel event). A polled
    region shows it again at every check while the trouble lasts: that is one event per user,
    region and error per `POLL_ERROR_EVENT_SECONDS`, not one per check."""
    user = getattr(request.state, "user", None)
    state = request.scope.get("state") or {}
    if user is None or STATE_KEY not in state:
        return
    once_per: tuple[str, ...] = ()
    if htmx.is_poll(request):
        window = int(time.time() // POLL_ERROR_EVENT_SECONDS)
        once_per = (request.url.path, title, str(window))
    data: dict[str, host_events.Value] = {
        "title": title,
        "reference": reference,
        "context": context,
    }
    event = host_events.funnel(host_events.EventType.ERROR_SHOWN, user, data, once_per)
    await app_state(request).events.emit(event)


async def problem_for(request: Request, exc: WaycoreError, action: str) -> Problem:
    """Log `exc` in full for developers, tell the host, and return what the user may see."""
    problem = _problem(exc, action)
    await error_shown(request, problem.title, problem.reference, action)
    return problem


def _problem(exc: WaycoreError, action: str) -> Problem:
    reference = new_reference()
    if isinstance(exc, WaitForWaycore):
        log.info("not sent while %s: Waycore asked to wait [reference %s]", action, reference)
        return Problem(
            "Please wait before retrying",
            "Waycore asked us to wait a moment before sending this again, so nothing was sent. "
            "Nothing you entered was lost.",
            reference,
            retry_after=exc.retry_after,
        )
    if isinstance(exc, WaycoreAPIError):
        reference = exc.request_id or reference
        log.warning(
            "waycore call failed while %s: %s [reference %s] raw=%s",
            action,
            exc,
            reference,
            loggable(exc.raw_body),
        )
    else:
        log.warning("waycore call failed while %s: %s [reference %s]", action, exc, reference)

    if isinstance(exc, Unauthorized | Forbidden):
        return Problem(
            "Bank connections are unavailable",
            "Bank connections are not set up correctly on our side, so this step cannot "
            "continue. Nothing you entered was lost. Please contact support and quote the "
            "reference below.",
            reference,
            configuration=True,
        )
    if isinstance(exc, BadRequest):
        message = _BAD_REQUEST_MESSAGES.get(
            exc.code or "", "Some details were not accepted. Check them and try again."
        )
        return Problem("Please check the details", message, reference)
    if isinstance(exc, NotFound):
        return Problem(
            "Not available",
            "This item is not available any more. It may have been removed. Go back to your "
            "connections to see what is current.",
            reference,
        )
    if isinstance(exc, Conflict):
        return Problem(
            "Please try again shortly",
            "This connection is busy or has just changed state. Nothing was changed; wait a "
            "moment and try again, or contact support if it persists.",
            reference,
        )
    if isinstance(exc, RateLimited):
        return Problem(
            "Please wait before retrying",
            "Too many requests were made just now. Please wait a little and try again.",
            reference,
            retry_after=exc.retry_after,
        )
    if isinstance(exc, WaycoreTimeout):
        message = "The bank-connection service took too long to answer."
    else:
        message = "The bank-connection service is not responding right now."
    retry_after = exc.retry_after if isinstance(exc, WaycoreAPIError) else None
    return Problem(
        "Temporarily unavailable",
        f"{message} Nothing you entered was lost; try again in a moment.",
        reference,
        retry_after=retry_after,
    )


# ---------------------------------------------------------------------------- handlers


async def sign_in_required(request: Request, exc: Exception) -> Response:
    from views.auth import sign_in_redirect  # the sign-in routes live with the screens

    return sign_in_redirect(request)


async def permission_denied(request: Request, exc: Exception) -> Response:
    return render(request, "errors/403.html", {}, status=403)


async def wrong_step(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WrongStep)
    return htmx.navigate(request, exc.url)


async def not_found(request: Request, exc: Exception) -> Response:
    return render(request, "errors/404.html", {}, status=404)


async def http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (404, 405):
        return render(request, "errors/404.html", {}, status=exc.status_code)
    return render(
        request,
        "errors/problem.html",
        {"title": "Request refused", "message": exc.detail, "reference": None},
        status=exc.status_code,
    )


def poll_retry(request: Request, problem: Problem) -> Response:
    """The polled region again, checking the same URL after a longer pause (a 5xx or an error
    fragment would replace it and end the polling for good)."""
    url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    context = {
        "poll_id": htmx.target(request),
        "poll_url": url,
        "poll_delay": 2 * app_state(request).settings.poll_interval_seconds,
        "problem": problem,
    }
    return render(request, "connections/_poll_retry.html", context)


async def waycore_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WaycoreError)
    problem = await problem_for(request, exc, f"handling {request.method} {request.url.path}")
    if isinstance(exc, NotFound):
        return render(request, "errors/404.html", {}, status=404)
    if htmx.is_poll(request):
        return poll_retry(request, problem)
    return render(request, "errors/problem.html", asdict(problem), status=502)


async def entity_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EntityUnavailable)
    problem = await problem_for(request, exc.cause, "resolving the customer's Waycore entity")
    return render(request, "errors/entity.html", {"problem": problem}, status=503)


async def server_error(request: Request, exc: Exception) -> Response:
    reference = new_reference()
    log.error("unhandled error [reference %s]", reference, exc_info=exc)
    try:
        await error_shown(request, "Something went wrong", reference, "unexpected error")
    except Exception:  # the error page must show even if telling the host fails
        log.exception("could not report the error to the host")
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


def csrf_refused(request: Request, reason: str) -> Response:
    """The CSRF check's 403 (`security.CSRFMiddleware`), as a page or an htmx fragment."""
    return render(request, "errors/refused.html", {"reason": reason}, status=403)


Handler = Callable[[Request, Exception], Awaitable[Response]]
EXCEPTION_HANDLERS: Mapping[Any, Handler] = {
    SignInRequired: sign_in_required,
    PermissionDenied: permission_denied,
    WrongStep: wrong_step,
    NotOwned: not_found,
    HTTPException: http_exception,
    WaycoreError: waycore_error,
    EntityUnavailable: entity_unavailable,
    Exception: server_error,
}
