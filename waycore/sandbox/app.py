"""`Sandbox`: the local Waycore simulator as one Starlette app, and its request pipeline.

The pipeline (a pure ASGI middleware) gives every request an `X-Request-Id`, reads the body once,
applies due state transitions, injects queued faults into `/v1` requests, writes changed state
after the handler, and records each `/v1` request without its secrets. `start()` opens the store
and starts the background worker; it is idempotent, and requests work even before it (the store
opens lazily), which is what `httpx.ASGITransport` needs since it runs no lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .api import V1
from .config import SandboxConfig
from .control import Control, Fault, new_key_record
from .delivery import Deliverer
from .engine import Engine
from .records import RecordedRequest, iso
from .store import Store
from .wire import BODY_KEY, REQUEST_ID_KEY, error_response, request_id

log = logging.getLogger("waycore.sandbox")

REDACTED = "[redacted]"
_SECRET_FIELDS = {"password"}


def redact(value: Any) -> Any:
    """A copy of a JSON value with every password replaced by "[redacted]"."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if k.lower() in _SECRET_FIELDS and v is not None else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _recorded_body(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return redact(json.loads(raw))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "[unparsable body omitted]"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = "not_found" if exc.status_code == 404 else "invalid_request"
    message = "No such endpoint." if exc.status_code == 404 else str(exc.detail)
    headers = dict(exc.headers) if exc.headers else None
    return error_response(request_id(request), exc.status_code, code, message, headers)


class _Pipeline:
    """Pure ASGI middleware wrapping every HTTP request (see the module docstring)."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.sandbox._handle(self.app, scope, receive, send)


class Sandbox:
    """A faithful local simulator of Waycore's `/v1` API (see docs/sandbox.md)."""

    def __init__(
        self,
        config: SandboxConfig,
        *,
        delivery_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.store = Store(config.database)
        self.engine = Engine(config, self.store)
        self.deliverer = Deliverer(config, self.engine, delivery_transport)
        self.faults: list[Fault] = []
        self._requests: deque[RecordedRequest] = deque(maxlen=config.max_recorded_requests)
        self._worker: asyncio.Task[None] | None = None
        self._started = False
        routes = [*V1(self.engine).routes(), *Control(self).routes()]
        self.app = Starlette(
            routes=routes,
            middleware=[Middleware(_Pipeline, sandbox=self)],
            exception_handlers={HTTPException: _http_error},
            lifespan=self._lifespan,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    def _ensure_open(self) -> None:
        if not self.store.loaded:
            self.store.open()
            self.engine.bootstrap()
            self.store.flush()

    async def start(self) -> None:
        """Open persistence and start the background worker. Calling it twice is harmless."""
        if self._started:
            return
        self._started = True
        self._ensure_open()
        await self.deliverer.open()
        self._worker = asyncio.create_task(self._run_worker(), name="waycore-sandbox-worker")

    async def stop(self) -> None:
        """Stop the worker, close the delivery client, write and close the store."""
        if not self._started:
            return
        self._started = False
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        await self.deliverer.close()
        self.store.close()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _run_worker(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("sandbox worker tick failed")
            await asyncio.sleep(self.config.tick_seconds)

    async def tick(self) -> None:
        """Apply due transitions, write state, and attempt due webhook deliveries."""
        self._ensure_open()
        self.engine.advance()
        self.store.flush()
        await self.deliverer.deliver_due()

    # -- public helpers ----------------------------------------------------------------------

    def now(self) -> float:
        """The sandbox clock: `time.time()` plus the advanced offset."""
        return self.engine.now()

    def advance_clock(self, seconds: float) -> None:
        """Move the sandbox clock forward and apply what became due."""
        self._ensure_open()
        self.engine.advance_clock(seconds)
        self.store.flush()

    def mint_key(self, scopes: list[str]) -> str:
        """A new `way_test_...` key with exactly `scopes` (only its hash is stored)."""
        self._ensure_open()
        key, record = new_key_record(scopes, self.now())
        self.store.put(record)
        self.store.flush()
        return key

    @property
    def requests(self) -> list[RecordedRequest]:
        """The `/v1` requests received, oldest first, without secrets."""
        return list(self._requests)

    def clear_requests(self) -> None:
        self._requests.clear()

    # -- the request pipeline ----------------------------------------------------------------

    def _take_fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.remaining > 0 and path.startswith(fault.path_prefix):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self.faults.remove(fault)
                return fault
        return None

    async def _handle(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        rid = f"req_{secrets.token_hex(12)}"
        scope[REQUEST_ID_KEY] = rid
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        scope[BODY_KEY] = body
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)["X-Request-Id"] = rid
            await send(message)

        path = str(scope["path"])
        is_v1 = path == "/v1" or path.startswith("/v1/")
        try:
            self._ensure_open()
            self.engine.advance()
            fault = self._take_fault(path) if is_v1 else None
            if fault is not None and fault.mode == "latency":
                await asyncio.sleep(fault.latency_seconds)
                fault = None
            if fault is not None:
                headers = {"Retry-After": str(fault.retry_after)} if fault.status == 429 else None
                text = (
                    "Too many requests (injected by the sandbox)."
                    if fault.code == "rate_limited"
                    else "Injected failure (sandbox fault)."
                )
                response = error_response(rid, fault.status, fault.code, text, headers)
                await response(scope, replay, send_with_id)
            else:
                await app(scope, replay, send_with_id)
        finally:
            self.store.flush()
            if is_v1:
                self._requests.append(
                    RecordedRequest(
                        method=str(scope["method"]),
                        path=path,
                        query=dict(
                            parse_qsl(
                                scope.get("query_string", b"").decode("latin-1"),
                                keep_blank_values=True,
                            )
                        ),
                        status=status,
                        body=_recorded_body(body),
                        request_id=rid,
                        at=iso(self.now()),
                    )
                )
