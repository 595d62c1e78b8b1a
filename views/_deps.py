"""Typed access to what the lifespan opened, and the signed-in user check every view makes."""

from __future__ import annotations

from typing import TypedDict

from starlette.requests import Request

from config import Settings
from host import HostAuth, HostUser, Permission
from store import Store
from views._entities import EntityResolver
from waycore.client import WaycoreClient


class AppState(TypedDict):
    """Lifespan state: one Waycore client, one store, the host auth seam, the entity resolver."""

    settings: Settings
    store: Store
    waycore: WaycoreClient
    auth: HostAuth
    entities: EntityResolver
    #: Signing secret of the webhook registration for `/webhooks/waycore`; None: receiver off.
    webhook_secret: str | None


class SignInRequired(Exception):
    """No signed-in user: send the browser to the sign-in page."""


class PermissionDenied(Exception):
    """The signed-in user's role does not allow this action (403 page)."""

    def __init__(self, user: HostUser, permission: Permission) -> None:
        super().__init__(f"{user.id} ({user.role}) may not {permission}")
        self.user = user
        self.permission = permission


def settings(request: Request) -> Settings:
    value: Settings = request.state.settings
    return value


def store(request: Request) -> Store:
    value: Store = request.state.store
    return value


def waycore(request: Request) -> WaycoreClient:
    value: WaycoreClient = request.state.waycore
    return value


def entities(request: Request) -> EntityResolver:
    value: EntityResolver = request.state.entities
    return value


async def current_user(request: Request) -> HostUser | None:
    auth: HostAuth = request.state.auth
    user = await auth.current_user(request)
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
