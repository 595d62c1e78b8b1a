"""Persistence for the host app: sessions, entity map, drafts, owned connections, webhook ids.

One codebase on SQLAlchemy 2 async Core for both engines: a SQLite file (aiosqlite; the embedded
default, no server) or Postgres (psycopg 3; several app instances sharing one database). See
docs/database.md for choosing between them, migrations, and the cross-instance primitives.

`Store` is the only object views use for local state; every query that touches tenant data takes
the tenant id and filters by it, so no view can read or change another tenant's rows whatever id
arrives in a URL or form. Timestamps are epoch seconds (floats).

Besides the data, a store coordinates the app instances that share its database:
`async with store.lock(name)` (mutual exclusion), `await store.notify(channel, payload)` and
`async with store.listen(channel) as messages` (wake-ups); see `store.coordination`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from sqlalchemy import (
    Executable,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from caching import MISSING, TTLCache
from store import engine as _engine
from store import migrate as _migrate
from store.coordination import Coordinator, LocalCoordinator, PostgresCoordinator, Subscription
from store.migrate import SchemaOutOfDate
from store.schema import (
    audit_entries,
    backoffs,
    connection_seen,
    connection_state,
    connections,
    drafts,
    entity_map,
    handoff_tokens,
    host_event_outbox,
    sessions,
    webhook_events,
)

__all__ = [
    "Draft",
    "OwnedConnection",
    "SchemaOutOfDate",
    "SessionRecord",
    "Store",
    "Subscription",
]

DAY = 24 * 60 * 60
#: Delivered host events are kept this long (for `manage.py events list`), then purged.
DELIVERED_EVENTS_KEEP_SECONDS = 30 * DAY
#: The lock under which expired drafts and sessions are purged (one instance at a time).
PURGE_LOCK = "drafts:purge"


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


# The reads of every request, built once (SQLAlchemy then reuses their compiled form); each is
# scoped by the tenant it is given, except the session lookup and `tenant_of` (system events).
_PING = select(literal(1).label("one"))
_GET_SESSION = select(
    sessions.c.sid,
    sessions.c.user_id,
    sessions.c.tenant_id,
    sessions.c.expires_at,
    sessions.c.user_name,
    sessions.c.user_email,
    sessions.c.role,
    sessions.c.tenant_name,
).where(sessions.c.sid == bindparam("sid"), sessions.c.expires_at > bindparam("now"))
_ENTITY_FOR = select(entity_map.c.entity_id).where(entity_map.c.tenant_id == bindparam("tenant_id"))
_GET_DRAFT = select(drafts).where(
    drafts.c.tenant_id == bindparam("tenant_id"),
    drafts.c.id == bindparam("draft_id"),
    drafts.c.updated_at > bindparam("fresh_after"),
)
_OPEN_DRAFTS = (
    select(drafts)
    .where(drafts.c.tenant_id == bindparam("tenant_id"))
    .where(drafts.c.updated_at > bindparam("fresh_after"))
    .where(drafts.c.connection_id.is_(None))
    .order_by(drafts.c.updated_at.desc(), drafts.c.id)
    .limit(bindparam("limit"))
)
_OWNED = select(connections).where(
    connections.c.tenant_id == bindparam("tenant_id"),
    connections.c.connection_id == bindparam("connection_id"),
)
_OWNED_LIST = (
    select(connections)
    .where(connections.c.tenant_id == bindparam("tenant_id"))
    .order_by(connections.c.created_at.desc())
)
_TENANT_OF = select(connections.c.tenant_id).where(
    connections.c.connection_id == bindparam("connection_id")
)


def _draft(row: Mapping[str, Any]) -> Draft:
    return Draft(**row)


def _owned(row: Mapping[str, Any]) -> OwnedConnection:
    return OwnedConnection(**row)


@dataclass(frozen=True)
class AuditRecord:
    """One entry of a tenant's audit trail, as kept (see `onboarding.audit`)."""

    id: str
    action: str
    tenant_id: str
    user_id: str
    user_name: str | None
    at: float
    request_id: str | None
    connection_id: str | None
    draft_id: str | None
    #: Comma-separated names of the credential fields sent ("" for none; never values).
    fields: str
    outcome: str | None

    @property
    def field_names(self) -> list[str]:
        return [name for name in self.fields.split(",") if name]


@dataclass(frozen=True)
class OutboxEvent:
    """An event for the host in the durable queue: `body` is exactly what is signed and sent."""

    event_id: str
    type: str
    tenant_id: str | None
    body: str
    attempts: int
    due_at: float
    state: str
    last_error: str | None
    created_at: float
    delivered_at: float | None
    claimed_by: str | None
    claimed_until: float | None


class StoreClosed(RuntimeError):
    """The store was closed (the app is shutting down)."""


