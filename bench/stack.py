"""The app's request path with no work behind it: what the middleware stack alone costs.

`python server.py` as it is, with one change: the activation status view answers fixed bytes
(the file `BENCH_STACK_BODY` names: the real poll's answer, saved by the harness) with the
headers the real view sends. Everything in front of the view runs as in the app: the request id
and its access line, the session cookie, CSRF, the security headers, Starlette's routing and
error handling. Its ratio to the bare endpoint is therefore the most the activation poll could
reach on this request path, however little the view itself did:

    BENCH_STACK_BODY=answer.html SECRET_KEY=... PORT=8102 python -m bench.stack
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route, request_response

#: The path of the view replaced.
POLL_PATH = "/connections/{connection_id}/activation/status"


def replace_poll_view(body: str) -> None:
    """Make the activation status route answer `body` with the real view's headers."""
    from views import routes
    from views.render import _HEADERS

    async def fixed(request: Request) -> Response:
        return HTMLResponse(body, headers=_HEADERS)

    (route,) = [r for r in routes if isinstance(r, Route) and r.path == POLL_PATH]
    route.app = request_response(fixed)


def main() -> None:
    import server

    replace_poll_view(Path(os.environ["BENCH_STACK_BODY"]).read_text(encoding="utf-8"))
    server.main()


if __name__ == "__main__":
    main()
