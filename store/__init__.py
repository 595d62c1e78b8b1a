"""SQLite persistence for the host app (aiosqlite): sessions, entity map, drafts, connections.

`Store` is the only object views use for local state; every query that touches tenant data takes
the tenant id and filters by it, so no view can read or change another tenant's rows whatever id
arrives in a URL or form.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import aiosqlite

from store import db as _db

DAY = 24 * 60 * 60


@dataclass(frozen=True)
class Draft:
    """Local, non-secret wizard progress of one tenant."""

    id: str
    tenant_id: str
    created_by: str
    institution_id: str | None
    institution_name: str | None
    portal_url: str | None
    requested_institution_name: str | None
    connection_id: str | None
    created_at: float
    updated_at: float

    @property
    def display_name(self) -> str:
        return self.institution_name or self.requested_institution_name or "New connection"


@dataclass(frozen=True)
class OwnedConnection:
    """The local record proving a tenant owns a Waycore connection."""

    connection_id: str
    tenant_id: str
    institution_name: str | None
    requested_institution_name: str | None
    sync_allowed_at: float | None
    created_at: float
    #: When the connection was first seen ready and its drafts were cleared; None before.
    settled_at: float | None = None


@dataclass(frozen=True)
class SessionRecord:
    """A signed-in session: who it is for (as the sign-in said), and until when."""

    sid: str
    user_id: str
    tenant_id: str
    expires_at: float
    user_name: str | None = None
    user_email: str | None = None
    role: str | None = None
    tenant_name: str | None = None


@dataclass(frozen=True)
class SessionUser:
    """Who a new session is for."""

    user_id: str
    name: str
    email: str
    role: str
    tenant_id: str
    tenant_name: str


def _draft(row: Any) -> Draft:
    return Draft(**{key: row[key] for key in row.keys()})  # noqa: SIM118 (sqlite3.Row)


def _owned(row: Any) -> OwnedConnection:
    return OwnedConnection(**{key: row[key] for key in row.keys()})  # noqa: SIM118


class Store:
    """All local reads and writes. Build with `await Store.open(path)`; close with `close()`."""

    def __init__(self, db: aiosqlite.Connection, *, draft_ttl_days: int = 30) -> None:
        self._db = db
        self.draft_ttl_seconds = draft_ttl_days * DAY

    @classmethod
    async def open(cls, path: str, *, draft_ttl_days: int = 30) -> Store:
        return cls(await _db.connect(path), draft_ttl_days=draft_ttl_days)

    async def close(self) -> None:
        await self._db.close()

    async def ping(self) -> None:
        """Raise unless the database answers a query (readiness)."""
        row = await self._one("SELECT 1", ())
        if row is None or row[0] != 1:
            raise RuntimeError("the database answered SELECT 1 with nothing")

    async def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        cursor = await self._db.execute(sql, params)
        return cursor.rowcount

    async def _one(self, sql: str, params: tuple[Any, ...]) -> Any:
        async with self._db.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def _all(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        async with self._db.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    # ------------------------------------------------------------------ sessions

    async def create_session(self, user: SessionUser, max_age: int) -> str:
        """A new server-side session id (sign-in always gets a fresh one)."""
        sid = secrets.token_urlsafe(32)
        now = time.time()
        await self._write(
            "INSERT INTO sessions (sid, user_id, tenant_id, created_at, expires_at, user_name,"
            " user_email, role, tenant_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                sid,
                user.user_id,
                user.tenant_id,
                now,
                now + max_age,
                user.name,
                user.email,
                user.role,
                user.tenant_name,
            ),
        )
        return sid

    async def get_session(self, sid: str) -> SessionRecord | None:
        row = await self._one(
            "SELECT sid, user_id, tenant_id, expires_at, user_name, user_email, role, tenant_name"
            " FROM sessions WHERE sid = ? AND expires_at > ?",
            (sid, time.time()),
        )
        return SessionRecord(**dict(row)) if row else None

    # ------------------------------------------------------------------ handoff tokens

    async def claim_token(self, jti: str, expires_at: float) -> bool:
        """True the first time a single-use token id is presented (kept until it expires)."""
        count = await self._write(
            "INSERT OR IGNORE INTO handoff_tokens (jti, expires_at) VALUES (?, ?)",
            (jti, expires_at),
        )
        return count > 0

    async def delete_session(self, sid: str) -> None:
        await self._write("DELETE FROM sessions WHERE sid = ?", (sid,))

    # ------------------------------------------------------------------ entity map

    async def entity_for(self, tenant_id: str) -> str | None:
        row = await self._one("SELECT entity_id FROM entity_map WHERE tenant_id = ?", (tenant_id,))
        return str(row["entity_id"]) if row else None

    async def map_entity(self, tenant_id: str, entity_id: str) -> str:
        """Record tenant -> entity once; returns the mapping that stands (first writer wins)."""
        await self._write(
            "INSERT OR IGNORE INTO entity_map (tenant_id, entity_id, created_at) VALUES (?, ?, ?)",
            (tenant_id, entity_id, time.time()),
        )
        mapped = await self.entity_for(tenant_id)
        assert mapped is not None
        return mapped

    async def unmap_entity(self, tenant_id: str, entity_id: str) -> None:
        """Forget the mapping, only if it still points at `entity_id`."""
        await self._write(
            "DELETE FROM entity_map WHERE tenant_id = ? AND entity_id = ?", (tenant_id, entity_id)
        )

    # ------------------------------------------------------------------ drafts

    def _fresh_after(self) -> float:
        return time.time() - self.draft_ttl_seconds

    async def create_draft(
        self,
        tenant_id: str,
        created_by: str,
        *,
        institution_id: str | None = None,
        institution_name: str | None = None,
        portal_url: str | None = None,
        requested_institution_name: str | None = None,
    ) -> Draft:
        draft_id = "drf_" + secrets.token_hex(8)
        now = time.time()
        await self._write(
            "INSERT INTO drafts (id, tenant_id, created_by, institution_id, institution_name,"
            " portal_url, requested_institution_name, connection_id, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
            (
                draft_id,
                tenant_id,
                created_by,
                institution_id,
                institution_name,
                portal_url,
                requested_institution_name,
                now,
                now,
            ),
        )
        draft = await self.get_draft(tenant_id, draft_id)
        assert draft is not None
        return draft

    async def get_draft(self, tenant_id: str, draft_id: str) -> Draft | None:
        row = await self._one(
            "SELECT * FROM drafts WHERE tenant_id = ? AND id = ? AND updated_at > ?",
            (tenant_id, draft_id, self._fresh_after()),
        )
        return _draft(row) if row else None

    async def update_draft(self, tenant_id: str, draft_id: str, **fields: str | None) -> None:
        allowed = {"institution_id", "institution_name", "portal_url", "requested_institution_name"}
        allowed.add("connection_id")
        if not fields or not set(fields) <= allowed:
            raise ValueError(f"cannot update draft fields {sorted(fields)}")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        await self._write(
            f"UPDATE drafts SET {assignments}, updated_at = ? WHERE tenant_id = ? AND id = ?",
            (*fields.values(), time.time(), tenant_id, draft_id),
        )

    async def list_drafts(self, tenant_id: str) -> list[Draft]:
        rows = await self._all(
            "SELECT * FROM drafts WHERE tenant_id = ? AND updated_at > ? ORDER BY updated_at DESC",
            (tenant_id, self._fresh_after()),
        )
        return [_draft(row) for row in rows]

    async def delete_draft(self, tenant_id: str, draft_id: str) -> bool:
        count = await self._write(
            "DELETE FROM drafts WHERE tenant_id = ? AND id = ?", (tenant_id, draft_id)
        )
        return count > 0

    async def delete_drafts_for_connection(self, tenant_id: str, connection_id: str) -> None:
        await self._write(
            "DELETE FROM drafts WHERE tenant_id = ? AND connection_id = ?",
            (tenant_id, connection_id),
        )

    async def purge_expired(self) -> int:
        """Delete drafts untouched for the TTL and expired sessions; returns drafts deleted."""
        count = await self._write(
            "DELETE FROM drafts WHERE updated_at <= ?", (self._fresh_after(),)
        )
        await self._write("DELETE FROM sessions WHERE expires_at <= ?", (time.time(),))
        await self._write("DELETE FROM handoff_tokens WHERE expires_at <= ?", (time.time(),))
        return count

    # ------------------------------------------------------------------ owned connections

    async def record_connection(
        self,
        tenant_id: str,
        connection_id: str,
        *,
        institution_name: str | None = None,
        requested_institution_name: str | None = None,
    ) -> bool:
        """Record that `tenant_id` owns `connection_id`. Never moves a connection between tenants:
        returns False when another tenant already owns it."""
        await self._write(
            "INSERT INTO connections (connection_id, tenant_id, institution_name,"
            " requested_institution_name, created_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (connection_id) DO UPDATE SET"
            " institution_name = COALESCE(excluded.institution_name, institution_name),"
            " requested_institution_name = COALESCE(excluded.requested_institution_name,"
            " requested_institution_name)"
            " WHERE tenant_id = excluded.tenant_id",
            (connection_id, tenant_id, institution_name, requested_institution_name, time.time()),
        )
        return await self.owned_connection(tenant_id, connection_id) is not None

    async def owned_connection(self, tenant_id: str, connection_id: str) -> OwnedConnection | None:
        row = await self._one(
            "SELECT * FROM connections WHERE tenant_id = ? AND connection_id = ?",
            (tenant_id, connection_id),
        )
        return _owned(row) if row else None

    async def tenant_of(self, connection_id: str) -> str | None:
        """The owning tenant, for system events (webhooks) that carry no signed-in user."""
        row = await self._one(
            "SELECT tenant_id FROM connections WHERE connection_id = ?", (connection_id,)
        )
        return str(row["tenant_id"]) if row else None

    async def owned_connections(self, tenant_id: str) -> list[OwnedConnection]:
        rows = await self._all(
            "SELECT * FROM connections WHERE tenant_id = ? ORDER BY created_at DESC", (tenant_id,)
        )
        return [_owned(row) for row in rows]

    async def forget_connection(self, tenant_id: str, connection_id: str) -> None:
        await self.delete_drafts_for_connection(tenant_id, connection_id)
        await self._write(
            "DELETE FROM connections WHERE tenant_id = ? AND connection_id = ?",
            (tenant_id, connection_id),
        )

    async def settle_connection(self, tenant_id: str, connection_id: str) -> None:
        """The connection is ready: delete its drafts, then remember that this was done (both
        idempotent: an interruption between them only means doing it again next time)."""
        await self.delete_drafts_for_connection(tenant_id, connection_id)
        await self._write(
            "UPDATE connections SET settled_at = ? WHERE tenant_id = ? AND connection_id = ?",
            (time.time(), tenant_id, connection_id),
        )

    async def set_sync_allowed_at(self, tenant_id: str, connection_id: str, when: float) -> None:
        await self._write(
            "UPDATE connections SET sync_allowed_at = ? WHERE tenant_id = ? AND connection_id = ?",
            (when, tenant_id, connection_id),
        )

    # ------------------------------------------------------------------ webhook events

    async def first_delivery(self, event_id: str, event_type: str) -> bool:
        """True the first time an event id is seen (Waycore may deliver it more than once)."""
        count = await self._write(
            "INSERT OR IGNORE INTO webhook_events (event_id, type, received_at) VALUES (?, ?, ?)",
            (event_id, event_type, time.time()),
        )
        return count > 0
