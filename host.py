"""The host seam: who is signed in, for which customer (tenant), with which role.

This is the one place a host platform plugs in its own authentication. The app asks a `HostAuth`
for the `HostUser` behind a request and nothing else; everything downstream (tenant scoping,
entity mapping, permissions) keys off `HostUser.tenant.id` and `HostUser.role`.

`SessionAuth` is the default: server-side sessions in the store, a signed cookie holding only the
session id. They are started by the demo sign-in (a page listing the seeded customers of
`DEMO_DIRECTORY`, embedded default) or by the host's sign-in handoff (`handoff.py`: a short-lived
token the host's backend signs). A host in Python may instead pass its own `HostAuth` to
`server.create_app(settings, auth_backend=...)` (e.g. one that reads the host's session and maps
its company id to `Tenant.id`); `FirstOf(host_auth, SessionAuth(store))` accepts both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from starlette.requests import Request

from store import Store

Role = Literal["admin", "member", "viewer"]
Permission = Literal["read", "connect", "delete", "audit"]

#: admin may do everything including delete and reading the audit trail; member may start,
#: continue and sync connections; viewer only reads.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    "admin": frozenset({"read", "connect", "delete", "audit"}),
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


def role_named(name: object) -> Role | None:
    """The role spelled `name`, or None for anything else."""
    for role in ROLE_PERMISSIONS:
        if name == role:
            return role
    return None


class SessionAuth:
    """The app's own sessions: the cookie names a server-side session row, which says who it is
    for; sign-out deletes that row. Demo sign-in and the host's sign-in handoff both start one
    (`views.auth.start_session`)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def current_user(self, request: Request) -> HostUser | None:
        sid = request.session.get(SESSION_ID_KEY)
        if not isinstance(sid, str):
            return None
        record = await self.store.get_session(sid)
        role = role_named(record.role) if record else None
        if record is None or role is None or not record.user_name:
            return None
        tenant = Tenant(record.tenant_id, record.tenant_name or record.tenant_id)
        return HostUser(record.user_id, record.user_name, record.user_email or "", role, tenant)


class FirstOf:
    """The first of several `HostAuth`s that knows the user: e.g. the host's own, then the
    app's sessions started by the sign-in handoff."""

    def __init__(self, *backends: HostAuth) -> None:
        self.backends = backends

    async def current_user(self, request: Request) -> HostUser | None:
        for backend in self.backends:
            user = await backend.current_user(request)
            if user is not None:
                return user
        return None
