"""The bare endpoint every figure is compared with: Starlette answering `GET /` with plain text.

It is served through the app's own `server.main()` with only `create_app` swapped for this one,
so it runs on exactly the uvicorn settings the app runs on (one worker, the same loop and HTTP
implementation, keep-alive, logging), whatever those are on the branch being measured:

    SECRET_KEY=... HOST=127.0.0.1 PORT=8101 python -m bench.bare
"""

from __future__ import annotations

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
    server.main()


if __name__ == "__main__":
    main()
