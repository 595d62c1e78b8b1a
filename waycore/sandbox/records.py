"""The sandbox's internal state records, and how they render as Waycore `/v1` JSON.

Each record is a mutable dataclass that round-trips through JSON (`to_json`/`from_json`) for the
SQLite store. Internal fields (deadlines on the sandbox clock, scenario, counters) never reach the
wire: only the `render_*` functions decide what a client sees.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Self


def iso(ts: float) -> str:
    """A sandbox-clock timestamp as Waycore's `date-time` (UTC, whole seconds, `Z`)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_date(ts: float) -> str:
    """The UTC calendar date of a sandbox-clock timestamp, as `YYYY-MM-DD`."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


@dataclass
class Record:
    """Base: a JSON-serialisable record stored under `KIND` with key `key()`."""

    KIND: ClassVar[str] = ""

    def key(self) -> str:
        return str(getattr(self, "id"))  # noqa: B009 - every subclass has an id-like field

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class EntityRec(Record):
    KIND: ClassVar[str] = "entity"
    id: str
    seq: int
    external_entity_id: str
    is_default: bool
    name: str | None
    metadata: dict[str, Any]
    created_at: float
    updated_at: float


@dataclass
class ConnectionRec(Record):
    KIND: ClassVar[str] = "connection"
    id: str
    seq: int
    entity_id: str
    institution_id: str | None
    institution_name: str | None
    portal_url: str | None
    kind: str
    status: str
    created_at: float
    updated_at: float
    #: Scenario end status of activation ("active" unless a scenario host/institution was used).
    activation_result: str = "active"
    slow: bool = False
    instructions: dict[str, str] = field(default_factory=dict)
    provision_at: float = 0.0
    provisioned: bool = False
    credentials_present: bool = False
    activate_at: float | None = None
    sync_status: str | None = None
    sync_ends_at: float | None = None
    sync_manual: bool = False
    last_synced_at: float | None = None
    cooldown_until: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    data_generated: bool = False
    syncs_completed: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class AccountRec(Record):
    KIND: ClassVar[str] = "account"
    id: str
    seq: int
    connection_id: str
    entity_id: str
    name: str
    official_name: str
    type: str
    currency: str
    masked_number: str
    #: Amounts are kept in cents to stay exact.
    current_cents: int
    available_cents: int
    credit_limit_cents: int
    balance_as_of: float
    created_at: float
    updated_at: float


@dataclass
class BalanceRec(Record):
    KIND: ClassVar[str] = "balance"
    account_id: str
    connection_id: str
    entity_id: str
    date: str
    ledger_cents: int
    delta_cents: int
    source: str
    currency: str
    updated_at: float

    def key(self) -> str:
        return f"{self.account_id}:{self.date}"


@dataclass
class TransactionRec(Record):
    KIND: ClassVar[str] = "transaction"
    id: str
    connection_id: str
    account_id: str
    status: str
    posted_date: str | None
    #: The day the transaction happened (pending ones have no posted date yet).
    txn_date: str
    amount_cents: int
    currency: str
    description: str
    rail: str
    counterparty_name: str
    updated_at: float


@dataclass
class WebhookRec(Record):
    KIND: ClassVar[str] = "webhook"
    id: str
    seq: int
    url: str
    events: list[str]
    secret: str
    active: bool
    metadata: dict[str, Any]
    created_at: float
    updated_at: float


@dataclass
class KeyRec(Record):
    """A minted API key: only its SHA-256 is stored, never the key itself."""

    KIND: ClassVar[str] = "key"
    id: str
    key_hash: str
    scopes: list[str]
    created_at: float


@dataclass
class DeliveryRec(Record):
    """One event queued for one webhook registration."""

    KIND: ClassVar[str] = "delivery"
    id: str
    seq: int
    webhook_id: str
    event_id: str
    event_type: str
    body: str
    state: str  # pending | delivered | failed | cancelled
    attempts: int
    next_attempt_at: float
    created_at: float
    log: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class RecordedRequest:
    """One `/v1` request the sandbox answered, without secrets (no auth header, no password)."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    body: Any
    request_id: str
    at: str

    def to_api(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": dict(self.query),
            "status": self.status,
            "body": self.body,
            "requestId": self.request_id,
            "at": self.at,
        }


