"""Running inside a host's Python app: `Mount("/banking", app=create_app(settings, ...))`.

Starlette does not run a mounted app's lifespan, so without help the first request would find
no store and no Waycore client. `StartOnFirstUse` (the app's outermost middleware) makes the
mount work on its own: if the request carries no lifespan state of this app, it uses the state of
a lifespan the host entered itself (`async with kit.router.lifespan_context(kit): ...` in the
host's lifespan, the way to get a clean shutdown too), or enters the lifespan once, lazily, on
first use. Served standalone (`python server.py`), the server runs the lifespan and this does
nothing.

`KeepHostSession` keeps the app's session from clobbering a host's: Starlette's session
middleware keeps the session in `scope["session"]`, and a mount shares its scope with the host,
so without it the host's session middleware would write the app's session into the host's cookie
(signing the host's user out).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Where the running lifespan's state is kept on the app (`app.state`), for mounted use.
RUNTIME = "runtime"


class KeepHostSession:
    """Around the app's session middleware: the scope's session is the host's again (if it had
    one) before the response reaches the host's middleware, and after the app returns."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or "session" not in scope:
            await self.app(scope, receive, send)
            return
        outer = scope["session"]

        async def send_outward(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                scope["session"] = outer
            await send(message)

        try:
            await self.app(scope, receive, send_outward)
        finally:
            scope["session"] = outer


class StartOnFirstUse:
    def __init__(self, app: ASGIApp, *, kit: Starlette, key: str) -> None:
        self.app = app
        self.kit = kit
        self.key = key
        self._lock = asyncio.Lock()
        self._stack: contextlib.AsyncExitStack | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            state: dict[str, Any] = scope.get("state") or {}
            if self.key not in state:
                scope["state"] = {**state, **await self._runtime()}
        await self.app(scope, receive, send)

    async def _runtime(self) -> dict[str, Any]:
        runtime: dict[str, Any] | None = getattr(self.kit.state, RUNTIME, None)
        if runtime is not None:
            return runtime
        async with self._lock:
            runtime = getattr(self.kit.state, RUNTIME, None)
            if runtime is None:
                self._stack = contextlib.AsyncExitStack()
                context: contextlib.AbstractAsyncContextManager[Any] = (
                    self.kit.router.lifespan_context(self.kit)
                )
                runtime = await self._stack.enter_async_context(context)
            assert runtime is not None
            return dict(runtime)
