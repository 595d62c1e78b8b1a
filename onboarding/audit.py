"""The audit trail: who started, completed, synced, deleted or discarded what, and when.

`AuditTrail.record(action, user, ...)` is called by the service layer at each auditable step:
creating (or being returned) a connection, submitting bank-issued credentials (which fields,
never their values), completing setup, requesting a sync, deleting a connection, discarding a
draft. Each entry carries the tenant, the user, the time and the request id.

Every entry is one structured log line (logger `app.audit`, a JSON object) and one row of the
store's `audit_entries`, which the admin page lists per tenant, newest first and paged
(`trail_page`). An `AuditTrail` without a store only logs (tests of the service layer).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum

from host import HostUser
from logs import current_request_id
from store import AuditRecord, OwnedConnection, Store

log = logging.getLogger("app.audit")


class AuditAction(StrEnum):
    CONNECTION_CREATED = "connection.created"
    #: Create-or-return answered with a connection the tenant already had.
    CONNECTION_RETURNED = "connection.returned"
    CREDENTIALS_SUBMITTED = "credentials.submitted"
    SETUP_COMPLETED = "setup.completed"
    SYNC_REQUESTED = "sync.requested"
    CONNECTION_DELETED = "connection.deleted"
    DRAFT_DISCARDED = "draft.discarded"


#: The only credential field names an entry may list (values are never recorded).
CREDENTIAL_FIELDS = frozenset({"bankUsername", "bankCustomerId", "password"})


@dataclass(frozen=True)
class AuditEntry:
    action: AuditAction
    tenant_id: str
    user_id: str
    #: Unix time, seconds.
    at: float
    request_id: str | None
    connection_id: str | None = None
    draft_id: str | None = None
    #: Names of the credential fields submitted (never their values).
    fields: tuple[str, ...] = ()
    #: What came of it, in a word ("started", "cooling_down", "busy" for a sync).
    outcome: str | None = None
    #: The user's name when it was recorded (the page shows it; the id is what identifies).
    user_name: str | None = None

    def as_row(self) -> dict[str, object]:
        row = asdict(self)
        row["action"] = str(self.action)
        row["fields"] = ",".join(self.fields)
        return row


class AuditTrail:
    """Records audit entries (see the module docstring): logged, and kept in `store`."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store

    async def record(
        self,
        action: AuditAction,
        user: HostUser,
        *,
        connection_id: str | None = None,
        draft_id: str | None = None,
        fields: Iterable[str] = (),
        outcome: str | None = None,
    ) -> AuditEntry:
        names = tuple(fields)
        unknown = set(names) - CREDENTIAL_FIELDS
        if unknown:
            raise ValueError(f"not credential field names: {sorted(unknown)}")
        entry = AuditEntry(
            action=action,
            tenant_id=user.tenant.id,
            user_id=user.id,
            at=time.time(),
            request_id=current_request_id() or None,
            connection_id=connection_id,
            draft_id=draft_id,
            fields=names,
            outcome=outcome,
            user_name=user.name,
        )
        await self._write(entry)
        return entry

    async def _write(self, entry: AuditEntry) -> None:
        log.info("audit %s", json.dumps(entry.as_row(), sort_keys=True))
        if self.store is not None:
            await self.store.add_audit_entry(
                entry.tenant_id,
                action=str(entry.action),
                user_id=entry.user_id,
                user_name=entry.user_name,
                at=entry.at,
                request_id=entry.request_id,
                connection_id=entry.connection_id,
                draft_id=entry.draft_id,
                fields=",".join(entry.fields),
                outcome=entry.outcome,
            )


# ---------------------------------------------------------------------------- the admin page

#: Entries on one page of the trail.
PAGE_SIZE = 50


@dataclass(frozen=True)
class TrailPage:
    """One page of a tenant's trail, newest first, with the cursors of its neighbours (None:
    there is none that way) and the tenant's connections that still exist (to link them)."""

    entries: list[AuditRecord]
    older: str | None
    newer: str | None
    connections: dict[str, OwnedConnection]


async def trail_page(
    store: Store,
    tenant_id: str,
    *,
    before: str | None = None,
    after: str | None = None,
    size: int | None = None,
) -> TrailPage:
    """The page of `tenant_id`'s trail just older than entry `before`, just newer than entry
    `after`, or the newest (`size` entries, default `PAGE_SIZE`). One more entry than shown is
    read, to know whether there are more."""
    size = size or PAGE_SIZE
    rows = await store.audit_entries(tenant_id, limit=size + 1, before=before, after=after)
    if after is not None:
        more_newer, shown = len(rows) > size, rows[-size:]
        more_older = bool(shown)
    else:
        more_older, shown = len(rows) > size, rows[:size]
        more_newer = before is not None and bool(shown)
    owned = {c.connection_id: c for c in await store.owned_connections(tenant_id)}
    linked = {e.connection_id: owned[e.connection_id] for e in shown if e.connection_id in owned}
    return TrailPage(
        entries=shown,
        older=shown[-1].id if more_older else None,
        newer=shown[0].id if more_newer else None,
        connections=linked,
    )
