"""The app factory: routes, middleware, exception handlers and the lifespan, wired together.

`create_app(settings)` builds the Starlette app; `python server.py` serves it with uvicorn on
`HOST`:`PORT` (default 127.0.0.1:8000). With no `WAYCORE_BASE_URL` configured the lifespan starts
the local Waycore sandbox in-process and talks to it through `httpx.ASGITransport`, so the whole
journey works offline. The browser only ever talks to this app; only the lifespan's single
`WaycoreClient` talks to Waycore. The lifespan also starts the host-events sender (when
`HOST_EVENTS_URL` is set: it resumes the events still pending in the store's outbox) and the
periodic purge. Every request gets an id (`logs.RequestIdMiddleware`) that is on each of its log
lines and answered as `X-Request-ID`.

A configuration that cannot start (no `SECRET_KEY`, say) ends `python server.py` with one line
on stderr and exit status 2. The store is opened first: a SQLite file is migrated, a Postgres
database must already be (`python manage.py migrate`), or `python server.py` exits with one line
saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Lifespan

from config import ConfigError, Settings, load_settings
from host import HostAuth, SessionAuth
from logs import LOG_CONFIG, RequestIdMiddleware, lean_records
from mounting import RUNTIME, KeepHostSession, StartOnFirstUse
from onboarding.audit import AuditTrail
from onboarding.entities import EntityResolver
from onboarding.events import HostEvents, Sender
from onboarding.live import LiveStatus
from onboarding.operations import purge_periodically, register_webhook
from security import CSRFMiddleware, SecurityHeadersMiddleware
from sessions import SessionMiddleware
from store import SchemaOutOfDate, Store
from views import EXCEPTION_HANDLERS, WEBHOOK_PATH, AppState, csrf_refused, routes
from views.guards import STATE_KEY
from views.render import make_templates
from views.routing import Router
from waycore.client import WaycoreClient

ROOT = Path(__file__).resolve().parent
log = logging.getLogger("app")


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


def _host_events(
    settings: Settings, store: Store, transport: httpx.AsyncBaseTransport | None
) -> tuple[HostEvents, Sender | None]:
    """Events are always logged; queued in the store's outbox and delivered too when the host
    configured its endpoint."""
    if not settings.host_events_url or settings.host_events_secret is None:
        return HostEvents(), None
    sender = Sender(
        settings.host_events_url, str(settings.host_events_secret), store, transport=transport
    )
    return HostEvents(sender), sender


class OnboardingApp(Starlette):
    """Starlette, with the security headers as the outermost layer: Starlette renders the 500
    page in its `ServerErrorMiddleware`, outside every user middleware, so only from out here
    does that page get the same headers as every other. Its router remembers which route
    answered each path (`views.routing`)."""

    def __init__(
        self, *, routes: list[BaseRoute], lifespan: Lifespan[Starlette], **kwargs: Any
    ) -> None:
        super().__init__(routes=routes, lifespan=lifespan, **kwargs)
        self.router = Router(routes, lifespan=lifespan)

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeadersMiddleware(super().build_middleware_stack())


def create_app(
    settings: Settings,
    *,
    auth_backend: HostAuth | None = None,
    waycore_transport: httpx.AsyncBaseTransport | None = None,
    host_events_transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """Build the app. `auth_backend` is the host's authentication (default: the app's own
    sessions, started by the demo sign-in or the host's sign-in handoff); `waycore_transport`
    and `host_events_transport` replace the network to Waycore and to the host's events
    endpoint (tests). Serve it with `python server.py`, or mount it in a host's app
    (`mounting.py`)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, AppState]]:
        async with contextlib.AsyncExitStack() as stack:
            store = await Store.open(settings.database, draft_ttl_days=settings.draft_ttl_days)
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
            stack.push_async_callback(_stop, purger)
            events, sender = _host_events(settings, store, host_events_transport)
            if sender is not None:
                stack.push_async_callback(sender.aclose)
                worker = asyncio.create_task(sender.run())
                stack.push_async_callback(_stop, worker)
            app.state.host_events = events
            live = LiveStatus(
                store,
                client,
                interval=settings.poll_interval_seconds,
                hold=settings.long_poll_seconds,
                max_waiters=settings.long_poll_max_waiters,
            )
            await live.start()
            stack.push_async_callback(live.close)  # every held request is released
            state = AppState(
                settings=settings,
                store=store,
                waycore=client,
                auth=auth_backend or SessionAuth(store),
                entities=resolver,
                webhook_secret=webhook_secret,
                events=events,
                audit=AuditTrail(store),
                live=live,
            )
            _warn_about_demo_mode(settings)
            setattr(app.state, RUNTIME, {STATE_KEY: state})
            stack.callback(delattr, app.state, RUNTIME)
            yield {STATE_KEY: state}

    template_dirs = [ROOT / "templates"]
    if settings.template_overrides:  # a designer's templates are searched first
        template_dirs.insert(0, Path(settings.template_overrides))
    templates = make_templates(template_dirs, settings)
    static = Mount("/static", StaticFiles(directory=ROOT / "static"), name="static")
    middleware = [
        Middleware(RequestIdMiddleware),
        Middleware(KeepHostSession),  # mounted in a host: the host's session stays the host's
        Middleware(
            SessionMiddleware,
            secret_key=settings.secret_key,
            session_cookie="onboarding_session",
            max_age=settings.session_max_age_seconds,
            same_site="lax",
            https_only=settings.session_https_only,
            path=settings.root_path or "/",
        ),
        Middleware(
            CSRFMiddleware,
            refuse=csrf_refused,
            public_origins=settings.public_origins,
            exempt_paths=[WEBHOOK_PATH],  # signed by Waycore instead
        ),
    ]
    app = OnboardingApp(
        debug=settings.debug,
        routes=[*routes, static],
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.templates = templates
    app.add_middleware(StartOnFirstUse, kit=app, key=STATE_KEY)
    return app


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel a background loop and wait until it has ended (before what it uses is closed)."""
    task.cancel()
    await asyncio.wait([task], timeout=5)


def _warn_about_demo_mode(settings: Settings) -> None:
    if settings.demo_mode and not settings.uses_embedded_sandbox:
        log.warning(
            "DEMO_MODE is on with a real Waycore (%s): anyone who can reach this app can sign in "
            "as any demo user. Turn it off for anything but a demonstration.",
            settings.waycore_base_url,
        )


def settings_or_exit(program: str) -> Settings:
    """The settings, or one line on stderr and exit status 2 (no traceback) when the
    configuration cannot start (e.g. `SECRET_KEY` missing)."""
    try:
        return load_settings()
    except ConfigError as exc:
        sys.stderr.write(f"{program}: configuration error: {exc}\n")
        raise SystemExit(2) from None


async def _open_database(settings: Settings) -> None:
    """Before serving: SQLite is migrated; Postgres must already be (`manage.py migrate`)."""
    store = await Store.open(settings.database, draft_ttl_days=settings.draft_ttl_days)
    await store.close()


#: The collector's thresholds under `python server.py` (Python's default: 700, 10, 10).
GC_THRESHOLDS = (50_000, 20, 20)


def main() -> None:
    import uvicorn

    settings = settings_or_exit("server.py")
    try:
        asyncio.run(_open_database(settings))
    except SchemaOutOfDate as exc:
        sys.exit(f"server.py: {exc}")
    if settings.uses_embedded_sandbox and not settings.webhook_url:
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
        settings = replace(settings, webhook_url=f"http://{host}:{settings.port}{WEBHOOK_PATH}")
    app = create_app(settings)
    # Everything built so far lives as long as the process: keep it out of the collector's
    # scans, and collect the youngest objects less often (a request allocates many short-lived
    # ones), so thousands of open connections do not turn into long pauses.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    lean_records()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        log_config=LOG_CONFIG,  # every line with its request id
        access_log=False,  # the app writes its own line per request (`logs.access`)
        # Activation polls every 5 s: keep connections open longer than that between polls.
        timeout_keep_alive=30,
        # Behind a proxy that strips the prefix: URLs, redirects and the cookie path carry it.
        root_path=settings.root_path,
        # X-Forwarded-Proto/-For are believed only from these proxies.
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


if __name__ == "__main__":
    main()
