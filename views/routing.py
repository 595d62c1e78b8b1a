"""The router: which route answers a request, remembered by path and method.

Starlette's router tries its routes in order, a regular expression each, until one matches the
whole request. A connection's page is the 28th route: the walk cost it about 20 µs of its
190 µs in-process. The same path and method always end at the same route, so `Router` keeps
the route that fully matched each one and matches the next request for it against that route
alone. Whatever matches no route fully (a 405, a 404, a trailing-slash redirect) takes
Starlette's own walk, every time, and is not kept.

Paths are kept before anyone is signed in (routing comes first), so what is kept is bounded:
only a `Route` (not a `Mount`, where any path under `/static` matches), only a path of at most
`REMEMBERED_PATH_LIMIT` characters, at most `REMEMBERED_LIMIT` of them (cleared whole when
full: someone requesting many paths only costs later requests the walk).
"""

from __future__ import annotations

from typing import Any

from starlette import routing
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Receive, Scope, Send

#: Paths kept at most (a connection's id is in its paths); the memory is cleared whole when full.
REMEMBERED_LIMIT = 20_000
#: The longest path kept (the app's own paths are well under it).
REMEMBERED_PATH_LIMIT = 200


class Router(routing.Router):
    """Starlette's router, remembering the route that answered each path and method.

    Only a `Route` is kept: what it matches depends on the path and the method alone (a `Host`
    route also reads the `Host` header). Routes added or removed after the first request clear
    the memory (a route replaced in place is not noticed: add or remove, not replace)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._answered: dict[tuple[str, str, str], BaseRoute] = {}
        self._routes_known = len(self.routes)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().app(scope, receive, send)
            return
        if len(self.routes) != self._routes_known:
            self._answered.clear()
            self._routes_known = len(self.routes)
        key = (scope.get("root_path", ""), scope["path"], scope["method"])
        known = self._answered.get(key)
        for route in (known,) if known is not None else self.routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                if (
                    known is None
                    and isinstance(route, Route)
                    and len(key[1]) <= REMEMBERED_PATH_LIMIT
                ):
                    if len(self._answered) >= REMEMBERED_LIMIT:
                        self._answered.clear()
                    self._answered[key] = route
                scope.setdefault("router", self)
                scope["route"] = route
                scope.update(child_scope)
                await route.handle(scope, receive, send)
                return
        # No route matches it fully: Starlette's own walk (405, redirect or 404).
        await super().app(scope, receive, send)
