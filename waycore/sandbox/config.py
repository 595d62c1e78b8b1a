"""Configuration of the local Waycore sandbox, and the constants its wire rules name.

`SandboxConfig` is the only input a `Sandbox` takes; every field has a default except the root
API key. Times are seconds on the sandbox clock (real time plus any advanced offset).
"""

from __future__ import annotations

from dataclasses import dataclass

# One status list for the client's models and the sandbox (re-exported for the wire rules).
from waycore.models import CONNECTION_STATUSES as CONNECTION_STATUSES

#: Every scope a key can carry; the root key carries all of them.
SCOPES: tuple[str, ...] = (
    "entities:read",
    "entities:write",
    "connections:read",
    "connections:write",
    "accounts:read",
    "transactions:read",
    "webhooks:read",
    "webhooks:write",
)


#: The documented webhook event enum (`account.*` and `transfer.*` are accepted, never sent).
WEBHOOK_EVENTS: tuple[str, ...] = (
    "connection.status_changed",
    "account.created",
    "account.updated",
    "transactions.sync_available",
    "transfer.status_changed",
    "test",
)


@dataclass(frozen=True)
class SandboxConfig:
    """How one sandbox behaves. Only `api_key` (the root key) is required."""

    #: The root key: every scope, and the only key accepted by `/_sandbox/*`.
    api_key: str
    #: ":memory:" or a SQLite file path (state then survives a restart).
    database: str = ":memory:"
    #: setupCompletion -> activation delay.
    activation_seconds: float = 8.0
    #: Activation delay of the "slow" scenario.
    slow_activation_seconds: float = 600.0
    #: How long `syncStatus` stays "syncing".
    sync_seconds: float = 3.0
    #: Minimum gap between accepted manual syncs of one connection.
    sync_cooldown_seconds: float = 45 * 60
    #: Generated identities, accounts, balances and transactions derive from seed + connection id.
    seed: int = 7
    webhook_max_attempts: int = 6
    webhook_retry_base_seconds: float = 1.0
    #: Per-attempt timeout of a webhook delivery.
    webhook_timeout_seconds: float = 5.0
    #: Background worker period (transitions and webhook deliveries).
    tick_seconds: float = 0.25
    #: Delay after creation before the delegated user's email and phone number become "active".
    provisioning_seconds: float = 5.0
    #: Days of history generated at activation.
    history_days: int = 90
    #: How many recorded /v1 requests are kept (oldest dropped first).
    max_recorded_requests: int = 10_000
