"""Running inside a host's Python app: `Mount("/banking", app=create_app(settings, ...))`.

Starlette does not run a mounted app's lifespan, so without help the first request would find
no store and no Waycore client. `StartOnFirstUse` (the app's outermost middleware) makes the
mount work on its own: if the request carries no lifespan state of this app, it uses the state of
a lifespan the host entered itself (`async with kit.router.lifespan_context(kit): ...` in the
host's lifespan, the way to get a clean shutdown too), or enters the lifespan once, lazily, on
first use. Served standalone (`python server.py`), the server runs the lifespan and this does
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

#: Where the running lifespan's state is kept on the app (`app.state`), for mounted use.
RUNTIME = "runtime"


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
