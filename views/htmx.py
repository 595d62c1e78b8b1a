"""htmx header names and intent-named helpers: the only module that knows htmx's protocol.

Branch on `HX-Request` (and `HX-Target` to pick a region), never on `HX-Trigger`: that request
header holds an element id, exists only in htmx 2, and would couple Python to DOM ids.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

HX_REQUEST = "HX-Request"
HX_TARGET = "HX-Target"
HX_HISTORY_RESTORE_REQUEST = "HX-History-Restore-Request"
HX_LOCATION = "HX-Location"
HX_PUSH_URL = "HX-Push-Url"
HX_REDIRECT = "HX-Redirect"
HX_TRIGGER_RESPONSE = "HX-Trigger"
#: Responses vary on these request headers (fragment vs full page).
VARY = "HX-Request, HX-History-Restore-Request"


def is_htmx(request: Request) -> bool:
    """An htmx request that wants a fragment (a history restore wants the full page)."""
    return (
        request.headers.get(HX_REQUEST) == "true"
        and request.headers.get(HX_HISTORY_RESTORE_REQUEST) != "true"
    )


def target(request: Request) -> str | None:
    """The id of the element htmx will swap into, when it sent one."""
    return request.headers.get(HX_TARGET) or None


def client_location(url: str, response: Response, *, target_id: str = "main") -> Response:
    """Make an htmx response navigate to `url` (a relative path): GET it into `#target_id` and
    push it onto the history, without a full page load."""
    if not url.startswith("/") or url.startswith("//"):
        raise ValueError("client navigation only to relative paths")
    response.headers[HX_LOCATION] = json.dumps({"path": url, "target": f"#{target_id}"})
    return response


def with_trigger(response: Response, event: str) -> Response:
    """Fire `event` on the client after the swap (e.g. to refresh a parent region)."""
    response.headers[HX_TRIGGER_RESPONSE] = event
    return response
