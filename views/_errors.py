"""Waycore failures as user-safe problems, following the guide's error table.

The user sees a plain message in the step they are on, with a support reference (Waycore's
request id, or one of ours when Waycore gave none); the raw Waycore error goes to the server log
under that same reference. A 401 or 403 from Waycore is a configuration problem on our side:
the user is never asked for a key.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass

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


_SECRET_FIELDS = re.compile(r'("password"\s*:\s*)"(?:[^"\\]|\\.)*"', re.IGNORECASE)


def loggable(raw_body: str) -> str:
    """Waycore's raw error body for the developer log, with any password value removed (a
    validation error could echo a field back) and its length capped."""
    return _SECRET_FIELDS.sub(r'\1"[redacted]"', raw_body)[:4000]


def new_reference() -> str:
    return "ref_" + secrets.token_hex(6)


def problem_for(exc: WaycoreError, action: str) -> Problem:
    """Log `exc` in full for developers and return what the user may see about it."""
    reference = new_reference()
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
    return Problem(
        "Temporarily unavailable",
        f"{message} Nothing you entered was lost; try again in a moment.",
        reference,
    )
