"""The bare endpoint every figure is compared with: Starlette answering `GET /` with plain text.

It is served through the app's own `server.main()` with only `create_app` swapped for this one,
so it runs on exactly the uvicorn settings the app runs on (one worker, the same loop and HTTP
implementation, keep-alive, logging), whatever those are on the branch being measured:

    SECRET_KEY=... HOST=127.0.0.1 PORT=8101 python -m bench.bare

With `BENCH_BARE_ACCESS_LOG=1` it also writes uvicorn's own access line per request (uvicorn's
default logging), as `python server.py` served before the app wrote its own line: the bare
endpoint the benchmark targets were first measured against.
"""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

BODY = "Hello, world!"


async def hello(request: Request) -> Response:
    return PlainTextResponse(BODY)


def create_bare_app(*args: Any, **kwargs: Any) -> Starlette:
    """Takes (and ignores) whatever `server.create_app` is called with."""
    return Starlette(routes=[Route("/", hello, methods=["GET"])])


def main() -> None:
    import server

    server.create_app = create_bare_app
    if os.environ.get("BENCH_BARE_ACCESS_LOG") == "1":
        import uvicorn
        from uvicorn.config import LOGGING_CONFIG

        run = uvicorn.run

        def with_access_line(app: Any, **settings: Any) -> None:
            """uvicorn's own access line and logging, as `python server.py` ran before the
            app wrote its own line (the bare endpoint the issue's targets were set against)."""
            run(app, **{**settings, "access_log": True, "log_config": LOGGING_CONFIG})

        uvicorn.run = with_access_line
    server.main()


if __name__ == "__main__":
    main()
