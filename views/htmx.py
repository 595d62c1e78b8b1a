"""htmx header names, its client configuration and intent-named helpers: the only module that
knows htmx's protocol.

Branch on `HX-Request` (and `HX-Target` to pick a region), never on `HX-Trigger`: that request
header holds an element id, exists only in htmx 2, and would couple Python to DOM ids.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

HX_REQUEST = "HX-Request"
HX_TARGET = "HX-Target"
HX_HISTORY_RESTORE_REQUEST = "HX-History-Restore-Request"
HX_LOCATION = "HX-Location"
HX_REDIRECT = "HX-Redirect"
HX_TRIGGER_RESPONSE = "HX-Trigger"
#: Responses vary on these request headers (fragment vs full page).
VARY = "HX-Request, HX-History-Restore-Request"

#: The regions that poll themselves (`hx-target="this"`): a failed check answers the region
#: again, still polling, instead of an error (`views.errors`).
POLLED_REGIONS = frozenset({"activation-status", "sync-panel", "delegated-details", "status-watch"})

#: htmx settings (read from a meta tag, so no inline script): no eval, no inline styles (neither
#: its indicator styles nor `style` attributes carried over when a swap settles: htmx copies
#: `attributesToSettle` from the old element, where an extension or password manager may have
#: set a style the CSP would refuse), no script tags from swapped content, no history snapshots
#: of pages holding bank details, same-origin requests only, and error responses swapped in so
#: their messages show.
CONFIG = {
    "allowEval": False,
    "allowScriptTags": False,
    "includeIndicatorStyles": False,
    "attributesToSettle": ["class", "width", "height"],
    "historyCacheSize": 0,
    "refreshOnHistoryMiss": True,
    "selfRequestsOnly": True,
    "responseHandling": [
        {"code": "204", "swap": False},
        {"code": "[23]..", "swap": True},
        {"code": "422", "swap": True},  # a form answered with its validation messages
        {"code": "[45]..", "swap": True, "error": True},
    ],
}


def is_htmx(request: Request) -> bool:
    """An htmx request that wants a fragment (a history restore wants the full page)."""
    known = request.scope.get(_IS_HTMX)
    if known is None:
        headers = request.headers
        known = request.scope[_IS_HTMX] = (
            headers.get(HX_REQUEST) == "true" and headers.get(HX_HISTORY_RESTORE_REQUEST) != "true"
        )
    return bool(known)


#: Where `is_htmx` keeps its answer in the request's scope.
_IS_HTMX = "onboarding.is_htmx"


def target(request: Request) -> str | None:
    """The id of the element htmx will swap into, when it sent one."""
    return request.headers.get(HX_TARGET) or None


def is_poll(request: Request) -> bool:
    """A polled region checking on itself."""
    return is_htmx(request) and target(request) in POLLED_REGIONS


def _relative(url: str) -> str:
    if not url.startswith("/") or url.startswith("//"):
        raise ValueError("navigation only to relative paths")
    return url


def navigate(request: Request, url: str, *, push: bool = True) -> Response:
    """Post/Redirect/Get to `url` (a root-relative path): 303 for a plain request; for htmx, a
    client navigation that GETs it into `#main` and pushes it onto the history (`push=False`:
    reloading the page the browser is on, which needs no new history entry)."""
    if is_htmx(request):
        response = Response(status_code=200)
        location: dict[str, object] = {"path": _relative(url), "target": "#main"}
        if not push:
            location["push"] = False
        response.headers[HX_LOCATION] = json.dumps(location)
        return response
    return RedirectResponse(_relative(url), status_code=303)


def full_redirect(request: Request, url: str) -> Response:
    """Leave the app's pages for `url` with a full page load (e.g. to a sign-in page)."""
    if is_htmx(request):
        response = Response(status_code=200)
        response.headers[HX_REDIRECT] = url
        return response
    return RedirectResponse(url, status_code=303)


def with_trigger(response: Response, event: str) -> Response:
    """Fire `event` on the client after the swap (e.g. to refresh a parent region)."""
    response.headers[HX_TRIGGER_RESPONSE] = event
    return response
