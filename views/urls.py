"""Every URL the app hands a browser, built from the route table.

Links, form actions, `hx-*` URLs, redirects and `HX-Location`s are root-relative paths under the
prefix the app is served at (`root_path`: a proxy's stripped prefix, or the `Mount` it sits in),
never built from the `Host` header. Templates call the same `url_for` as a global.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.convertors import Convertor
from starlette.requests import Request
from starlette.routing import Mount, Route

from onboarding.journey import Step, step_for
from waycore.models import Connection


@dataclass(frozen=True)
class _Path:
    format: str
    convertors: dict[str, Convertor[Any]]


def _table(request: Request) -> dict[str, _Path]:
    """The app's named routes, read once (a page builds dozens of URLs; the router would walk
    every route for each)."""
    state = request.app.state
    table: dict[str, _Path] | None = getattr(state, "url_table", None)
    if table is None:
        table = {
            route.name: _Path(route.path_format, dict(route.param_convertors))
            for route in request.app.router.routes
            if isinstance(route, Route | Mount) and route.name
        }
        state.url_table = table
    return table


def url_for(request: Request, name: str, /, **params: Any) -> str:
    """The root-relative path of route `name`, under the prefix the app is served at.

    It asks this app's own route table (`request.app`), so it works the same when the app is
    mounted inside a host's app."""
    root = str(request.scope.get("root_path", "")).rstrip("/")
    built_key = (request.app, root, name, *params.items())
    built = _BUILT.get(built_key)
    if built is not None:
        return built
    known = _table(request).get(name)
    if "path" in params:  # a file under a Mount (static): relative to it
        params["path"] = str(params["path"]).lstrip("/")
    if known is not None and set(known.convertors) == set(params):
        path = known.format.format(
            **{key: known.convertors[key].to_string(value) for key, value in params.items()}
        )
    else:  # parameters the table cannot fill: the router decides (and says what is wrong)
        path = str(request.app.router.url_path_for(name, **{k: str(v) for k, v in params.items()}))
    if len(_BUILT) >= _BUILT_LIMIT:
        _BUILT.clear()
    _BUILT[built_key] = root + path
    return root + path


#: URLs built so far, by app, prefix, route name and parameters (a page builds the same ones
#: again and again); cleared whole when full.
_BUILT: dict[tuple[Any, ...], str] = {}
_BUILT_LIMIT = 20_000


def step_url(request: Request, connection: Connection, step: Step | None = None) -> str:
    """The URL of `step` (default: the one `connection` belongs on) for this connection."""
    return url_for(request, (step or step_for(connection)).value, connection_id=connection.id)
