"""The sandbox's behaviour: the connection lifecycle, the clock, data, and event emission.

Nothing here speaks HTTP. Time-based transitions (provisioning, activation, the end of a sync)
are stored as deadlines on the sandbox clock and applied by `advance()`, which the app calls at
the start of every request and on every worker tick. Each transition takes effect at its own
deadline (not at the time it is noticed), so results are identical with or without the worker
and after any clock advance.
"""

from __future__ import annotations

import json
import math
import random
import secrets
import time
import uuid
from datetime import date, timedelta
from typing import Any

from . import catalog
from .config import SandboxConfig
from .generate import available, delegated_identity, generate_history, sync_transactions
from .records import (
    AccountRec,
    BalanceRec,
    ConnectionRec,
    DeliveryRec,
    EntityRec,
    iso,
    iso_date,
)
from .store import Store
from .wire import ApiError

DEFAULT_ENTITY_EXTERNAL_ID = "waycore:organization"

#: Default (errorCode, errorMessage) per status, for setup-stage and ready connections.
_SETUP_ERRORS = {
    "errored": (
        "activation_failed",
        "Waycore could not sign in to the bank portal with the delegated user; it will retry.",
    ),
    "invalidConfig": (
        "invalid_portal_configuration",
        "The portal URL does not lead to a bank login page Waycore can use; review it.",
    ),
}
_READY_ERRORS = {
    "errored": ("sync_failed", "The last sync failed; Waycore retries automatically."),
    "reauthRequired": ("reauth_required", "The bank asks the delegated user to sign in again."),
    "revoked": ("access_revoked", "The delegated user's access was removed at the bank."),
}
_SETUP_STATUSES = ("draft", "pendingActivation", "invalidConfig")


