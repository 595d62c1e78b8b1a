"""`GET /healthz` (the process is up and its lifespan ran) and `GET /readyz` (it can serve:
the database answers). A load balancer sends traffic on `/readyz`; a supervisor restarts on
`/healthz`."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from views.guards import STATE_KEY, app_state

log = logging.getLogger("app.health")
NO_STORE = {"Cache-Control": "no-store"}


async def healthz(request: Request) -> Response:
    app_state(request)  # raises if the lifespan has not run
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


async def readyz(request: Request) -> Response:
    """200 when the database answers a query; 503 (with the reason) otherwise."""
    if STATE_KEY not in (request.scope.get("state") or {}):
        return JSONResponse({"status": "starting"}, status_code=503, headers=NO_STORE)
    try:
        await app_state(request).store.ping()
    except Exception as exc:
        log.warning("readiness: the database does not answer (%s)", type(exc).__name__)
        return JSONResponse(
            {"status": "unavailable", "database": "error"}, status_code=503, headers=NO_STORE
        )
    return JSONResponse({"status": "ready", "database": "ok"}, headers=NO_STORE)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
