"""The host seam: who is signed in, for which customer (tenant), with which role.

This is the one place a host platform plugs in its own authentication. The app asks a `HostAuth`
for the `HostUser` behind a request and nothing else; everything downstream (tenant scoping,
entity mapping, permissions) keys off `HostUser.tenant.id` and `HostUser.role`.

`DemoAuth` is the embedded default: a sign-in page that lists the seeded customers of
`DEMO_DIRECTORY`, server-side sessions in the store, and a signed cookie holding only the session
id. A host replaces it by passing its own `HostAuth` to `server.create_app(settings, auth=...)`
(e.g. one that reads the host's SSO session and maps its company id to `Tenant.id`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from starlette.requests import Request

from store import Store

Role = Literal["admin", "member", "viewer"]
Permission = Literal["read", "connect", "delete"]

#: admin may do everything including delete; member may start, continue and sync connections;
#: viewer only reads.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    "admin": frozenset({"read", "connect", "delete"}),
    "member": frozenset({"read", "connect"}),
    "viewer": frozenset({"read"}),
}


@dataclass(frozen=True)
class Tenant:
    """A host customer (company). `id` becomes Waycore's `externalEntityId`."""

    id: str
    name: str


@dataclass(frozen=True)
class HostUser:
    id: str
    name: str
    email: str
    role: Role
    tenant: Tenant

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


class HostAuth(Protocol):
    """What the app needs from the host's authentication."""

    async def current_user(self, request: Request) -> HostUser | None:
        """The signed-in user behind `request`, or None."""
        ...


class DemoDirectory:
    """Seeded host customers and their users, for demo mode."""

    def __init__(self, users: list[HostUser]) -> None:
        self._users = {user.id: user for user in users}

    def get(self, user_id: str) -> HostUser | None:
        return self._users.get(user_id)

    def users(self) -> list[HostUser]:
        return list(self._users.values())

    def tenants(self) -> list[tuple[Tenant, list[HostUser]]]:
        grouped: dict[str, tuple[Tenant, list[HostUser]]] = {}
        for user in self._users.values():
            grouped.setdefault(user.tenant.id, (user.tenant, []))[1].append(user)
        return list(grouped.values())


_ACME = Tenant("acme-manufacturing", "Acme Manufacturing Ltd")
_GLOBEX = Tenant("globex-treasury", "Globex Treasury Inc")

DEMO_DIRECTORY = DemoDirectory(
    [
        HostUser("u-alice", "Alice Admin", "alice@acme.example", "admin", _ACME),
        HostUser("u-bob", "Bob Member", "bob@acme.example", "member", _ACME),
        HostUser("u-carol", "Carol Viewer", "carol@acme.example", "viewer", _ACME),
        HostUser("u-dana", "Dana Admin", "dana@globex.example", "admin", _GLOBEX),
        HostUser("u-erin", "Erin Viewer", "erin@globex.example", "viewer", _GLOBEX),
    ]
)

#: Key in the signed session cookie holding the server-side session id.
SESSION_ID_KEY = "sid"


class DemoAuth:
    """Demo sign-in: the cookie names a server-side session row; sign-out deletes that row."""

    def __init__(self, store: Store, directory: DemoDirectory = DEMO_DIRECTORY) -> None:
        self.store = store
        self.directory = directory

    async def current_user(self, request: Request) -> HostUser | None:
        sid = request.session.get(SESSION_ID_KEY)
        if not isinstance(sid, str):
            return None
        record = await self.store.get_session(sid)
        if record is None:
            return None
        user = self.directory.get(record.user_id)
        if user is None or user.tenant.id != record.tenant_id:
            return None
        return user
