"""Typed results of the Waycore `/v1` API.

Each dataclass mirrors one documented resource (see `docs/waycore-api.md`), with fields in
snake_case and a `from_api()` constructor that reads Waycore's camelCase JSON. Unknown extra
fields are ignored; missing optional fields become None, so a newer Waycore stays readable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Every connection status the guide names (the seven documented ones plus invalidConfig).
CONNECTION_STATUSES = (
    "draft",
    "pendingActivation",
    "active",
    "reauthRequired",
    "errored",
    "invalidConfig",
    "paused",
    "revoked",
)


def _without_none(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}


def _opt_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else str(value)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list response: `data` plus `pagination.nextCursor`."""

    items: list[T]
    next_cursor: str | None
    has_more: bool
    request_id: str | None = None


@dataclass(frozen=True)
class Entity:
    entity_id: str
    external_entity_id: str
    is_default_org_entity: bool = False
    name: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Entity:
        return cls(
            entity_id=str(data["entityId"]),
            external_entity_id=str(data.get("externalEntityId", "")),
            is_default_org_entity=bool(data.get("isDefaultOrgEntity", False)),
            name=_opt_str(data, "name"),
            created_at=_opt_str(data, "createdAt"),
            updated_at=_opt_str(data, "updatedAt"),
            metadata=dict(data.get("metadata") or {}),
        )


@dataclass(frozen=True)
class Institution:
    institution_id: str
    name: str
    canonical_portal_url: str | None = None
    additional_portal_urls: tuple[str, ...] = ()

    @property
    def portal_urls(self) -> tuple[str, ...]:
        """The canonical portal first, then the additional ones, without repeats."""
        urls = [self.canonical_portal_url] if self.canonical_portal_url else []
        urls += [u for u in self.additional_portal_urls if u not in urls]
        return tuple(urls)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Institution:
        return cls(
            institution_id=str(data["institutionId"]),
            name=str(data.get("name") or data["institutionId"]),
            canonical_portal_url=_opt_str(data, "canonicalPortalUrl"),
            additional_portal_urls=tuple(str(u) for u in data.get("additionalPortalUrls") or ()),
        )


@dataclass(frozen=True)
class SetupInstructions:
    """The delegated-user identity Waycore generated; rendered as-is, never invented."""

    first_name: str | None = None
    last_name: str | None = None
    address: str | None = None
    email: str | None = None
    username: str | None = None
    phone_number: str | None = None
    email_provisioning_status: str | None = None
    phone_number_provisioning_status: str | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> SetupInstructions:
        return cls(
            first_name=_opt_str(data, "firstName"),
            last_name=_opt_str(data, "lastName"),
            address=_opt_str(data, "address"),
            email=_opt_str(data, "email"),
            username=_opt_str(data, "username"),
            phone_number=_opt_str(data, "phoneNumber"),
            email_provisioning_status=_opt_str(data, "emailProvisioningStatus"),
            phone_number_provisioning_status=_opt_str(data, "phoneNumberProvisioningStatus"),
        )

    def to_api(self) -> dict[str, Any]:
        return _without_none(
            {
                "firstName": self.first_name,
                "lastName": self.last_name,
                "address": self.address,
                "email": self.email,
                "username": self.username,
                "phoneNumber": self.phone_number,
                "emailProvisioningStatus": self.email_provisioning_status,
                "phoneNumberProvisioningStatus": self.phone_number_provisioning_status,
            }
        )


@dataclass(frozen=True)
class Setup:
    status: str | None = None
    instructions: SetupInstructions | None = None
    credentials_present: bool = False
    action_required_by: str | None = None
    next_action: str | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Setup:
        instructions = data.get("instructions")
        return cls(
            status=_opt_str(data, "status"),
            instructions=SetupInstructions.from_api(instructions) if instructions else None,
            credentials_present=bool(data.get("credentialsPresent", False)),
            action_required_by=_opt_str(data, "actionRequiredBy"),
            next_action=_opt_str(data, "nextAction"),
        )

    def to_api(self) -> dict[str, Any]:
        return _without_none(
            {
                "status": self.status,
                "instructions": self.instructions.to_api() if self.instructions else None,
                "credentialsPresent": self.credentials_present,
                "actionRequiredBy": self.action_required_by,
                "nextAction": self.next_action,
            }
        )


