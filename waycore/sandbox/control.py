"""The `/_sandbox/*` control API: keys, clock, status overrides, faults, request and delivery logs.

Only the root key (`SandboxConfig.api_key`) is accepted here; a minted key answers 403. This API
is the sandbox's own and has no counterpart at Waycore.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .api import Handler, bearer_scopes, guarded, key_hash
from .config import CONNECTION_STATUSES, SCOPES
from .delivery import attempts_view
from .records import KeyRec, iso, render_connection
from .wire import ApiError, json_response, opt_str, read_object

if TYPE_CHECKING:
    from .app import Sandbox

FAULT_MODES = ("latency", "error", "rateLimit")

#: HTTP status -> error code for injected error faults.
_FAULT_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "insufficient_scope",
    404: "not_found",
    409: "conflict",
    429: "rate_limited",
}


@dataclass
class Fault:
    """One injected fault, consumed by the next `remaining` matching `/v1` requests."""

    id: str
    mode: str
    remaining: int
    status: int
    latency_seconds: float
    retry_after: int
    path_prefix: str

    @property
    def code(self) -> str:
        if self.mode == "rateLimit":
            return "rate_limited"
        return _FAULT_CODES.get(self.status, "internal_error")

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "mode": self.mode,
            "remaining": self.remaining,
            "status": self.status,
            "latencySeconds": self.latency_seconds,
            "retryAfter": self.retry_after,
            "pathPrefix": self.path_prefix,
        }


def _number(body: dict[str, Any], name: str, default: float) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(400, "invalid_request", f"`{name}` must be a number.")
    return float(value)


def _int(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(400, "invalid_request", f"`{name}` must be an integer from {low} to {high}.")
    return int(value)


def parse_fault(body: dict[str, Any]) -> Fault:
    mode = body.get("mode")
    if mode not in FAULT_MODES:
        raise ApiError(400, "invalid_request", "`mode` must be latency, error or rateLimit.")
    prefix = opt_str(body, "pathPrefix") or "/v1"
    if not prefix.startswith("/v1"):
        raise ApiError(400, "invalid_request", "`pathPrefix` must start with /v1.")
    latency = _number(body, "latencySeconds", 1.0)
    if not 0 <= latency <= 120:
        raise ApiError(400, "invalid_request", "`latencySeconds` must be from 0 to 120.")
    default_status = 429 if mode == "rateLimit" else 503
    status = _int(body, "status", default_status, 400, 599)
    return Fault(
        id=f"flt_{secrets.token_hex(6)}",
        mode=str(mode),
        remaining=_int(body, "count", 1, 1, 10_000),
        status=429 if mode == "rateLimit" else status,
        latency_seconds=latency,
        retry_after=_int(body, "retryAfter", 1, 0, 86_400),
        path_prefix=prefix,
    )


class Control:
    """The `/_sandbox` routes over one sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.engine = sandbox.engine

    def _root_only(self, request: Request) -> None:
        _scopes, root = bearer_scopes(self.engine, request)
        if not root:
            raise ApiError(403, "insufficient_scope", "The control API needs the root API key.")

    def routes(self) -> list[Route]:
        table: list[tuple[str, str, Handler]] = [
            ("POST", "/_sandbox/keys", self.mint_key),
            ("GET", "/_sandbox/clock", self.get_clock),
            ("POST", "/_sandbox/clock", self.advance_clock),
            ("PUT", "/_sandbox/connections/{connection_id}/status", self.set_status),
            ("GET", "/_sandbox/faults", self.list_faults),
            ("POST", "/_sandbox/faults", self.add_fault),
            ("DELETE", "/_sandbox/faults", self.clear_faults),
            ("GET", "/_sandbox/requests", self.list_requests),
            ("DELETE", "/_sandbox/requests", self.clear_requests),
            ("GET", "/_sandbox/deliveries", self.list_deliveries),
        ]
        return [
            Route(path, guarded(self._root_only, fn), methods=[method])
            for method, path, fn in table
        ]

    async def mint_key(self, request: Request) -> Response:
        body = read_object(request, ("scopes",))
        scopes = body.get("scopes")
        if not isinstance(scopes, list) or any(s not in SCOPES for s in scopes):
            raise ApiError(
                400, "invalid_request", f"`scopes` must be a list drawn from: {', '.join(SCOPES)}."
            )
        key = self.sandbox.mint_key([str(s) for s in scopes])
        return json_response({"key": key, "scopes": list(dict.fromkeys(scopes))}, 201)

    def _clock(self) -> dict[str, Any]:
        return {
            "now": iso(self.engine.now()),
            "offsetSeconds": self.engine.store.clock_offset,
        }

    async def get_clock(self, request: Request) -> Response:
        return json_response(self._clock())

    async def advance_clock(self, request: Request) -> Response:
        body = read_object(request, ("advanceSeconds",))
        seconds = _number(body, "advanceSeconds", -1.0)
        if seconds < 0:
            raise ApiError(400, "invalid_request", "`advanceSeconds` must be a number >= 0.")
        self.engine.advance_clock(seconds)
        return json_response(self._clock())

    async def set_status(self, request: Request) -> Response:
        body = read_object(request, ("status", "kind", "errorCode", "errorMessage"))
        status = body.get("status")
        if status not in CONNECTION_STATUSES:
            raise ApiError(
                400,
                "invalid_request",
                f"`status` must be one of: {', '.join(CONNECTION_STATUSES)}.",
            )
        kind = body.get("kind")
        if kind not in (None, "setup", "ready"):
            raise ApiError(400, "invalid_request", "`kind` must be `setup` or `ready`.")
        connection_id = request.path_params["connection_id"]
        conn = self.engine.store.connections.get(connection_id)
        if conn is None:
            raise ApiError(404, "not_found", f"Connection {connection_id} was not found.")
        self.engine.force_status(
            conn, str(status), opt_str(body, "errorCode"), opt_str(body, "errorMessage"), kind
        )
        return json_response(render_connection(conn))

    async def list_faults(self, request: Request) -> Response:
        return json_response({"data": [f.to_api() for f in self.sandbox.faults]})

    async def add_fault(self, request: Request) -> Response:
        body = read_object(
            request,
            ("mode", "count", "status", "latencySeconds", "retryAfter", "pathPrefix"),
        )
        fault = parse_fault(body)
        self.sandbox.faults.append(fault)
        return json_response({"fault": fault.to_api()}, 201)

    async def clear_faults(self, request: Request) -> Response:
        self.sandbox.faults.clear()
        return Response(status_code=204)

    async def list_requests(self, request: Request) -> Response:
        return json_response({"data": [r.to_api() for r in self.sandbox.requests]})

    async def clear_requests(self, request: Request) -> Response:
        self.sandbox.clear_requests()
        return Response(status_code=204)

    async def list_deliveries(self, request: Request) -> Response:
        rows = attempts_view(list(self.engine.store.deliveries.values()))
        pending = sum(1 for d in self.engine.store.deliveries.values() if d.state == "pending")
        return json_response({"data": rows, "pending": pending})


def new_key_record(scopes: list[str], created_at: float) -> tuple[str, KeyRec]:
    key_id = secrets.token_hex(6)
    key = f"way_test_{key_id}_{secrets.token_hex(16)}"
    record = KeyRec(
        id=key_id,
        key_hash=key_hash(key),
        scopes=list(dict.fromkeys(scopes)),
        created_at=created_at,
    )
    return key, record