class Engine:
    """State transitions of one sandbox, over one `Store`."""

    def __init__(self, config: SandboxConfig, store: Store) -> None:
        self.config = config
        self.store = store

    # -- clock -------------------------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self.store.clock_offset

    def advance_clock(self, seconds: float) -> float:
        self.store.set_clock_offset(self.store.clock_offset + seconds)
        self.advance()
        return self.now()

    # -- bootstrap ---------------------------------------------------------------------------

    def bootstrap(self) -> None:
        """Create the default organization entity on a fresh store."""
        if any(e.is_default for e in self.store.entities.values()):
            return
        rng = random.Random(f"{self.config.seed}:default-entity")
        at = self.now()
        self.store.put(
            EntityRec(
                id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                seq=self.store.next_seq(),
                external_entity_id=DEFAULT_ENTITY_EXTERNAL_ID,
                is_default=True,
                name="Organization (default entity)",
                metadata={},
                created_at=at,
                updated_at=at,
            )
        )

    # -- events ------------------------------------------------------------------------------

    def emit(
        self, event_type: str, data: dict[str, Any], at: float, *, only_webhook: str | None = None
    ) -> str:
        """Queue one event for every active registration subscribed to its type."""
        event_id = f"evt_{secrets.token_hex(12)}"
        body = json.dumps(
            {"id": event_id, "type": event_type, "createdAt": iso(at), "data": data},
            separators=(",", ":"),
        )
        hooks = sorted(self.store.webhooks.values(), key=lambda w: w.seq)
        for hook in hooks:
            if only_webhook is not None and hook.id != only_webhook:
                continue
            if hook.active and event_type in hook.events:
                self.store.put(
                    DeliveryRec(
                        id=f"dlv_{secrets.token_hex(10)}",
                        seq=self.store.next_seq(),
                        webhook_id=hook.id,
                        event_id=event_id,
                        event_type=event_type,
                        body=body,
                        state="pending",
                        attempts=0,
                        next_attempt_at=self.now(),
                        created_at=at,
                    )
                )
        return event_id

    def _set_status(self, c: ConnectionRec, status: str, at: float) -> None:
        previous = c.status
        c.status = status
        c.updated_at = max(c.updated_at, at)
        self.store.touch(c)
        if previous != status:
            data = {
                "connectionId": c.id,
                "entityId": c.entity_id,
                "status": status,
                "previousStatus": previous,
                "kind": c.kind,
            }
            self.emit("connection.status_changed", data, at)

    # -- transitions -------------------------------------------------------------------------

    def advance(self) -> None:
        """Apply every transition whose deadline has passed, each at its own deadline."""
        now = self.now()
        for c in sorted(self.store.connections.values(), key=lambda c: c.seq):
            if c.kind == "setup" and not c.provisioned and c.provision_at <= now:
                c.provisioned = True
                c.updated_at = max(c.updated_at, c.provision_at)
                self.store.touch(c)
            activate_at = c.activate_at
            if c.status == "pendingActivation" and activate_at is not None and activate_at <= now:
                self._activate(c, activate_at)
            sync_ends_at = c.sync_ends_at
            if c.sync_status == "syncing" and sync_ends_at is not None and sync_ends_at <= now:
                self._finish_sync(c, sync_ends_at)

    def _activate(self, c: ConnectionRec, at: float) -> None:
        c.activate_at = None
        result = c.activation_result
        if result in _SETUP_ERRORS:
            c.error_code, c.error_message = _SETUP_ERRORS[result]
            self._set_status(c, result, at)
            return
        c.kind = "ready"
        c.provisioned = True
        if result == "active":
            self._ensure_data(c, at)
            c.error_code = c.error_message = None
            c.sync_status, c.sync_ends_at, c.sync_manual = "syncing", at + self._sync_s, False
        else:
            c.error_code, c.error_message = _READY_ERRORS.get(result, (None, None))
            c.sync_status = "idle"
        self._set_status(c, result, at)

    def _activation_delay(self, c: ConnectionRec) -> float:
        return self.config.slow_activation_seconds if c.slow else self.config.activation_seconds

    @property
    def _sync_s(self) -> float:
        return self.config.sync_seconds

    def _finish_sync(self, c: ConnectionRec, at: float) -> None:
        manual = c.sync_manual
        c.sync_status, c.sync_ends_at, c.sync_manual = "idle", None, False
        c.last_synced_at = at
        c.updated_at = max(c.updated_at, at)
        self.store.touch(c)
        if manual and c.data_generated:
            self._sync_data(c, at)
        c.syncs_completed += 1
        self.emit("transactions.sync_available", {"connectionId": c.id, "accountId": None}, at)

    # -- data --------------------------------------------------------------------------------

    def accounts_of(self, connection_id: str) -> list[AccountRec]:
        accounts = [a for a in self.store.accounts.values() if a.connection_id == connection_id]
        return sorted(accounts, key=lambda a: a.seq)

    def _ensure_data(self, c: ConnectionRec, at: float) -> bool:
        if c.data_generated:
            return False
        inst = catalog.BY_ID.get(c.institution_id or "")
        generated = generate_history(
            self.config.seed,
            c,
            inst.country if inst else None,
            at,
            self.config.history_days,
            self.store.next_seq,
        )
        for record in (*generated.accounts, *generated.balances, *generated.transactions):
            self.store.put(record)
        c.data_generated = True
        self.store.touch(c)
        return True

    def _sync_data(self, c: ConnectionRec, at: float) -> None:
        """A manual sync: pending items post, a few new ones arrive, balances roll forward."""
        day = iso_date(at)
        accounts = {a.id: a for a in self.accounts_of(c.id)}
        for account in accounts.values():
            self._extend_balances(account, day, at)
        txns = [t for t in self.store.transactions.values() if t.connection_id == c.id]
        for t in txns:
            if t.status == "pending" and t.account_id in accounts:
                t.status, t.posted_date, t.updated_at = "posted", day, at
                self.store.touch(t)
                self._post(accounts[t.account_id], day, t.amount_cents, at)
        new = sync_transactions(self.config.seed, c, list(accounts.values()), day, at)
        for t in new:
            self.store.put(t)
            self._post(accounts[t.account_id], day, t.amount_cents, at)
        for account in accounts.values():
            mine = [t for t in self.store.transactions.values() if t.account_id == account.id]
            account.available_cents = available(account, mine)
            account.balance_as_of = account.updated_at = at
            self.store.touch(account)

    def _rows_of(self, account_id: str) -> list[BalanceRec]:
        rows = [b for b in self.store.balances.values() if b.account_id == account_id]
        return sorted(rows, key=lambda b: b.date)

    def _extend_balances(self, account: AccountRec, day: str, at: float) -> None:
        rows = self._rows_of(account.id)
        if not rows or rows[-1].date >= day:
            return
        last = rows[-1]
        d = date.fromisoformat(last.date) + timedelta(days=1)
        end = date.fromisoformat(day)
        while d <= end:
            self.store.put(
                BalanceRec(
                    account_id=account.id,
                    connection_id=account.connection_id,
                    entity_id=account.entity_id,
                    date=d.isoformat(),
                    ledger_cents=last.ledger_cents,
                    delta_cents=0,
                    source="bankProvided" if d.weekday() < 5 else "derived",
                    currency=account.currency,
                    updated_at=at,
                )
            )
            d += timedelta(days=1)

    def _post(self, account: AccountRec, day: str, cents: int, at: float) -> None:
        for row in self._rows_of(account.id):
            if row.date == day:
                row.delta_cents += cents
            if row.date >= day:
                row.ledger_cents += cents
                row.updated_at = at
                self.store.touch(row)
        account.current_cents += cents
        self.store.touch(account)

    def delete_connection_data(self, c: ConnectionRec) -> None:
        accounts = {a.id for a in self.store.accounts.values() if a.connection_id == c.id}
        self.store.delete_many(
            t for t in self.store.transactions.values() if t.connection_id == c.id
        )
        self.store.delete_many(b for b in self.store.balances.values() if b.account_id in accounts)
        self.store.delete_many(a for a in self.store.accounts.values() if a.id in accounts)
        self.store.delete(c)

    # -- connection operations ---------------------------------------------------------------

    def create_connection(
        self, entity_id: str, institution_id: str | None, portal_url: str | None
    ) -> tuple[ConnectionRec, bool]:
        """Create or return; `(connection, created)`. Validation happened in the route."""
        inst = catalog.BY_ID.get(institution_id) if institution_id else None
        for c in sorted(self.store.connections.values(), key=lambda c: c.seq):
            if c.entity_id != entity_id or c.status == "revoked":
                continue
            if inst is not None:
                if c.institution_id == inst.institution_id and (
                    portal_url is None or c.portal_url == portal_url
                ):
                    return c, False
            elif c.portal_url == portal_url:
                return c, False
        at = self.now()
        conn_id = f"conn_{secrets.token_hex(8)}"
        scenario = catalog.scenario_for(institution_id, portal_url)
        c = ConnectionRec(
            id=conn_id,
            seq=self.store.next_seq(),
            entity_id=entity_id,
            institution_id=inst.institution_id if inst else None,
            institution_name=inst.name if inst else None,
            portal_url=portal_url
            if portal_url is not None
            else (inst.canonical_portal_url if inst else None),
            kind="setup",
            status="draft",
            created_at=at,
            updated_at=at,
            activation_result=scenario.result if scenario else "active",
            slow=scenario.slow if scenario else False,
            instructions=delegated_identity(self.config.seed, conn_id),
            provision_at=at + self.config.provisioning_seconds,
        )
        self.store.put(c)
        return c, True

    def complete_setup(self, c: ConnectionRec) -> None:
        if c.kind != "setup" or c.status != "draft":
            raise ApiError(
                409,
                "invalid_state",
                f"Setup can only be completed on a draft connection; this one is {c.status}.",
            )
        now = self.now()
        c.activate_at = now + self._activation_delay(c)
        self._set_status(c, "pendingActivation", now)

    def request_sync(self, c: ConnectionRec) -> None:
        if c.kind != "ready" or c.status != "active":
            raise ApiError(
                409,
                "connection_not_ready",
                f"Only a ready, active connection can sync (kind {c.kind}, status {c.status}).",
            )
        if c.sync_status == "syncing":
            raise ApiError(409, "sync_in_progress", "A sync of this connection is already running.")
        now = self.now()
        if c.cooldown_until is not None and now < c.cooldown_until:
            wait = max(1, math.ceil(c.cooldown_until - now))
            raise ApiError(
                429,
                "sync_cooldown",
                f"This connection was synced recently; retry in {wait} seconds.",
                {"Retry-After": str(wait)},
            )
        c.sync_status, c.sync_ends_at, c.sync_manual = "syncing", now + self._sync_s, True
        c.cooldown_until = now + self.config.sync_cooldown_seconds
        c.updated_at = now
        self.store.touch(c)

    def force_status(
        self,
        c: ConnectionRec,
        status: str,
        error_code: str | None,
        error_message: str | None,
        kind: str | None = None,
    ) -> None:
        """The control API's status override (see docs/sandbox.md). `kind` sets the kind too;
        without it, setup statuses make a setup record and the others (but `errored`, which
        keeps its kind) a ready one."""
        now = self.now()
        if kind is not None:
            c.kind = kind
        elif status in _SETUP_STATUSES:
            c.kind = "setup"
        elif status != "errored":
            c.kind = "ready"
        if status == "active" and self._ensure_data(c, now):
            c.last_synced_at = now
        if c.kind == "ready" and (status != "active" or c.sync_status is None):
            c.sync_status, c.sync_ends_at, c.sync_manual = "idle", None, False
        c.activate_at = None
        if status == "pendingActivation":
            c.activate_at = now + self._activation_delay(c)
        defaults = (_SETUP_ERRORS if c.kind == "setup" else _READY_ERRORS).get(status, (None, None))
        if error_code is None and error_message is None:
            error_code, error_message = defaults
        c.error_code, c.error_message = error_code, error_message
        self._set_status(c, status, now)