class Store:
    """All local reads and writes. Build with `await Store.open(database)`; close with
    `close()`."""

    def __init__(
        self, engine: AsyncEngine, coordinator: Coordinator, *, draft_ttl_days: int = 30
    ) -> None:
        self._engine = engine
        self._coordinator = coordinator
        #: SQLite: this process's writes, one at a time (see `_writer`).
        self._write_turns = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._closed = False
        #: Sessions and ownership are read on every request (every poll): kept a few seconds
        #: in memory, dropped on this instance's own changes at once and on another instance's
        #: as soon as its notification arrives (`INVALIDATE_CHANNEL`).
        self._sessions: TTLCache[str, SessionRecord | None] = TTLCache(CACHE_SECONDS)
        self._owned: TTLCache[tuple[str, str], OwnedConnection | None] = TTLCache(CACHE_SECONDS)
        #: The last state seen of each connection, read on every status check: kept in memory
        #: until it changes (here at once; elsewhere on the notification), at most a while.
        self._states: TTLCache[str, ConnectionState | None] = TTLCache(STATE_CACHE_SECONDS)
        self._entities: TTLCache[str, str | None] = TTLCache(STATE_CACHE_SECONDS)
        #: The connections list's reads of a tenant (its drafts, connections, what each user
        #: saw), kept until the tenant's rows change (here at once, elsewhere on notification).
        self._lists: TTLCache[tuple[str, str, Any], Any] = TTLCache(CACHE_SECONDS)
        #: What each user was last recorded to have seen (`mark_seen` skips a repeat).
        self._seen: TTLCache[tuple[str, str, str], str] = TTLCache(STATE_CACHE_SECONDS)
        #: This instance, in the invalidations it sends (it needs none of its own back).
        self._origin = secrets.token_hex(6)
        self._invalidations: asyncio.Task[None] | None = None
        self.draft_ttl_seconds = draft_ttl_days * DAY
        self.backend = engine.dialect.name
        insert_module = postgresql if self.backend == "postgresql" else sqlite
        self._insert = insert_module.insert
        # Single statements need no BEGIN/COMMIT round trips on Postgres.
        self._autocommit = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.backend == "postgresql"
            else engine
        )

    @classmethod
    async def open(
        cls, database: str, *, draft_ttl_days: int = 30, migrate: bool | None = None
    ) -> Store:
        """Open `database`: a `sqlite:///…` or `postgresql://…` URL, or a SQLite file path.

        `migrate` (default: True for SQLite, False for Postgres) runs the missing migrations;
        otherwise a database not at this code's schema raises `SchemaOutOfDate`."""
        url = _engine.database_url(database)
        engine = _engine.create_engine(url)
        try:
            if migrate if migrate is not None else _engine.is_sqlite(url):
                await _migrate.upgrade(engine)
            else:
                await _migrate.check(engine)
        except BaseException:
            await engine.dispose()
            raise
        coordinator: Coordinator
        if _engine.is_sqlite(url):
            coordinator = LocalCoordinator(_engine.sqlite_file(url))
        else:
            coordinator = PostgresCoordinator(engine, _engine.libpq_conninfo(url))
        store = cls(engine, coordinator, draft_ttl_days=draft_ttl_days)
        store._invalidations = asyncio.create_task(store._follow_invalidations())
        return store

    async def _follow_invalidations(self) -> None:
        """Drop what another instance changed from the in-memory caches."""
        async with self.listen(INVALIDATE_CHANNEL) as messages:
            async for message in messages:
                kind, key, origin = (message.split(" ") + ["", ""])[:3]
                if origin != self._origin:  # this instance dropped its own at once
                    self._drop(kind, unquote(key))

    def _drop(self, kind: str, key: str) -> None:
        if kind == "session":
            self._sessions.drop(key)
        elif kind == "owned":
            self._owned.drop_where(lambda cached: cached[1] == key)
        elif kind == "entity":
            self._entities.drop(key)
        elif kind == "tenant":
            if key == "*":
                self._lists.clear()
            else:
                self._lists.drop_where(lambda cached: cached[0] == key)
        elif kind == "state":
            if key == "*":
                self._states.clear()
            else:
                self._states.drop(key)

    async def _invalidate(self, kind: str, key: str) -> None:
        self._drop(kind, key)
        await self.notify(INVALIDATE_CHANNEL, f"{kind} {quote(key, safe='')} {self._origin}")

    async def close(self) -> None:
        """End every subscription, stop listening, close all connections; later calls raise
        `StoreClosed` instead of quietly opening new connections."""
        self._closed = True
        if self._invalidations is not None:
            self._invalidations.cancel()
            await asyncio.gather(self._invalidations, return_exceptions=True)
        await self._coordinator.close()
        await self._engine.dispose()

    def _connect(self) -> AbstractAsyncContextManager[AsyncConnection]:
        if self._closed:
            raise StoreClosed("the store is closed")
        return self._autocommit.connect()

    def _begin(self) -> AbstractAsyncContextManager[AsyncConnection]:
        if self._closed:
            raise StoreClosed("the store is closed")
        return self._engine.begin()

    async def ping(self) -> None:
        """Raise unless the database answers a query (readiness)."""
        row = await self._one(_PING)
        if row is None or row["one"] != 1:
            raise RuntimeError("the database answered SELECT 1 with nothing")

    @contextlib.asynccontextmanager
    async def _writer(self, *, begin: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection to write on (`begin`: in a transaction, committed when the block ends).
        On SQLite this process's writes take turns: SQLite has one writer at a time, and writers
        that meet there wait in its busy handler's sleeps (1, 2, 5, 10 ms and longer), not in
        line. Postgres writers need no turns."""
        async with contextlib.AsyncExitStack() as stack:
            if self._write_turns is not None:
                await stack.enter_async_context(self._write_turns)
            yield await stack.enter_async_context(self._begin() if begin else self._connect())

    async def _write(self, statement: Executable) -> int:
        """Run one statement in its own transaction; returns the rows it changed."""
        async with self._writer() as connection:
            # An INSERT's row count is kept only when asked (ON CONFLICT DO NOTHING needs it).
            result = await connection.execute(
                statement, execution_options={"preserve_rowcount": True}
            )
            await connection.commit()
            return int(result.rowcount)

    async def _write_returning(self, statement: Executable) -> Mapping[str, Any] | None:
        """Run one statement with `RETURNING` in its own transaction; the row it wrote, if any."""
        async with self._writer() as connection:
            row = (await connection.execute(statement)).mappings().first()
            await connection.commit()
            return dict(row) if row is not None else None

    async def _one(self, statement: Executable, **params: object) -> Mapping[str, Any] | None:
        async with self._connect() as connection:
            row = (await connection.execute(statement, params)).mappings().first()
            return dict(row) if row is not None else None

    async def _all(self, statement: Executable, **params: object) -> list[Mapping[str, Any]]:
        async with self._connect() as connection:
            rows = (await connection.execute(statement, params)).mappings()
            return [dict(row) for row in rows]

    # ------------------------------------------------------------------ coordination

    def lock(self, name: str) -> AbstractAsyncContextManager[bool]:
        """`async with store.lock(name):` mutual exclusion with every instance sharing this
        database (a Postgres advisory lock; an asyncio lock on SQLite). It waits as long as
        another holder keeps it, and is released when the block exits, however it exits.
        On Postgres each held lock occupies one pooled connection."""
        return self._coordinator.lock(name)

    def try_lock(self, name: str) -> AbstractAsyncContextManager[bool]:
        """Like `lock`, without waiting: `async with store.try_lock(name) as acquired:`; when
        `acquired` is False another holder has it and the block runs without it."""
        return self._coordinator.lock(name, wait=False)

    async def notify(self, channel: str, payload: str = "") -> None:
        """Send a short `payload` (under 8000 bytes) to every instance's listeners of
        `channel` (Postgres NOTIFY; in-process on SQLite). At most once, never queued."""
        await self._coordinator.notify(channel, payload)

    def listen(self, channel: str) -> Subscription:
        """`async with store.listen(channel) as messages:` payloads sent on `channel` from the
        moment it is entered; `async for payload in messages` or `await messages.get(timeout)`.
        It ends when the store closes."""
        return self._coordinator.listen(channel)

    # ------------------------------------------------------------------ sessions

    async def create_session(self, user: SessionUser, max_age: int) -> str:
        """A new server-side session id (sign-in always gets a fresh one)."""
        sid = secrets.token_urlsafe(32)
        now = time.time()
        await self._write(
            sessions.insert().values(
                sid=sid,
                user_id=user.user_id,
                tenant_id=user.tenant_id,
                created_at=now,
                expires_at=now + max_age,
                user_name=user.name,
                user_email=user.email,
                role=user.role,
                tenant_name=user.tenant_name,
            )
        )
        return sid

    async def get_session(self, sid: str) -> SessionRecord | None:
        async def load() -> SessionRecord | None:
            row = await self._one(_GET_SESSION, sid=sid, now=time.time())
            return SessionRecord(**row) if row else None

        record = await self._sessions.get_or_load(sid, load)
        return record if record is not None and record.expires_at > time.time() else None

    # ------------------------------------------------------------------ handoff tokens

    async def claim_token(self, jti: str, expires_at: float) -> bool:
        """True the first time a single-use token id is presented (kept until it expires)."""
        count = await self._write(
            self._insert(handoff_tokens)
            .values(jti=jti, expires_at=expires_at)
            .on_conflict_do_nothing()
        )
        return count > 0

    async def delete_session(self, sid: str) -> None:
        await self._write(delete(sessions).where(sessions.c.sid == sid))
        await self._invalidate("session", sid)

    # ------------------------------------------------------------------ entity map

    async def entity_for(self, tenant_id: str) -> str | None:
        """The tenant's Waycore entity, once mapped (a mapping rarely changes: kept in memory
        once known, dropped when it is forgotten here or on another instance)."""
        cached = self._entities.get(tenant_id)
        if cached is not MISSING and cached is not None:
            return cached
        row = await self._one(_ENTITY_FOR, tenant_id=tenant_id)
        entity_id = str(row["entity_id"]) if row else None
        if entity_id is not None:
            self._entities.put(tenant_id, entity_id)
        return entity_id

    async def map_entity(self, tenant_id: str, entity_id: str) -> str:
        """Record tenant -> entity once; returns the mapping that stands (first writer wins)."""
        await self._write(
            self._insert(entity_map)
            .values(tenant_id=tenant_id, entity_id=entity_id, created_at=time.time())
            .on_conflict_do_nothing()
        )
        mapped = await self.entity_for(tenant_id)
        assert mapped is not None
        return mapped

    async def unmap_entity(self, tenant_id: str, entity_id: str) -> None:
        """Forget the mapping, only if it still points at `entity_id`."""
        await self._write(
            delete(entity_map).where(
                entity_map.c.tenant_id == tenant_id, entity_map.c.entity_id == entity_id
            )
        )
        await self._invalidate("entity", tenant_id)

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
        now = time.time()
        draft = Draft(
            id="drf_" + secrets.token_hex(8),
            tenant_id=tenant_id,
            created_by=created_by,
            institution_id=institution_id,
            institution_name=institution_name,
            portal_url=portal_url,
            requested_institution_name=requested_institution_name,
            connection_id=None,
            created_at=now,
            updated_at=now,
        )
        await self._write(drafts.insert().values(**vars(draft)))
        await self._invalidate("tenant", tenant_id)
        return draft

    async def get_draft(self, tenant_id: str, draft_id: str) -> Draft | None:
        row = await self._one(
            _GET_DRAFT, tenant_id=tenant_id, draft_id=draft_id, fresh_after=self._fresh_after()
        )
        return _draft(row) if row else None

    async def update_draft(self, tenant_id: str, draft_id: str, **fields: str | None) -> None:
        allowed = {"institution_id", "institution_name", "portal_url", "requested_institution_name"}
        allowed.add("connection_id")
        if not fields or not set(fields) <= allowed:
            raise ValueError(f"cannot update draft fields {sorted(fields)}")
        await self._write(
            update(drafts)
            .where(drafts.c.tenant_id == tenant_id, drafts.c.id == draft_id)
            .values(**fields, updated_at=time.time())
        )
        await self._invalidate("tenant", tenant_id)

    async def open_drafts(self, tenant_id: str, limit: int) -> list[Draft]:
        """The tenant's newest `limit` drafts that have not become a Waycore connection."""

        async def load() -> list[Draft]:
            rows = await self._all(
                _OPEN_DRAFTS, tenant_id=tenant_id, fresh_after=self._fresh_after(), limit=limit
            )
            return [_draft(row) for row in rows]

        return list(await self._lists.get_or_load((tenant_id, "drafts", limit), load))

    async def delete_draft(self, tenant_id: str, draft_id: str) -> bool:
        count = await self._write(
            delete(drafts).where(drafts.c.tenant_id == tenant_id, drafts.c.id == draft_id)
        )
        await self._invalidate("tenant", tenant_id)
        return count > 0

    async def purge_expired(self) -> int:
        """Delete drafts untouched for the TTL, expired sessions and expired handoff token ids,
        one instance at a time (under the `PURGE_LOCK`); returns drafts deleted."""
        async with self.lock(PURGE_LOCK):
            count = await self._write(
                delete(drafts).where(drafts.c.updated_at <= self._fresh_after())
            )
            await self._write(delete(sessions).where(sessions.c.expires_at <= time.time()))
            await self._write(
                delete(handoff_tokens).where(handoff_tokens.c.expires_at <= time.time())
            )
            await self._purge_delivered_and_seen()
        await self._invalidate("tenant", "*")
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
        c = connections.c
        statement = self._insert(connections).values(
            connection_id=connection_id,
            tenant_id=tenant_id,
            institution_name=institution_name,
            requested_institution_name=requested_institution_name,
            created_at=time.time(),
        )
        excluded = statement.excluded
        await self._write(
            statement.on_conflict_do_update(
                index_elements=[c.connection_id],
                set_={
                    "institution_name": func.coalesce(
                        excluded.institution_name, c.institution_name
                    ),
                    "requested_institution_name": func.coalesce(
                        excluded.requested_institution_name, c.requested_institution_name
                    ),
                },
                where=c.tenant_id == excluded.tenant_id,
            )
        )
        await self._invalidate("owned", connection_id)
        await self._invalidate("tenant", tenant_id)
        return await self.owned_connection(tenant_id, connection_id) is not None

    async def owned_connection(self, tenant_id: str, connection_id: str) -> OwnedConnection | None:
        async def load() -> OwnedConnection | None:
            row = await self._one(_OWNED, tenant_id=tenant_id, connection_id=connection_id)
            return _owned(row) if row else None

        return await self._owned.get_or_load((tenant_id, connection_id), load)

    @staticmethod
    def _owned_by(tenant_id: str, connection_id: str) -> Any:
        c = connections.c
        return and_(c.tenant_id == tenant_id, c.connection_id == connection_id)

    async def tenant_of(self, connection_id: str) -> str | None:
        """The owning tenant, for system events (webhooks) that carry no signed-in user."""
        row = await self._one(_TENANT_OF, connection_id=connection_id)
        return str(row["tenant_id"]) if row else None

    async def owned_connections(self, tenant_id: str) -> list[OwnedConnection]:
        async def load() -> list[OwnedConnection]:
            return [_owned(row) for row in await self._all(_OWNED_LIST, tenant_id=tenant_id)]

        return list(await self._lists.get_or_load((tenant_id, "owned", None), load))

    async def forget_connection(self, tenant_id: str, connection_id: str) -> None:
        async with self._writer(begin=True) as connection:
            await connection.execute(
                delete(drafts).where(
                    drafts.c.tenant_id == tenant_id, drafts.c.connection_id == connection_id
                )
            )
            await connection.execute(
                delete(connections).where(self._owned_by(tenant_id, connection_id))
            )
            await connection.execute(
                delete(connection_state).where(
                    connection_state.c.tenant_id == tenant_id,
                    connection_state.c.connection_id == connection_id,
                )
            )
        await self._invalidate("owned", connection_id)
        await self._invalidate("state", connection_id)
        await self._invalidate("tenant", tenant_id)

    async def settle_connection(self, tenant_id: str, connection_id: str) -> None:
        """The connection is ready: delete its drafts and remember that this was done, in one
        transaction (both idempotent)."""
        async with self._writer(begin=True) as connection:
            await connection.execute(
                delete(drafts).where(
                    drafts.c.tenant_id == tenant_id, drafts.c.connection_id == connection_id
                )
            )
            await connection.execute(
                update(connections)
                .where(self._owned_by(tenant_id, connection_id))
                .values(settled_at=time.time())
            )
        await self._invalidate("owned", connection_id)
        await self._invalidate("tenant", tenant_id)

    async def set_sync_allowed_at(self, tenant_id: str, connection_id: str, when: float) -> None:
        await self._write(
            update(connections)
            .where(self._owned_by(tenant_id, connection_id))
            .values(sync_allowed_at=when)
        )
        await self._invalidate("owned", connection_id)
        await self._invalidate("tenant", tenant_id)

    # ------------------------------------------------------------------ audit trail

    async def add_audit_entry(
        self,
        tenant_id: str,
        *,
        action: str,
        user_id: str,
        user_name: str | None,
        at: float,
        request_id: str | None,
        connection_id: str | None = None,
        draft_id: str | None = None,
        fields: str = "",
        outcome: str | None = None,
    ) -> str:
        """Keep one audit entry of `tenant_id`; returns its id."""
        entry_id = "aud_" + secrets.token_hex(12)
        await self._write(
            audit_entries.insert().values(
                id=entry_id,
                action=action,
                tenant_id=tenant_id,
                user_id=user_id,
                user_name=user_name,
                at=at,
                request_id=request_id,
                connection_id=connection_id,
                draft_id=draft_id,
                fields=fields,
                outcome=outcome,
            )
        )
        return entry_id

    async def audit_entries(
        self,
        tenant_id: str,
        *,
        limit: int,
        before: str | None = None,
        after: str | None = None,
    ) -> list[AuditRecord]:
        """At most `limit` entries of the tenant's trail, newest first: the newest ones, or those
        just older than the entry `before`, or just newer than the entry `after` (keyset paging
        on (at, id)). A cursor that is not one of the tenant's entries gives an empty page."""
        a = audit_entries.c
        query = select(audit_entries).where(a.tenant_id == tenant_id)
        cursor = before or after
        if cursor is not None:
            anchor = await self._one(select(a.at).where(a.tenant_id == tenant_id, a.id == cursor))
            if anchor is None:
                return []
            at = anchor["at"]
            if before is not None:
                query = query.where(or_(a.at < at, and_(a.at == at, a.id < cursor)))
            else:
                query = query.where(or_(a.at > at, and_(a.at == at, a.id > cursor)))
        if after is not None:
            rows = await self._all(query.order_by(a.at, a.id).limit(limit))
            rows.reverse()
        else:
            rows = await self._all(query.order_by(a.at.desc(), a.id.desc()).limit(limit))
        return [AuditRecord(**row) for row in rows]

    # ------------------------------------------------------------------ host event outbox
    # The outbox is the app's own delivery queue (every tenant's events, sent by whichever
    # instance claims them): no user ever reads it; operators do, through `manage.py events`.

    async def queue_host_event(
        self, event_id: str, type: str, tenant_id: str | None, body: str, now: float
    ) -> bool:
        """Queue an event for the host, due now; False when its id is already queued (stable
        ids de-duplicate: the same fact seen twice is one event)."""
        count = await self._write(
            self._insert(host_event_outbox)
            .values(
                event_id=event_id,
                type=type,
                tenant_id=tenant_id,
                body=body,
                attempts=0,
                due_at=now,
                state="pending",
                created_at=now,
            )
            .on_conflict_do_nothing()
        )
        return count > 0

    async def claim_host_event(self, claimer: str, now: float, until: float) -> OutboxEvent | None:
        """Claim the pending event due first (none claimed, or its claim lapsed) for `claimer`
        until `until`; None when nothing is due. One statement: two instances never claim the
        same event (Postgres skips a row another claim has locked; SQLite writes one at a
        time)."""
        o = host_event_outbox.c
        claimable = and_(
            o.state == "pending",
            o.due_at <= now,
            or_(o.claimed_until.is_(None), o.claimed_until <= now),
        )
        first = (
            select(o.event_id)
            .where(claimable)
            .order_by(o.due_at, o.event_id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        statement = (
            update(host_event_outbox)
            .where(o.event_id == first, claimable)
            .values(claimed_by=claimer, claimed_until=until)
            .returning(*host_event_outbox.c)
        )
        row = await self._write_returning(statement)
        return OutboxEvent(**row) if row is not None else None

    async def host_event_delivered(self, event_id: str, attempts: int, now: float) -> None:
        o = host_event_outbox.c
        await self._write(
            update(host_event_outbox)
            .where(o.event_id == event_id, o.state == "pending")
            .values(
                state="delivered",
                attempts=attempts,
                delivered_at=now,
                last_error=None,
                claimed_by=None,
                claimed_until=None,
            )
        )

    async def host_event_failed(
        self, event_id: str, claimer: str, *, attempts: int, error: str, retry_at: float | None
    ) -> None:
        """An attempt failed: due again at `retry_at`, or dead (None: that was the last)."""
        o = host_event_outbox.c
        await self._write(
            update(host_event_outbox)
            .where(o.event_id == event_id, o.claimed_by == claimer, o.state == "pending")
            .values(
                state="pending" if retry_at is not None else "dead",
                attempts=attempts,
                due_at=retry_at if retry_at is not None else o.due_at,
                last_error=error,
                claimed_by=None,
                claimed_until=None,
            )
        )

    async def release_host_events(self, claimer: str) -> int:
        """Give back what `claimer` holds (an instance shutting down mid-pass)."""
        o = host_event_outbox.c
        return await self._write(
            update(host_event_outbox)
            .where(o.claimed_by == claimer, o.state == "pending")
            .values(claimed_by=None, claimed_until=None)
        )

    async def next_host_event_due(self) -> float | None:
        """When the next pending event can be claimed (its due time, or its claim's end)."""
        o = host_event_outbox.c
        when = case((o.claimed_until > o.due_at, o.claimed_until), else_=o.due_at)
        row = await self._one(select(func.min(when).label("due")).where(o.state == "pending"))
        return float(row["due"]) if row and row["due"] is not None else None

    async def host_events(self, states: tuple[str, ...], limit: int = 100) -> list[OutboxEvent]:
        """Queued events in `states`, newest first (for operators)."""
        o = host_event_outbox.c
        rows = await self._all(
            select(host_event_outbox)
            .where(o.state.in_(states))
            .order_by(o.created_at.desc(), o.event_id)
            .limit(limit)
        )
        return [OutboxEvent(**row) for row in rows]

    async def retry_host_event(self, event_id: str, now: float) -> bool:
        """A dead event is pending again, due now, with its attempts counted afresh."""
        o = host_event_outbox.c
        count = await self._write(
            update(host_event_outbox)
            .where(o.event_id == event_id, o.state == "dead")
            .values(state="pending", attempts=0, due_at=now, claimed_by=None, claimed_until=None)
        )
        return count > 0

    # ------------------------------------------------------------------ what each user saw

    async def seen_statuses(self, tenant_id: str, user_id: str) -> dict[str, str]:
        """connection id -> the status `user_id` last saw it in."""

        async def load() -> dict[str, str]:
            rows = await self._all(_SEEN, tenant_id=tenant_id, user_id=user_id)
            return {str(row["connection_id"]): str(row["last_seen_status"]) for row in rows}

        return dict(await self._lists.get_or_load((tenant_id, "seen", user_id), load))

    async def mark_seen(self, tenant_id: str, user_id: str, statuses: Mapping[str, str]) -> None:
        """Remember that `user_id` has now seen each connection in its given status (a status
        this instance wrote for them moments ago is not written again: every view of a
        connection's screen says it was seen)."""
        statuses = {
            connection_id: status
            for connection_id, status in statuses.items()
            if self._seen.get((tenant_id, user_id, connection_id)) != status
        }
        if not statuses:
            return
        for connection_id, status in statuses.items():
            self._seen.put((tenant_id, user_id, connection_id), status)
        now = time.time()
        statement = self._insert(connection_seen).values(
            [
                {
                    "tenant_id": tenant_id,
                    "user_id": user_id,
                    "connection_id": connection_id,
                    "last_seen_status": status,
                    "seen_at": now,
                }
                for connection_id, status in sorted(statuses.items())
            ]
        )
        await self._write(
            statement.on_conflict_do_update(
                index_elements=[
                    connection_seen.c.tenant_id,
                    connection_seen.c.user_id,
                    connection_seen.c.connection_id,
                ],
                set_={
                    "last_seen_status": statement.excluded.last_seen_status,
                    "seen_at": statement.excluded.seen_at,
                },
            )
        )
        await self._invalidate("tenant", tenant_id)

    async def _purge_delivered_and_seen(self) -> None:
        """Delivered host events past their keeping time, and what users saw of connections the
        tenant no longer has (part of `purge_expired`)."""
        o = host_event_outbox.c
        await self._write(
            delete(host_event_outbox).where(
                o.state == "delivered",
                o.delivered_at <= time.time() - DELIVERED_EVENTS_KEEP_SECONDS,
            )
        )
        s = connection_seen.c
        still_owned = exists().where(
            connections.c.tenant_id == s.tenant_id,
            connections.c.connection_id == s.connection_id,
        )
        await self._write(delete(connection_seen).where(~still_owned))

    # ------------------------------------------------------------------ webhook events

    async def first_delivery(self, event_id: str, event_type: str) -> bool:
        """True the first time an event id is seen (Waycore may deliver it more than once)."""
        count = await self._write(
            self._insert(webhook_events)
            .values(event_id=event_id, type=event_type, received_at=time.time())
            .on_conflict_do_nothing()
        )
        return count > 0

    # ------------------------------------------------------------------ connection state

    async def connection_state(self, connection_id: str) -> ConnectionState | None:
        """The last state seen of a connection (shared by every instance), if any."""

        async def load() -> ConnectionState | None:
            row = await self._one(_STATE, connection_id=connection_id)
            return _state(row) if row else None

        return await self._states.get_or_load(connection_id, load)

    async def _read_state(self, connection_id: str) -> ConnectionState | None:
        """The state as the database has it now (and kept in memory)."""
        row = await self._one(_STATE, connection_id=connection_id)
        state = _state(row) if row else None
        self._states.put(connection_id, state)
        return state

    reload_state = _read_state

    async def _state_changed(self, connection_id: str) -> ConnectionState | None:
        """After a write of a state row: tell the other instances, and read it afresh."""
        await self._invalidate("state", connection_id)
        return await self._read_state(connection_id)

    async def save_state(
        self,
        tenant_id: str,
        connection_id: str,
        resource: dict[str, Any],
        source: str,
        *,
        now: float | None = None,
        data_changed: bool = False,
    ) -> tuple[ConnectionState, bool]:
        """Keep `resource` (Waycore's JSON of the connection) as its last state seen, from
        `source` (poll, webhook, action). Returns the state and whether what a page shows
        changed (then `version` moved, and every instance's listeners of `STATE_CHANNEL` are
        told). Any claim on a refresh ends; any `Retry-After` wait is over."""
        now = time.time() if now is None else now
        body = json.dumps(resource, sort_keys=True, separators=(",", ":"))
        s = connection_state.c
        # Optimistic: start from the state as last seen here; the write checks its version,
        # and on a miss (another instance saved since) the state is read afresh and tried again.
        current = await self.connection_state(connection_id)
        for _ in range(3):
            if current is None:
                row = await self._write_returning(
                    self._insert(connection_state)
                    .values(
                        connection_id=connection_id,
                        tenant_id=tenant_id,
                        resource=body,
                        version=1,
                        data_version=1,
                        fetched_at=now,
                        source=source,
                    )
                    .on_conflict_do_nothing()
                    .returning(*connection_state.c)
                )
                changed = True
            else:
                # What a page shows moved only if the version it was seen at still stands.
                changed = _shown(current.resource) != _shown(resource)
                row = await self._write_returning(
                    update(connection_state)
                    .where(s.connection_id == connection_id, s.version == current.version)
                    .values(
                        resource=body,
                        fetched_at=now,
                        source=source,
                        check_after=None,
                        refreshing_until=None,
                        version=s.version + (1 if changed else 0),
                        data_version=s.data_version + (1 if data_changed else 0),
                    )
                    .returning(*connection_state.c)
                )
            if row is None:
                current = await self._read_state(connection_id)
                continue
            saved = _state(row)
            await self._invalidate("state", connection_id)  # other instances read it afresh
            self._states.put(connection_id, saved)
            if changed or data_changed:
                await self.notify(STATE_CHANNEL, f"{connection_id} {saved.version}")
            return saved, changed
        raise RuntimeError(f"the state of {connection_id} kept changing under this save")

    async def claim_refresh(
        self, connection_id: str, *, now: float, interval: float, lease: float
    ) -> bool:
        """The right to ask Waycore for this connection now: at most one instance holds it, and
        only once the last state is `interval` seconds old and no `Retry-After` is running.
        The claim ends with `save_state`, `release_refresh` or `back_off_state` (or after
        `lease` seconds, should its holder die)."""
        s = connection_state.c
        claimed = await self._write(
            update(connection_state)
            .where(
                s.connection_id == connection_id,
                or_(s.refreshing_until.is_(None), s.refreshing_until < now),
                s.fetched_at <= now - interval,
                or_(s.check_after.is_(None), s.check_after <= now),
            )
            .values(refreshing_until=now + lease)
        )
        return claimed > 0

    async def release_refresh(self, connection_id: str) -> None:
        await self._write(
            update(connection_state)
            .where(connection_state.c.connection_id == connection_id)
            .values(refreshing_until=None)
        )

    async def back_off_state(self, connection_id: str, until: float) -> None:
        """Waycore asked to wait (`Retry-After`): no check of this connection before `until`."""
        await self._write(
            update(connection_state)
            .where(connection_state.c.connection_id == connection_id)
            .values(check_after=until, refreshing_until=None)
        )
        await self._state_changed(connection_id)
        await self.notify(STATE_CHANNEL, f"{connection_id} 0")

    async def expire_state(self, connection_id: str | None = None) -> None:
        """Treat the last state seen (of one connection, or of all) as old: the next read asks
        Waycore. For operators and tests that changed a connection behind the app's back."""
        statement = update(connection_state).values(fetched_at=0.0, check_after=None)
        if connection_id is not None:
            statement = statement.where(connection_state.c.connection_id == connection_id)
        await self._write(statement)
        await self._invalidate("state", connection_id or "*")

    async def mark_sync_available(self, connection_id: str) -> None:
        """New transaction data is available (a webhook said so): data read before is old."""
        s = connection_state.c
        changed = await self._write(
            update(connection_state)
            .where(s.connection_id == connection_id)
            .values(data_version=s.data_version + 1, sync_available_at=time.time())
        )
        if changed:
            await self._state_changed(connection_id)
            await self.notify(STATE_CHANNEL, f"{connection_id} 0")

    # ------------------------------------------------------------------ backoffs

    async def backoff_until(self, key: str) -> float | None:
        """When an action Waycore asked to wait for may be sent again (None: now)."""
        row = await self._one(_BACKOFF, key=key, now=time.time())
        return float(row["until"]) if row else None

    async def back_off(self, key: str, until: float) -> None:
        """Waycore answered an action with `Retry-After`: none is sent again before `until`."""
        statement = self._insert(backoffs).values(key=key, until=until)
        await self._write(
            statement.on_conflict_do_update(index_elements=[backoffs.c.key], set_={"until": until})
        )


#: How long sessions and ownership are kept in memory (see `Store.__init__`).
CACHE_SECONDS = 5.0
#: Longest a connection's last state seen is kept in memory without news of a change.
STATE_CACHE_SECONDS = 30.0
#: Instances tell each other here what to drop from those caches ("session <sid>",
#: "owned <connection id>").
INVALIDATE_CHANNEL = "store_invalidate"
#: Listeners of this channel hear "<connection id> <version>" when a connection's state changed
#: (a version of 0: its data or its `Retry-After` changed).
STATE_CHANNEL = "connection_state"
#: Fields of a connection that move on their own without anything a page shows changing.
_NOT_SHOWN = frozenset({"updatedAt"})


def _shown(resource: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if key not in _NOT_SHOWN}


@dataclass(frozen=True)
class ConnectionState:
    """The last state seen of a connection: Waycore's JSON of it (`resource`), its `version`
    (moves when what a page shows changed) and `data_version` (moves when account data may be
    new), when and from where it was fetched, and until when Waycore asked to wait."""

    connection_id: str
    tenant_id: str
    resource: dict[str, Any]
    version: int
    data_version: int
    fetched_at: float
    source: str
    check_after: float | None
    refreshing_until: float | None
    sync_available_at: float | None


def _state(row: Mapping[str, Any]) -> ConnectionState:
    return ConnectionState(**{**row, "resource": json.loads(row["resource"])})


_STATE = select(connection_state).where(
    connection_state.c.connection_id == bindparam("connection_id")
)
_SEEN = select(connection_seen.c.connection_id, connection_seen.c.last_seen_status).where(
    connection_seen.c.tenant_id == bindparam("tenant_id"),
    connection_seen.c.user_id == bindparam("user_id"),
)
_BACKOFF = select(backoffs.c.until).where(
    backoffs.c.key == bindparam("key"), backoffs.c.until > bindparam("now")
)