def money(cents: int) -> str:
    """Cents as a signed decimal string with two decimals ("-12.30")."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}"


def render_entity(e: EntityRec) -> dict[str, Any]:
    return {
        "entityId": e.id,
        "externalEntityId": e.external_entity_id,
        "isDefaultOrgEntity": e.is_default,
        "name": e.name,
        "metadata": dict(e.metadata),
        "createdAt": iso(e.created_at),
        "updatedAt": iso(e.updated_at),
    }


#: setup-kind status -> (setup.status, actionRequiredBy, nextAction)
SETUP_STAGES: dict[str, tuple[str, str, str]] = {
    "draft": ("awaitingDelegatedUserCreation", "endUser", "createDelegatedUser"),
    "pendingActivation": ("awaitingActivation", "waycore", "waitForActivation"),
    "errored": ("activationFailed", "waycore", "waitForWaycore"),
    "invalidConfig": ("needsCorrection", "endUser", "reviewPortalUrl"),
}


def render_connection(c: ConnectionRec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": c.id,
        "entityId": c.entity_id,
        "kind": c.kind,
        "status": c.status,
        "institutionId": c.institution_id,
        "institutionName": c.institution_name,
        "portalUrl": c.portal_url,
        "createdAt": iso(c.created_at),
        "updatedAt": iso(c.updated_at),
        "metadata": dict(c.metadata),
    }
    if c.kind == "ready":
        out["syncStatus"] = c.sync_status or "idle"
        out["lastSyncedAt"] = iso(c.last_synced_at) if c.last_synced_at is not None else None
        out["errorCode"] = c.error_code
        out["errorMessage"] = c.error_message
        return out
    stage, by, action = SETUP_STAGES.get(c.status, SETUP_STAGES["draft"])
    provisioned = "active" if c.provisioned else "pending"
    out["setup"] = {
        "status": stage,
        "instructions": {
            **c.instructions,
            "emailProvisioningStatus": provisioned,
            "phoneNumberProvisioningStatus": provisioned,
        },
        "credentialsPresent": c.credentials_present,
        "actionRequiredBy": by,
        "nextAction": action,
    }
    if c.error_code is not None or c.error_message is not None:
        out["errorCode"] = c.error_code
        out["errorMessage"] = c.error_message
    return out


def render_account(a: AccountRec) -> dict[str, Any]:
    return {
        "id": a.id,
        "connectionId": a.connection_id,
        "name": a.name,
        "officialName": a.official_name,
        "type": a.type,
        "currency": a.currency,
        "status": "open",
        "maskedNumber": a.masked_number,
        "currentBalance": money(a.current_cents),
        "availableBalance": money(a.available_cents),
        "balanceAsOf": iso(a.balance_as_of),
        "createdAt": iso(a.created_at),
        "updatedAt": iso(a.updated_at),
        "metadata": {},
    }


def render_balance(b: BalanceRec) -> dict[str, Any]:
    return {
        "accountId": b.account_id,
        "connectionId": b.connection_id,
        "entityId": b.entity_id,
        "date": b.date,
        "ledgerBalance": money(b.ledger_cents),
        "postedTransactionDelta": money(b.delta_cents),
        "source": b.source,
        "currency": b.currency,
        "updatedAt": iso(b.updated_at),
    }


def render_transaction(t: TransactionRec) -> dict[str, Any]:
    return {
        "id": t.id,
        "connectionId": t.connection_id,
        "accountId": t.account_id,
        "status": t.status,
        "postedDate": t.posted_date,
        "amount": money(t.amount_cents),
        "currency": t.currency,
        "entryType": "credit" if t.amount_cents > 0 else "debit",
        "description": t.description,
        "rail": t.rail,
        "counterpartyName": t.counterparty_name,
        "updatedAt": iso(t.updated_at),
    }


def mask_secret(secret: str) -> str:
    return f"whsec_****{secret[-4:]}"


def render_webhook(w: WebhookRec, *, full_secret: bool = False) -> dict[str, Any]:
    return {
        "id": w.id,
        "url": w.url,
        "events": list(w.events),
        "secret": w.secret if full_secret else mask_secret(w.secret),
        "active": w.active,
        "createdAt": iso(w.created_at),
        "updatedAt": iso(w.updated_at),
        "metadata": dict(w.metadata),
    }
