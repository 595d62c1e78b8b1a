"""The app factory: routes, middleware, exception handlers and the lifespan, wired together.

`create_app(settings)` builds the Starlette app; `python server.py` serves it with uvicorn on
`HOST`:`PORT` (default 127.0.0.1:8000). With no `WAYCORE_BASE_URL` configured the lifespan starts
the local Waycore sandbox in-process and talks to it through `httpx.ASGITransport`, so the whole
journey works offline. The browser only ever talks to this app; only the lifespan's single
`WaycoreClient` talks to Waycore.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp

from config import Settings, load_settings
from host import DemoAuth, HostAuth
from onboarding.entities import EntityResolver
from onboarding.operations import purge_periodically, register_webhook
from security import CSRFMiddleware, SecurityHeadersMiddleware
from store import Store
from views import EXCEPTION_HANDLERS, WEBHOOK_PATH, AppState, csrf_refused, routes
from views.guards import STATE_KEY
from views.render import configure_templates
from waycore.client import WaycoreClient

ROOT = Path(__file__).resolve().parent


def _waycore_client(
    settings: Settings,
    key: str,
    transport: httpx.AsyncBaseTransport | None,
    sandbox_app: object | None,
) -> WaycoreClient:
    """The app's one Waycore client: over `transport` (tests), in-process to the embedded
    sandbox, or over the network to `WAYCORE_BASE_URL`."""
    if transport is not None:
        base = settings.waycore_base_url or "https://api.waycore.test"
        return WaycoreClient.create(base, key, transport=transport)
    if sandbox_app is not None:
        return WaycoreClient.create(
            "http://waycore-sandbox",
            key,
            transport=httpx.ASGITransport(app=sandbox_app),  # type: ignore[arg-type]
            timeout=settings.waycore_timeout_seconds,
        )
    if not key:
        raise RuntimeError("WAYCORE_API_KEY must be set when WAYCORE_BASE_URL is set")
    assert settings.waycore_base_url is not None
    return WaycoreClient.create(
        settings.waycore_base_url, key, timeout=settings.waycore_timeout_seconds
    )


async def _webhook_secret(settings: Settings, client: WaycoreClient, embedded: bool) -> str | None:
    """The receiver's signing secret: configured for a real Waycore; with the embedded sandbox,
    registered at start."""
    if settings.webhook_secret is not None:
        return str(settings.webhook_secret)
    if not (embedded and settings.webhook_url):
        return None
    return await register_webhook(client, settings.webhook_url)


class OnboardingApp(Starlette):
    """Starlette, with the security headers as the outermost layer: Starlette renders the 500
    page in its `ServerErrorMiddleware`, outside every user middleware, so only from out here
    does that page get the same headers as every other."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeadersMiddleware(super().build_middleware_stack())


def create_app(
    settings: Settings,
    *,
    auth_backend: HostAuth | None = None,
    waycore_transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """Build the app. `auth_backend` is the host's authentication (default: demo sign-in);
    `waycore_transport` replaces the network to Waycore (tests)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, AppState]]:
        async with contextlib.AsyncExitStack() as stack:
            store = await Store.open(settings.database_path, draft_ttl_days=settings.draft_ttl_days)
            stack.push_async_callback(store.close)
            await store.purge_expired()
            key = str(settings.waycore_api_key or "")
            sandbox_app = None
            if waycore_transport is None and settings.uses_embedded_sandbox:
                # Imported here: an app configured for a real Waycore never loads the sandbox.
                from waycore.sandbox import Sandbox, SandboxConfig

                key = key or "way_test_local_" + secrets.token_urlsafe(24)
                sandbox = Sandbox(
                    SandboxConfig(
                        api_key=key,
                        database=settings.sandbox_database,
                        activation_seconds=settings.sandbox_activation_seconds,
                        seed=settings.sandbox_seed,
                    )
                )
                await stack.enter_async_context(sandbox)
                app.state.sandbox = sandbox
                sandbox_app = sandbox.app
            client = _waycore_client(settings, key, waycore_transport, sandbox_app)
            stack.push_async_callback(client.aclose)
            resolver = EntityResolver(store, client)
            stack.push_async_callback(resolver.aclose)
            webhook_secret = await _webhook_secret(settings, client, sandbox_app is not None)
            purger = asyncio.create_task(purge_periodically(store))
            stack.callback(purger.cancel)
            state = AppState(
                settings=settings,
                store=store,
                waycore=client,
                auth=auth_backend or DemoAuth(store),
                entities=resolver,
                webhook_secret=webhook_secret,
            )
            yield {STATE_KEY: state}

    templates = configure_templates(Jinja2Templates(directory=ROOT / "templates"), settings)
    static = Mount("/static", StaticFiles(directory=ROOT / "static"), name="static")
    middleware = [
        Middleware(
            SessionMiddleware,
            secret_key=settings.secret_key,
            session_cookie="onboarding_session",
            max_age=settings.session_max_age_seconds,
            same_site="lax",
            https_only=settings.session_https_only,
        ),
        # The webhook receiver is signed by Waycore instead.
        Middleware(CSRFMiddleware, refuse=csrf_refused, exempt_paths=[WEBHOOK_PATH]),
    ]
    app = OnboardingApp(
        debug=settings.debug,
        routes=[*routes, static],
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.templates = templates
    return app


def main() -> None:
    import uvicorn

    settings = load_settings()
    if settings.uses_embedded_sandbox and not settings.webhook_url:
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
        settings = replace(settings, webhook_url=f"http://{host}:{settings.port}{WEBHOOK_PATH}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        # Activation polls every 5 s: keep connections open longer than that between polls.
        timeout_keep_alive=30,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
