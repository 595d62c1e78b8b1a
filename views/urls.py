"""Every URL the app hands a browser, built from the route table.

Links, form actions, `hx-*` URLs, redirects and `HX-Location`s are root-relative paths under the
prefix the app is served at (`root_path`: a proxy's stripped prefix, or the `Mount` it sits in),
never built from the `Host` header. Templates call the same `url_for` as a global.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from onboarding.journey import Step, step_for
from waycore.models import Connection


def url_for(request: Request, name: str, /, **params: Any) -> str:
    """The root-relative path of route `name`, under the prefix the app is served at.

    It asks this app's own router (`request.app`), so it works the same when the app is mounted
    inside a host's app."""
    path = request.app.router.url_path_for(name, **{k: str(v) for k, v in params.items()})
    return str(request.scope.get("root_path", "")).rstrip("/") + str(path)


def step_url(request: Request, connection: Connection, step: Step | None = None) -> str:
    """The URL of `step` (default: the one `connection` belongs on) for this connection."""
    return url_for(request, (step or step_for(connection)).value, connection_id=connection.id)
