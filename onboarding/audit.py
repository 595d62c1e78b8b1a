"""The audit trail: who started, completed, synced, deleted or discarded what, and when.

`AuditTrail.record(action, user, ...)` is called by the service layer at each auditable step:
creating (or being returned) a connection, submitting bank-issued credentials (which fields,
never their values), completing setup, requesting a sync, deleting a connection, discarding a
draft. Each entry carries the tenant, the user, the time and the request id.

Today an entry is one structured log line (logger `app.audit`, a JSON object). Keeping it in the
store, for an admin page listing a tenant's trail, is the storage step: `AuditTrail` then takes
the store and `_write` inserts `entry.as_row()`; the call sites do not change.
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

    def as_row(self) -> dict[str, object]:
        row = asdict(self)
        row["action"] = str(self.action)
        row["fields"] = ",".join(self.fields)
        return row


class AuditTrail:
    """Records audit entries (see the module docstring)."""

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
        )
        await self._write(entry)
        return entry

    async def _write(self, entry: AuditEntry) -> None:
        log.info("audit %s", json.dumps(entry.as_row(), sort_keys=True))
