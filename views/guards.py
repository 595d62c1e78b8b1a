"""Who is asking, and what they may touch: the checks every view opens with.

- `app_state(request)`: what the lifespan opened (one store, one Waycore client, the host's
  auth, the entity resolver), typed;
- `require_user(request, permission)`: the signed-in user with that permission, else
  `SignInRequired` (to the sign-in page) or `PermissionDenied` (403);
- `hold_for_change(request, user)`: long-poll, a status read held until the state moves;
- `owned_connection(request, user)`: the connection in the URL, checked for the shape of an id
  and proven the tenant's before any Waycore call (`onboarding.errors.NotOwned`, a 404,
  otherwise); `owned_draft` likewise for a draft;
- `mark_seen(request, user, connection)`: what the user has now seen of a connection;
- `ensure_step(request, step, connection)`: returns when `step` may show this connection, else
  raises `WrongStep`, which navigates to the step it belongs on (the journey table,
  `onboarding.journey`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from config import Settings
from host import HostAuth, HostUser, Permission
from onboarding import service
from onboarding.audit import AuditTrail
from onboarding.entities import EntityResolver
from onboarding.errors import NotOwned
from onboarding.events import HostEvents
from onboarding.journey import Step, may_show
from onboarding.live import LiveStatus, Reading
from store import Draft, OwnedConnection, Store
from views import htmx
from views.inputs import is_id
from views.status import version_param
from views.urls import step_url
from waycore.client import WaycoreClient
from waycore.models import Connection


@dataclass(frozen=True)
class AppState:
    """Opened by the lifespan: one Waycore client, one store, the host auth seam, the entity
    resolver, the webhook receiver's signing secret (None: receiver off), the host events and
    the audit trail."""

    settings: Settings
    store: Store
    waycore: WaycoreClient
    auth: HostAuth
    entities: EntityResolver
    webhook_secret: str | None = field(repr=False)  # a secret: never in a repr or a log
    events: HostEvents
    audit: AuditTrail
    #: Every read of a connection: one view of its state for all tabs, users and instances.
    live: LiveStatus


#: Key of the `AppState` in the lifespan state (`request.scope["state"]`).
STATE_KEY = "app"


def app_state(request: Request) -> AppState:
    """The lifespan's `AppState` for this request."""
    state = request.scope.get("state") or {}
    value = state.get(STATE_KEY)
    if not isinstance(value, AppState):
        raise RuntimeError("the app's lifespan has not run")
    return value


class SignInRequired(Exception):
    """No signed-in user: send the browser to the sign-in page."""


class PermissionDenied(Exception):
    """The signed-in user's role does not allow this action (403 page)."""

    def __init__(self, user: HostUser, permission: Permission) -> None:
        super().__init__(f"{user.id} ({user.role}) may not {permission}")
        self.user = user
        self.permission = permission


async def current_user(request: Request) -> HostUser | None:
    """The signed-in user (also kept on `request.state.user` for the page header), or None."""
    user = await app_state(request).auth.current_user(request)
    request.state.user = user
    return user


async def require_user(request: Request, permission: Permission = "read") -> HostUser:
    """The signed-in user, allowed `permission`; raises `SignInRequired` / `PermissionDenied`."""
    user = await current_user(request)
    if user is None:
        raise SignInRequired()
    if not user.can(permission):
        raise PermissionDenied(user, permission)
    return user


async def owned_draft(request: Request, user: HostUser, draft_id: str | None) -> Draft | None:
    """The tenant's draft named in the URL, a form or a query (None when none is named); an id
    of the wrong shape (`None`, see `views.inputs`), a foreign, expired or unknown id raises
    `NotOwned` (404)."""
    if draft_id == "":
        return None
    if draft_id is None or not is_id(draft_id):
        raise NotOwned(str(draft_id))
    return await service.owned_draft(app_state(request).store, user.tenant.id, draft_id)


def connection_id(request: Request) -> str:
    """The connection id in the URL, checked for the shape of an id before it goes anywhere
    (`NotOwned`, a 404, otherwise)."""
    value = str(request.path_params["connection_id"])
    if not is_id(value):
        raise NotOwned(value)
    return value


async def read_connection(request: Request, user: HostUser) -> Reading:
    """The connection in the URL as the app last saw it, with the tenant's record (see
    `onboarding.service.read_connection`)."""
    state = app_state(request)
    return await service.read_connection(
        state.live, state.events, user.tenant.id, connection_id(request)
    )


async def owned_connection(request: Request, user: HostUser) -> tuple[OwnedConnection, Connection]:
    """The tenant's record and Waycore's view of the connection in the URL."""
    reading = await read_connection(request, user)
    return reading.owned, reading.connection


async def hold_for_change(request: Request, user: HostUser) -> bool:
    """Long-poll: when the read asks to wait (`?wait=1&v=<version shown>`), hold it until the
    connection's state moves past that version or the hold ends. True when it was held (the
    page may read again at once); False when it may not be held now (answer, poll later)."""
    state = app_state(request)
    version = version_param(request.query_params.get("v"))
    if (
        not htmx.is_htmx(request)
        or request.query_params.get("wait") != "1"
        or version is None
        or state.settings.long_poll_seconds <= 0
    ):
        return False
    held = await state.live.wait(user.tenant.id, connection_id(request), version)
    return held is not None


async def mark_seen(request: Request, user: HostUser, connection: Connection) -> None:
    """`user` has now seen `connection` in its status (a screen of it is being shown): the
    list's "changed since you last looked" marks compare with it."""
    await service.mark_seen(app_state(request).store, user, connection)


class WrongStep(Exception):
    """The connection belongs on another screen: navigate there (303 or `HX-Location`)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


def ensure_step(request: Request, step: Step, connection: Connection) -> None:
    """Return when `step` may show `connection`; otherwise raise `WrongStep` to where it
    belongs."""
    if not may_show(step, connection):
        raise WrongStep(step_url(request, connection))
