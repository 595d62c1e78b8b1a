"""`GET /healthz`: 200 once the lifespan has opened the store and the Waycore client."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from views.guards import app_state


async def healthz(request: Request) -> Response:
    app_state(request)  # raises if the lifespan has not run
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


routes = [Route("/healthz", healthz, methods=["GET"])]
