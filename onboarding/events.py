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

Delivery is durable: `HostEvents.emit` writes the event, with the exact body to sign, into the
store's outbox (`host_event_outbox`; an id already there is ignored, so a fact seen twice is sent
once), and the `Sender` of any instance claims what is due, sends it signed with the wall-clock
time, and marks it delivered, or due again after a backoff, or dead after `max_attempts` (an
error log line; `python manage.py events retry ID` queues it again). A claim is one statement,
so two instances never send one event at the same time; a claim lapses after `claim_seconds`,
so an event held by an instance that stopped mid-delivery is sent by another (the host may then
see it twice: it de-duplicates by id). Pending events outlive a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
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
from onboarding.journey import RECOVERABLE, TERMINAL
from store import OutboxEvent, Store
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


#: Statuses in which a connection needs someone to act (or at least to know): the journey
#: table's recoverable and terminal ones.
ATTENTION_STATUSES = RECOVERABLE | TERMINAL

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


def funnel(
    type: EventType, user: HostUser | None, data: dict[str, Value], once_per: tuple[str, ...] = ()
) -> HostEvent:
    """A flow event; each is its own occurrence, so its id is new (and kept across retries).
    With `once_per`, the id is derived from the type, the user and those parts instead, so the
    same occurrence repeated (a page checking itself again) is queued and sent once."""
    if once_per:
        event_id = stable_id(type, user.id if user else "", *once_per)
    else:
        event_id = "hev_" + secrets.token_hex(16)
    return HostEvent(
        id=event_id,
        type=type,
        tenant_id=user.tenant.id if user else None,
        user_id=user.id if user else None,
        data=data,
        request_id=current_request_id() or None,
    )


@functools.lru_cache(maxsize=4096)  # pages show the catalog's few hundred portals again and again
def portal_host(url: str | None) -> str | None:
    """Only the host of a portal URL goes into events (a typed URL may carry anything)."""
    try:
        return (urlsplit(url).hostname or None) if url else None
    except ValueError:
        return None


# ---------------------------------------------------------------------------- delivery


class Sender:
    """Delivers the outbox's events to the host's URL, signed, retrying with exponential
    backoff (see the module docstring).

    Attempt n (1-based) that fails is retried after `min(cap, base * 2**(n-1))` seconds; a 2xx
    answer counts as delivered; anything else, or a transport error, is retried; after
    `max_attempts` the event is dead. `deliver_due()` sends what is due now, one pass at a time
    (the worker, `run()`, calls it; tests call it with their own clock). `clock` is the wall
    clock (due times are kept in the database, shared by every instance)."""

    def __init__(
        self,
        url: str,
        secret: str,
        store: Store,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        max_attempts: int = 8,
        backoff_base: float = 2.0,
        backoff_cap: float = 600.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
        batch: int = 100,
        idle_seconds: float = 60.0,
    ) -> None:
        self.url = url
        self._secret = secret
        self.store = store
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.clock = clock
        #: Events claimed per pass at most (the rest wait for the next pass).
        self.batch = batch
        #: How long a claim lasts: longer than one attempt can take.
        self.claim_seconds = timeout + 30.0
        #: The longest the worker sleeps without looking (events queued by other instances).
        self.idle_seconds = idle_seconds
        #: This sender's name on the events it claims.
        self.claimer = "snd_" + secrets.token_hex(8)
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            headers={"User-Agent": "waycore-onboarding/0.1 (host events)"},
        )
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    def __repr__(self) -> str:  # the secret never reaches a repr
        return f"Sender(url={self.url!r})"

    async def enqueue(self, event: HostEvent) -> bool:
        """Queue `event` in the outbox, due now; False when its id was already there."""
        body = event.body().decode("utf-8")
        queued = await self.store.queue_host_event(
            event.id, str(event.type), event.tenant_id, body, self.clock()
        )
        self._wake.set()
        return queued

    def backoff(self, attempts: int) -> float:
        """Seconds before the retry that follows failed attempt number `attempts`."""
        return float(min(self.backoff_cap, self.backoff_base * 2 ** (attempts - 1)))

    async def next_due_in(self) -> float | None:
        """Seconds until the next pending event can be claimed (None: nothing pending)."""
        due = await self.store.next_host_event_due()
        return None if due is None else max(0.0, due - self.clock())

    async def deliver_due(self) -> int:
        """Claim and send every event that is due (up to `batch`); returns how many were
        delivered in this pass."""
        async with self._lock:
            done = 0
            for _ in range(self.batch):
                now = self.clock()
                claimed = await self.store.claim_host_event(
                    self.claimer, now, now + self.claim_seconds
                )
                if claimed is None:
                    break
                done += await self._attempt(claimed)
            return done

    async def _attempt(self, event: OutboxEvent) -> int:
        attempts = event.attempts + 1
        body = event.body.encode("utf-8")
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self._secret, body)}
        try:
            response = await self._http.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        else:
            if 200 <= response.status_code < 300:
                await self.store.host_event_delivered(event.event_id, attempts, self.clock())
                log.info("host event %s delivered (attempt %d)", event.event_id, attempts)
                return 1
            outcome = f"HTTP {response.status_code}"
        if attempts >= self.max_attempts:
            await self.store.host_event_failed(
                event.event_id, self.claimer, attempts=attempts, error=outcome, retry_at=None
            )
            log.error(
                "host event %s is dead after %d attempts (last: %s); "
                "`python manage.py events retry %s` sends it again",
                event.event_id,
                attempts,
                outcome,
                event.event_id,
            )
            return 0
        wait = self.backoff(attempts)
        await self.store.host_event_failed(
            event.event_id,
            self.claimer,
            attempts=attempts,
            error=outcome,
            retry_at=self.clock() + wait,
        )
        log.warning(
            "host event %s attempt %d failed (%s); retrying in %.0f s",
            event.event_id,
            attempts,
            outcome,
            wait,
        )
        return 0

    async def run(self) -> None:
        """The worker: deliver what is due (pending events of an earlier run first), then sleep
        until the next due time, a new event, or `idle_seconds`."""
        while True:
            self._wake.clear()
            try:
                await self.deliver_due()
                due_in = await self.next_due_in()
            except Exception:  # never let one bad pass stop deliveries for good
                log.exception("host event delivery pass failed")
                due_in = None
            timeout = self.idle_seconds if due_in is None else min(due_in, self.idle_seconds)
            # `asyncio.timeout`, not `wait_for`: on Python 3.11 a cancellation arriving as
            # `wait_for` times out can be lost, and this loop would never end.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def aclose(self) -> None:
        """Stop sending; what this sender had claimed is given back for the next pass of any
        instance (pending events stay in the outbox)."""
        try:
            await self.store.release_host_events(self.claimer)
        except Exception:
            log.exception("could not release the host events claimed by %s", self.claimer)
        await self._http.aclose()


class HostEvents:
    """Where the app reports events: `await events.emit(event)` logs it as one JSON line and,
    when a `Sender` is configured, queues it in the outbox for the host. Never raises for the
    caller (an event that cannot be queued is an error log line)."""

    def __init__(self, sender: Sender | None = None) -> None:
        self.sender = sender

    async def emit(self, event: HostEvent) -> None:
        log.info("host_event %s", json.dumps(event.payload(), sort_keys=True))
        if self.sender is None:
            return
        try:
            await self.sender.enqueue(event)
        except Exception:
            log.exception("host event %s could not be queued for the host", event.id)
