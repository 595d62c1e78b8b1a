"""Events for the host platform: what happened to a customer's bank connections, and where the
customer is in the flow (like Plaid Link's `onEvent`).

Every event is written as one structured log line (logger `app.events`, a JSON object), and,
when `HOST_EVENTS_URL` is set, POSTed there signed with `HOST_EVENTS_SECRET` exactly the way
Waycore signs its webhooks (`Onboarding-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`,
see `waycore.webhooks`), retried with exponential backoff until the host answers 2xx. The
contract for hosts is docs/host-events.md.

| type                          | when                                                         |
|-------------------------------|--------------------------------------------------------------|
| `connection.activated`        | a connection is first seen ready and active                  |
| `connection.needs_attention`  | a connection is seen entering reauthRequired, errored,        |
|                               | invalidConfig, paused or revoked                             |
| `connection.removed`          | a connection was deleted (after the customer confirmed)       |
| `flow.step_viewed`            | a step of the flow was shown (not its polls)                 |
| `flow.bank_selected`          | the customer picked a listed bank                            |
| `flow.unlisted_bank_entered`  | the customer entered an unlisted bank's portal               |
| `flow.error_shown`            | an error was shown to the customer                           |
| `flow.exited`                 | the customer left the flow (finish later, discard)           |

Ids are stable so the host can de-duplicate: the same delivery retried keeps its id; a
connection event's id is derived from what happened (the connection, the event type and, for
`needs_attention`, the status and Waycore's `updatedAt`), so the same change seen twice (by the
activation poll and by a Waycore webhook) carries the same id. Payloads are built here from
named fields only, never hold a secret or a bank password, and are refused if a key looks like one.

Delivery today is in memory (`Sender`): events queued when the process stops are lost, and an
event is dropped, with an error log line, after `max_attempts`. The durable queue is a table
away: `Sender.enqueue` / `_take_due` / `_settle` are the three places it plugs in.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import httpx

from host import HostUser
from logs import current_request_id
from waycore.models import Connection
from waycore.webhooks import sign

log = logging.getLogger("app.events")

SIGNATURE_HEADER = "Onboarding-Signature"


class EventType(StrEnum):
    CONNECTION_ACTIVATED = "connection.activated"
    CONNECTION_NEEDS_ATTENTION = "connection.needs_attention"
    CONNECTION_REMOVED = "connection.removed"
    STEP_VIEWED = "flow.step_viewed"
    BANK_SELECTED = "flow.bank_selected"
    UNLISTED_BANK_ENTERED = "flow.unlisted_bank_entered"
    ERROR_SHOWN = "flow.error_shown"
    EXITED = "flow.exited"


#: Statuses in which a connection needs someone to act (or at least to know).
ATTENTION_STATUSES = frozenset({"reauthRequired", "errored", "invalidConfig", "paused", "revoked"})

#: Keys no payload may carry, compared without case, `_` or `-`.
_FORBIDDEN_KEYS = frozenset(
    {"password", "secret", "apikey", "authorization", "token", "credentials", "bankpassword"}
)

Value = str | int | bool | None


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stable_id(*parts: str) -> str:
    """An id derived from what happened: the same facts give the same id."""
    return "hev_" + hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def _check_no_secrets(data: Mapping[str, Value]) -> None:
    for key in data:
        if key.lower().replace("_", "").replace("-", "") in _FORBIDDEN_KEYS:
            raise ValueError(f"host event data may not carry {key!r}")


@dataclass(frozen=True)
class HostEvent:
    """One event: `{id, type, createdAt, tenantId, userId, requestId, data}` on the wire."""

    id: str
    type: EventType
    tenant_id: str | None
    user_id: str | None
    data: Mapping[str, Value] = field(default_factory=dict)
    created_at: str = field(default_factory=_utc_now)
    request_id: str | None = None

    def __post_init__(self) -> None:
        _check_no_secrets(self.data)

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": str(self.type),
            "createdAt": self.created_at,
            "tenantId": self.tenant_id,
            "userId": self.user_id,
            "requestId": self.request_id,
            "data": dict(self.data),
        }

    def body(self) -> bytes:
        """The exact bytes sent (and signed): the same on every attempt."""
        return json.dumps(self.payload(), sort_keys=True, separators=(",", ":")).encode("utf-8")


# ---------------------------------------------------------------------------- building events


def _connection_data(connection: Connection) -> dict[str, Value]:
    return {
        "connectionId": connection.id,
        "status": connection.status,
        "kind": connection.kind,
        "institutionId": connection.institution_id,
    }


def activated(connection: Connection, tenant_id: str) -> HostEvent:
    """A connection first seen ready and active (it activates once: the id is per connection)."""
    return HostEvent(
        id=stable_id(EventType.CONNECTION_ACTIVATED, connection.id),
        type=EventType.CONNECTION_ACTIVATED,
        tenant_id=tenant_id,
        user_id=None,
        data=_connection_data(connection),
        request_id=current_request_id() or None,
    )


def needs_attention(
    connection: Connection, tenant_id: str, *, previous_status: str | None = None
) -> HostEvent:
    """A connection seen in an attention status; the id is per (connection, status, Waycore's
    `updatedAt`), so each entry into a status is one event however many times it is seen."""
    return HostEvent(
        id=stable_id(
            EventType.CONNECTION_NEEDS_ATTENTION,
            connection.id,
            connection.status,
            connection.updated_at or "",
        ),
        type=EventType.CONNECTION_NEEDS_ATTENTION,
        tenant_id=tenant_id,
        user_id=None,
        data={
            **_connection_data(connection),
            "previousStatus": previous_status,
            "errorCode": connection.error_code,
        },
        request_id=current_request_id() or None,
    )


def removed(connection_id: str, user: HostUser) -> HostEvent:
    """A connection deleted at the customer's explicit request (once: the id is per connection)."""
    return HostEvent(
        id=stable_id(EventType.CONNECTION_REMOVED, connection_id),
        type=EventType.CONNECTION_REMOVED,
        tenant_id=user.tenant.id,
        user_id=user.id,
        data={"connectionId": connection_id},
        request_id=current_request_id() or None,
    )