@dataclass(frozen=True)
class Connection:
    id: str
    entity_id: str
    kind: str
    status: str
    institution_id: str | None = None
    institution_name: str | None = None
    portal_url: str | None = None
    sync_status: str | None = None
    last_synced_at: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    setup: Setup | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_ready(self) -> bool:
        """Usable for data only when `kind="ready"` and `status="active"` (the guide's rule)."""
        return self.kind == "ready" and self.status == "active"

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Connection:
        setup = data.get("setup")
        return cls(
            id=str(data["id"]),
            entity_id=str(data.get("entityId", "")),
            # `kind` defaults to "ready" only on the ready schema; a setup record means setup.
            kind=str(data.get("kind") or ("setup" if isinstance(setup, dict) else "ready")),
            status=str(data["status"]),
            institution_id=_opt_str(data, "institutionId"),
            institution_name=_opt_str(data, "institutionName"),
            portal_url=_opt_str(data, "portalUrl"),
            sync_status=_opt_str(data, "syncStatus"),
            last_synced_at=_opt_str(data, "lastSyncedAt"),
            error_code=_opt_str(data, "errorCode"),
            error_message=_opt_str(data, "errorMessage"),
            created_at=_opt_str(data, "createdAt"),
            updated_at=_opt_str(data, "updatedAt"),
            setup=Setup.from_api(setup) if isinstance(setup, dict) else None,
            metadata=dict(data.get("metadata") or {}),
        )

    def to_api(self) -> dict[str, Any]:
        """Back to Waycore's shape (`from_api(c.to_api()) == c`): how the app keeps the last
        state it saw of a connection."""
        return _without_none(
            {
                "id": self.id,
                "entityId": self.entity_id,
                "kind": self.kind,
                "status": self.status,
                "institutionId": self.institution_id,
                "institutionName": self.institution_name,
                "portalUrl": self.portal_url,
                "syncStatus": self.sync_status,
                "lastSyncedAt": self.last_synced_at,
                "errorCode": self.error_code,
                "errorMessage": self.error_message,
                "createdAt": self.created_at,
                "updatedAt": self.updated_at,
                "setup": self.setup.to_api() if self.setup else None,
                "metadata": self.metadata or None,
            }
        )


@dataclass(frozen=True)
class ConnectionResult:
    """What `POST /v1/connections` answered: the connection, and whether it is new (201)."""

    connection: Connection
    created: bool


@dataclass(frozen=True)
class Account:
    id: str
    connection_id: str
    name: str
    type: str
    currency: str
    status: str
    official_name: str | None = None
    masked_number: str | None = None
    current_balance: str | None = None
    available_balance: str | None = None
    balance_as_of: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Account:
        return cls(
            id=str(data["id"]),
            connection_id=str(data.get("connectionId", "")),
            name=str(data.get("name") or ""),
            type=str(data.get("type") or "unknown"),
            currency=str(data.get("currency") or ""),
            status=str(data.get("status") or "unknown"),
            official_name=_opt_str(data, "officialName"),
            masked_number=_opt_str(data, "maskedNumber"),
            current_balance=_opt_str(data, "currentBalance"),
            available_balance=_opt_str(data, "availableBalance"),
            balance_as_of=_opt_str(data, "balanceAsOf"),
            created_at=_opt_str(data, "createdAt"),
            updated_at=_opt_str(data, "updatedAt"),
        )


@dataclass(frozen=True)
class Balance:
    """One daily balance row (`GET /v1/balances`)."""

    account_id: str
    date: str
    ledger_balance: str | None
    posted_transaction_delta: str | None = None
    source: str | None = None
    connection_id: str | None = None
    entity_id: str | None = None
    currency: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Balance:
        return cls(
            account_id=str(data.get("accountId", "")),
            date=str(data["date"]),
            ledger_balance=_opt_str(data, "ledgerBalance"),
            posted_transaction_delta=_opt_str(data, "postedTransactionDelta"),
            source=_opt_str(data, "source"),
            connection_id=_opt_str(data, "connectionId"),
            entity_id=_opt_str(data, "entityId"),
            currency=_opt_str(data, "currency"),
            updated_at=_opt_str(data, "updatedAt"),
        )


@dataclass(frozen=True)
class Transaction:
    id: str
    account_id: str
    connection_id: str
    amount: str
    currency: str
    status: str
    description: str
    posted_date: str | None = None
    entry_type: str | None = None
    rail: str | None = None
    counterparty_name: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Transaction:
        return cls(
            id=str(data["id"]),
            account_id=str(data.get("accountId", "")),
            connection_id=str(data.get("connectionId", "")),
            amount=str(data.get("amount", "0")),
            currency=str(data.get("currency") or ""),
            status=str(data.get("status") or "unknown"),
            description=str(data.get("description") or ""),
            posted_date=_opt_str(data, "postedDate"),
            entry_type=_opt_str(data, "entryType"),
            rail=_opt_str(data, "rail"),
            counterparty_name=_opt_str(data, "counterpartyName"),
            updated_at=_opt_str(data, "updatedAt"),
        )


@dataclass(frozen=True)
class Webhook:
    id: str
    url: str
    events: tuple[str, ...]
    active: bool
    #: The full signing secret only on the create response; masked on later reads.
    secret: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    def __repr__(self) -> str:  # the secret never reaches a repr or a log line
        return f"Webhook(id={self.id!r}, url={self.url!r}, events={self.events!r})"

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Webhook:
        return cls(
            id=str(data["id"]),
            url=str(data["url"]),
            events=tuple(str(e) for e in data.get("events") or ()),
            active=bool(data.get("active", True)),
            secret=_opt_str(data, "secret"),
            created_at=_opt_str(data, "createdAt"),
            updated_at=_opt_str(data, "updatedAt"),
        )