def funnel(type: EventType, user: HostUser | None, **data: Value) -> HostEvent:
    """A flow event; each is its own occurrence, so its id is new (and kept across retries)."""
    return HostEvent(
        id="hev_" + secrets.token_hex(16),
        type=type,
        tenant_id=user.tenant.id if user else None,
        user_id=user.id if user else None,
        data=data,
        request_id=current_request_id() or None,
    )


def portal_host(url: str | None) -> str | None:
    """Only the host of a portal URL goes into events (a typed URL may carry anything)."""
    try:
        return (urlsplit(url).hostname or None) if url else None
    except ValueError:
        return None


# ---------------------------------------------------------------------------- delivery


@dataclass
class _Delivery:
    event: HostEvent
    attempts: int = 0
    due: float = 0.0


class Sender:
    """Delivers events to the host's URL, signed, retrying with exponential backoff.

    Attempt n (1-based) that fails is retried after `min(cap, base * 2**(n-1))` seconds; a 2xx
    answer counts as delivered; anything else, or a transport error, is retried; after
    `max_attempts` the event is dropped with an error log line. `deliver_due()` sends what is
    due now (the worker calls it; tests call it with their own clock), one pass at a time."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        max_attempts: int = 8,
        backoff_base: float = 2.0,
        backoff_cap: float = 600.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._secret = secret
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.clock = clock
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            headers={"User-Agent": "waycore-onboarding/0.1 (host events)"},
        )
        self._queue: list[_Delivery] = []
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        #: Ids delivered, and ids given up on, in order (for operators and tests).
        self.delivered: list[str] = []
        self.dropped: list[str] = []

    def __repr__(self) -> str:  # the secret never reaches a repr
        return f"Sender(url={self.url!r}, pending={len(self._queue)})"

    @property
    def pending(self) -> int:
        return len(self._queue)

    def enqueue(self, event: HostEvent) -> None:
        """Queue `event` for delivery now. (The durable queue inserts a row here.)"""
        self._queue.append(_Delivery(event, due=self.clock()))
        self._wake.set()

    def backoff(self, attempts: int) -> float:
        """Seconds before the retry that follows failed attempt number `attempts`."""
        return float(min(self.backoff_cap, self.backoff_base * 2 ** (attempts - 1)))

    def next_due_in(self) -> float | None:
        """Seconds until the next queued delivery is due (None: nothing queued)."""
        if not self._queue:
            return None
        return max(0.0, min(d.due for d in self._queue) - self.clock())

    def _take_due(self, now: float) -> list[_Delivery]:
        due = [d for d in self._queue if d.due <= now]
        self._queue = [d for d in self._queue if d.due > now]
        return due

    async def deliver_due(self) -> int:
        """Send every delivery that is due; returns how many were delivered in this pass."""
        async with self._lock:
            done = 0
            for delivery in self._take_due(self.clock()):
                done += await self._attempt(delivery)
            return done

    async def _attempt(self, delivery: _Delivery) -> int:
        delivery.attempts += 1
        body = delivery.event.body()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self._secret, body)}
        try:
            response = await self._http.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        else:
            if 200 <= response.status_code < 300:
                self._settle(delivery, delivered=True)
                return 1
            outcome = f"HTTP {response.status_code}"
        if delivery.attempts >= self.max_attempts:
            self._settle(delivery, delivered=False, outcome=outcome)
            return 0
        wait = self.backoff(delivery.attempts)
        delivery.due = self.clock() + wait
        self._queue.append(delivery)
        log.warning(
            "host event %s attempt %d failed (%s); retrying in %.0f s",
            delivery.event.id,
            delivery.attempts,
            outcome,
            wait,
        )
        return 0

    def _settle(self, delivery: _Delivery, *, delivered: bool, outcome: str = "") -> None:
        """A delivery's end. (The durable queue marks its row delivered or dead here.)"""
        if delivered:
            self.delivered.append(delivery.event.id)
            log.info("host event %s delivered (attempt %d)", delivery.event.id, delivery.attempts)
        else:
            self.dropped.append(delivery.event.id)
            log.error(
                "host event %s dropped after %d attempts (last: %s)",
                delivery.event.id,
                delivery.attempts,
                outcome,
            )

    async def run(self) -> None:
        """The worker: deliver what is due, then sleep until the next due time or a new event."""
        while True:
            self._wake.clear()
            try:
                await self.deliver_due()
            except Exception:  # never let one bad pass stop deliveries for good
                log.exception("host event delivery pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.next_due_in())

    async def aclose(self) -> None:
        if self._queue:
            log.warning("%d host event(s) not delivered before shutdown", len(self._queue))
        await self._http.aclose()


class HostEvents:
    """Where the app reports events: `await events.emit(event)` logs it as one JSON line and,
    when a `Sender` is configured, queues it for the host. Never raises for the caller."""

    def __init__(self, sender: Sender | None = None) -> None:
        self.sender = sender

    async def emit(self, event: HostEvent) -> None:
        # async: the durable queue will write a row here before answering.
        log.info("host_event %s", json.dumps(event.payload(), sort_keys=True))
        if self.sender is not None:
            self.sender.enqueue(event)
