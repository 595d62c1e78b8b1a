"""The onboarding rules that combine the store and Waycore, as plain async functions.

Views parse a request, call one of these, and render what comes back: a value, or a typed error
(`onboarding.errors`, or Waycore's own `waycore.errors.WaycoreError` for the step to show). No
function here sees a request, a template or a URL.

The rules, each in one place:
- ownership before Waycore: a draft or connection id is proven against the tenant's own rows
  before any Waycore call (`owned_draft`, `owned_connection`);
- the bank choice: a listed bank by explicit selection, or an unlisted one by an HTTPS portal URL
  kept exactly as typed; a portal on a listed bank's host or registrable domain offers that
  bank first, and the customer chooses (`choose_listed`, `choose_unlisted`); the bank name typed
  is never sent to Waycore;
- create or return, with the tenant's entity resolved server-side and a lost entity repaired
  once (`create_connection`);
- finish setup: only populated credentials, sent once, then setup completion, with the 409
  "already completed" recovery (`finish_setup`);
- a ready connection has no drafts (`settle`), applied where a connection is read and where a
  webhook says it changed; that first sight is also when the host hears `connection.activated`;
- a status change seen by a watching page (`watch`) or reported by a Waycore webhook
  (`status_changed`) into a status that needs attention is reported to the host once per change;
- repairs: a corrected connection for a connection whose portal URL Waycore could not use
  (`correct_portal`), and bank-issued credentials sent again for re-authentication
  (`resubmit_credentials`);
- manual sync honours the 45-minute cooldown locally, from an accepted sync or a 429's
  `Retry-After`: inside it no sync is sent to Waycore (`start_sync`);
- the list marks what changed since each user last looked ("Connected while you were away",
  "Needs attention"), against the status they last saw each connection in, on the list or its
  screens (`overview`, `changes_since_last_look`, `mark_seen`).

Every auditable step (connection created or returned, credentials submitted, setup completed,
sync requested, connection deleted, draft discarded) is recorded through `AuditTrail`, and every
event for the host goes through `HostEvents`: both are passed in, like the store.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Literal
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList

from config import DEFAULT_SETUP_GUIDE_URL
from host import HostUser
from onboarding import events as host_events
from onboarding.audit import AuditAction, AuditTrail
from onboarding.entities import EntityResolver
from onboarding.errors import InvalidChoice, LooksListed, NotOwned, WaitForWaycore
from onboarding.events import ATTENTION_STATUSES, HostEvents
from onboarding.journey import Step, is_waiting, step_for
from onboarding.live import LiveStatus, Reading
from store import Draft, OwnedConnection, Store
from waycore.client import WaycoreClient
from waycore.errors import (
    BadRequest,
    Conflict,
    NotFound,
    RateLimited,
    WaycoreAPIError,
    WaycoreError,
)
from waycore.models import CONNECTION_STATUSES, Connection, ConnectionResult, Institution

log = logging.getLogger("app.onboarding")

MAX_BANK_NAME = 120
MAX_URL = 2048
MAX_CREDENTIAL = 256
#: Drafts the connections list shows at first, and at most (a page more each time asked).
DRAFTS_PAGE = 20
MAX_DRAFTS_SHOWN = 500
#: Waycore's documented manual-sync cooldown, used when a 429 carries no `Retry-After`.
DEFAULT_SYNC_COOLDOWN_SECONDS = 45 * 60


# ---------------------------------------------------------------------------- Retry-After


@asynccontextmanager
async def retry_after_respected(store: Store, action: str) -> AsyncIterator[None]:
    """Around one of a step's writes: not sent at all while a `Retry-After` Waycore gave for it
    is running (`WaitForWaycore`, with the time left), and a new 429 or 503 with `Retry-After`
    starts one. The wait is the API key's, so it holds for every tenant and instance."""
    until = await store.backoff_until(action)
    now = time.time()
    if until is not None and until > now:
        raise WaitForWaycore(action, until - now)
    try:
        yield
    except WaycoreAPIError as exc:
        if exc.status in (429, 503) and exc.retry_after:
            await store.back_off(action, time.time() + exc.retry_after)
            log.info("Waycore asked to wait %.0f s before %s again", exc.retry_after, action)
        raise


# ---------------------------------------------------------------------------- ownership


async def owned_draft(store: Store, tenant_id: str, draft_id: str) -> Draft:
    """The tenant's draft `draft_id`; `NotOwned` for anyone else's, expired or unknown."""
    draft = await store.get_draft(tenant_id, draft_id) if draft_id else None
    if draft is None:
        raise NotOwned(draft_id)
    return draft


async def owned_record(store: Store, tenant_id: str, connection_id: str) -> OwnedConnection:
    """The local row proving the tenant owns `connection_id`; `NotOwned` otherwise."""
    owned = await store.owned_connection(tenant_id, connection_id)
    if owned is None:
        raise NotOwned(connection_id)
    return owned


async def read_connection(
    live: LiveStatus, events: HostEvents, tenant_id: str, connection_id: str
) -> Reading:
    """The tenant's connection as the app last saw it, checked with Waycore when due
    (`onboarding.live`).

    Another tenant's (or an unknown) id raises `NotOwned` before any Waycore call. A connection
    Waycore no longer has is forgotten locally and its `NotFound` raised. A connection read as
    ready is settled (its drafts cleared, the host told) the first time."""
    reading = await live.read(tenant_id, connection_id)
    owned = await settle(live.store, events, reading.owned, reading.connection)
    return replace(reading, owned=owned) if owned is not reading.owned else reading


async def owned_connection(
    live: LiveStatus, events: HostEvents, tenant_id: str, connection_id: str
) -> tuple[OwnedConnection, Connection]:
    """`read_connection`, as the local record and Waycore's view of the connection."""
    reading = await read_connection(live, events, tenant_id, connection_id)
    return reading.owned, reading.connection


async def record_seen(store: Store, tenant_id: str, connection: Connection) -> None:
    """What Waycore answered one of the app's own writes is the connection's state from now on:
    no read shows one older than the app's own last write."""
    await store.save_state(tenant_id, connection.id, connection.to_api(), "action")


async def settle(
    store: Store, events: HostEvents, owned: OwnedConnection, connection: Connection
) -> OwnedConnection:
    """A ready, active connection has no drafts: clear them once, when it is first seen ready,
    and tell the host it is activated."""
    if not connection.is_ready or owned.settled_at is not None:
        return owned
    await store.settle_connection(owned.tenant_id, owned.connection_id)
    log.info("connection %s is ready; its drafts are cleared", owned.connection_id)
    await events.emit(host_events.activated(connection, owned.tenant_id))
    return await owned_record(store, owned.tenant_id, owned.connection_id)


def known_status(value: str | None) -> str | None:
    """`value` if it is one of Waycore's connection statuses (it may come from a URL)."""
    return value if value in CONNECTION_STATUSES else None


@dataclass(frozen=True)
class Watched:
    """A watched connection, read again: `changed` when its status is not the one last shown."""

    owned: OwnedConnection
    connection: Connection
    changed: bool
    #: The state read: its version, and until when Waycore asked to wait before a check.
    reading: Reading


async def watch(
    live: LiveStatus,
    events: HostEvents,
    tenant_id: str,
    connection_id: str,
    seen: str | None,
) -> Watched:
    """Read a connection a page is watching, which last showed it in status `seen`. A change into
    a status that needs attention is reported to the host (once per change: the event id is
    derived from the connection, its status and Waycore's `updatedAt`)."""
    reading = await read_connection(live, events, tenant_id, connection_id)
    owned, connection = reading.owned, reading.connection
    seen = known_status(seen)
    changed = seen is not None and seen != connection.status
    if changed and connection.status in ATTENTION_STATUSES:
        event = host_events.needs_attention(connection, tenant_id, previous_status=seen)
        await events.emit(event)
    return Watched(owned, connection, changed, reading)


async def status_changed(
    live: LiveStatus,
    events: HostEvents,
    reported: Connection,
    previous_status: str | None,
) -> None:
    """A Waycore webhook said a connection's status changed (system event: no signed-in user).

    The connection is read again, so the host events carry the same ids as when a watching page
    sees the change (a read that fails falls back to what the webhook reported). A connection
    now ready is settled; one now needing attention is reported to the host."""
    store = live.store
    tenant_id = await store.tenant_of(reported.id)
    owned = await store.owned_connection(tenant_id, reported.id) if tenant_id else None
    if tenant_id is None or owned is None:
        return
    try:
        connection = (await live.refresh(tenant_id, reported.id, source="webhook")).connection
    except NotFound:
        await store.forget_connection(tenant_id, reported.id)
        return
    except WaycoreError as exc:
        log.warning("could not read %s after its webhook (%s); using the event", reported.id, exc)
        connection = await _as_reported(store, tenant_id, reported)
    await settle(store, events, owned, connection)
    if connection.status in ATTENTION_STATUSES:
        event = host_events.needs_attention(
            connection, tenant_id, previous_status=known_status(previous_status)
        )
        await events.emit(event)


async def _as_reported(store: Store, tenant_id: str, reported: Connection) -> Connection:
    """The last state seen, with the status and kind a webhook reported (kept as a webhook's
    state: fresh for a while, then checked with Waycore again)."""
    state = await store.connection_state(reported.id)
    resource = dict(state.resource) if state else reported.to_api()
    resource.update(status=reported.status, kind=reported.kind or resource.get("kind"))
    await store.save_state(tenant_id, reported.id, resource, "webhook")
    return Connection.from_api(resource)


async def sync_available(live: LiveStatus, connection_id: str) -> None:
    """A webhook said new transaction data is available: a sync has finished (Waycore signals a
    sync's completion so). Account data read before is old, and the connection is read again
    (its `syncStatus` is not in the event), as the one check in flight for it."""
    store = live.store
    await store.mark_sync_available(connection_id)
    tenant_id = await store.tenant_of(connection_id)
    if tenant_id is None:
        return
    try:
        await live.refresh(tenant_id, connection_id, source="webhook")
    except NotFound:
        await store.forget_connection(tenant_id, connection_id)
    except WaycoreError as exc:  # its state stays as it was, and is checked again when due
        log.warning("could not read %s after its sync webhook (%s)", connection_id, exc)
        await store.expire_state(connection_id)


# ---------------------------------------------------------------------------- choosing the bank


def validate_portal_url(raw: str) -> tuple[str | None, str | None]:
    """(url, None) for a valid HTTPS portal URL, kept exactly as typed (surrounding whitespace
    aside); (None, message) otherwise."""
    url = raw.strip()
    if not url:
        return None, "Enter the web address of your bank\u2019s online banking sign-in page."
    if len(url) > MAX_URL:
        return None, "That address is too long to be a bank portal URL."
    if any(char.isspace() for char in url):
        return None, "The portal URL must not contain spaces."
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        _ = parts.port
    except ValueError:
        return None, "That is not a valid web address."
    if parts.scheme.lower() != "https":
        if parts.scheme.lower() == "http":
            return None, "The portal URL must use HTTPS: it should start with https://"
        return None, "Enter the full address, starting with https://"
    if not hostname or "." not in hostname.strip("."):
        return (
            None,
            "The portal URL must include your bank\u2019s domain, e.g. https://bank.example.com/login",
        )
    if parts.username is not None or parts.password is not None:
        return None, "The portal URL must not contain a username or password."
    return url, None


@dataclass(frozen=True)
class BankChoice:
    """What the customer chose, ready for `POST /v1/connections`.

    `institution` for a listed bank (with `portal_url` only when it has several portals), or
    `portal_url` alone for an unlisted one."""

    draft: Draft
    institution: Institution | None
    portal_url: str | None


async def select_institution(
    store: Store, waycore: WaycoreClient, user: HostUser, draft: Draft | None, institution_id: str
) -> Draft:
    """The customer explicitly picked a suggestion: record it on their draft (one draft, not a
    trail of abandoned ones, when they change their mind), or start a draft with it."""
    if not institution_id:
        raise InvalidChoice({"search": "Choose your bank from the list."})
    try:
        institution = await waycore.get_institution(institution_id)
    except ValueError as exc:  # not an id any catalog entry can have (e.g. "a/b")
        raise InvalidChoice({"search": "Choose your bank from the list."}) from exc
    chosen = {
        "institution_id": institution.institution_id,
        "institution_name": institution.name,
        "portal_url": institution.canonical_portal_url,
    }
    if draft is not None and not draft.connection_id:
        await store.update_draft(
            user.tenant.id, draft.id, requested_institution_name=None, **chosen
        )
        return await owned_draft(store, user.tenant.id, draft.id)
    return await store.create_draft(user.tenant.id, user.id, **chosen)


async def choose_listed(
    store: Store, waycore: WaycoreClient, tenant_id: str, draft: Draft | None, portal_url: str
) -> BankChoice:
    """The draft's institution, with the sign-in portal the customer picked (default: the
    canonical one). The portal is sent along only when the institution has several."""
    if draft is None or not draft.institution_id:
        raise InvalidChoice({"search": "Search for your bank and choose it."})
    institution = await waycore.get_institution(draft.institution_id)
    chosen = portal_url or institution.canonical_portal_url
    if institution.portal_urls and chosen not in institution.portal_urls:
        raise InvalidChoice(
            {"portal_url": "Choose one of the sign-in portals listed for this bank."},
            institution=institution,
        )
    if chosen != draft.portal_url:
        await store.update_draft(tenant_id, draft.id, portal_url=chosen)
    send_portal = chosen if len(institution.portal_urls) > 1 else None
    return BankChoice(draft, institution, send_portal)


async def choose_unlisted(
    store: Store,
    waycore: WaycoreClient,
    user: HostUser,
    draft: Draft | None,
    bank_name: str,
    portal_url: str,
    *,
    not_listed: bool = False,
) -> BankChoice:
    """A bank the catalog does not have: its name (kept here only) and a valid HTTPS portal URL,
    exactly as typed.

    When the portal is on the host or registrable domain of a listed bank, `LooksListed` offers
    that bank first; nothing is chosen for the customer. Once they answer that theirs is
    different (`not_listed`), the portal URL goes on exactly as typed."""
    url, url_error = validate_portal_url(portal_url)
    errors = {}
    if not bank_name:
        errors["bank_name"] = "Enter your bank\u2019s name so you can recognise it here."
    elif len(bank_name) > MAX_BANK_NAME:
        errors["bank_name"] = f"Keep the bank name under {MAX_BANK_NAME} characters."
    if url_error:
        errors["portal_url"] = url_error
    if errors or url is None:
        raise InvalidChoice(errors)
    if not not_listed:
        matches = await listed_banks_like(waycore, url)
        if matches:
            raise LooksListed(matches, bank_name=bank_name, portal_url=url)
    fields: dict[str, str | None] = {
        "institution_id": None,
        "institution_name": None,
        "requested_institution_name": bank_name,
        "portal_url": url,
    }
    if draft is None:
        draft = await store.create_draft(
            user.tenant.id, user.id, requested_institution_name=bank_name, portal_url=url
        )
    else:
        await store.update_draft(user.tenant.id, draft.id, **fields)
        draft = await owned_draft(store, user.tenant.id, draft.id)
    return BankChoice(draft, None, url)


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    """The public suffix list bundled with `publicsuffixlist` (read once; no network)."""
    return PublicSuffixList()


def registrable_domain(host: str) -> str:
    """`secure.chase.com` -> `chase.com`, `online.bank.co.uk` -> `bank.co.uk` (by the public
    suffix list); an IP address or a bare public suffix is its own."""
    host = host.lower().strip(".")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return _public_suffixes().privatesuffix(host) or host
    return host


async def listed_banks_like(waycore: WaycoreClient, portal_url: str) -> list[Institution]:
    """Listed banks with a sign-in portal on the same host, or the same registrable domain, as
    the portal the customer typed (`https://chase.com/login` and `secure.chase.com`).

    Only that domain is searched for: the bank name the customer typed stays in this app (it is
    never sent to Waycore, not even as a search), and so does the rest of the portal URL."""
    host = (urlsplit(portal_url).hostname or "").lower()
    domain = registrable_domain(host)
    found: list[Institution] = []
    for candidate in await waycore.search_institutions(domain, limit=20):
        hosts = {(urlsplit(u).hostname or "").lower() for u in candidate.portal_urls}
        if host in hosts or domain in {registrable_domain(h) for h in hosts if h}:
            found.append(candidate)
    return found


# ---------------------------------------------------------------------------- create or return


async def create_connection(
    store: Store,
    waycore: WaycoreClient,
    entities: EntityResolver,
    events: HostEvents,
    audit: AuditTrail,
    user: HostUser,
    choice: BankChoice,
) -> ConnectionResult:
    """Create or return the connection for the tenant's entity (resolved here, server-side), and
    record it as the tenant's and as the draft's resume key.

    A mapping to an entity Waycore no longer knows (`invalid_entity`) is dropped and resolved
    again, once. Raises `EntityUnavailable` when the entity cannot be resolved: then nothing was
    sent to `POST /v1/connections`."""
    institution_id = choice.institution.institution_id if choice.institution else None
    for attempt in (1, 2):
        entity_id = await entities.resolve(user.tenant)
        try:
            async with retry_after_respected(store, "create_connection"):
                result = await waycore.create_connection(
                    entity_id, institution_id=institution_id, portal_url=choice.portal_url
                )
            break
        except BadRequest as exc:
            if exc.code != "invalid_entity" or attempt == 2:
                raise
            log.warning("entity %s of %s is gone at Waycore; remapping", entity_id, user.tenant.id)
            await entities.forget(user.tenant, entity_id)
    connection = result.connection
    institution_name = connection.institution_name or (
        choice.institution.name if choice.institution else None
    )
    await store.record_connection(
        user.tenant.id,
        connection.id,
        institution_name=institution_name,
        requested_institution_name=choice.draft.requested_institution_name,
    )
    await store.update_draft(user.tenant.id, choice.draft.id, connection_id=connection.id)
    log.info(
        "connection %s %s for tenant %s",
        connection.id,
        "created" if result.created else "returned (already existed)",
        user.tenant.id,
    )
    action = AuditAction.CONNECTION_CREATED if result.created else AuditAction.CONNECTION_RETURNED
    await audit.record(action, user, connection_id=connection.id, draft_id=choice.draft.id)
    owned = await owned_record(store, user.tenant.id, connection.id)
    await record_seen(store, user.tenant.id, connection)
    await settle(store, events, owned, connection)
    return result


# ---------------------------------------------------------------------------- finish setup


@dataclass(frozen=True)
class Credentials:
    """Optional bank-issued details. The password is held only for the one request that sends
    it; it is never stored, logged or rendered back."""

    bank_username: str = ""
    bank_customer_id: str = ""
    password: str | None = field(default=None, repr=False)

    @property
    def any(self) -> bool:
        return bool(self.bank_username or self.bank_customer_id or self.password)

    @property
    def field_names(self) -> list[str]:
        """The API names of the populated fields (what the audit trail records: never values)."""
        named = [
            ("bankUsername", self.bank_username),
            ("bankCustomerId", self.bank_customer_id),
            ("password", self.password),
        ]
        return [name for name, value in named if value]


async def _send_credentials(
    waycore: WaycoreClient,
    audit: AuditTrail,
    user: HostUser,
    connection_id: str,
    credentials: Credentials,
) -> Connection:
    connection = await waycore.update_credentials(
        connection_id,
        bank_username=credentials.bank_username or None,
        bank_customer_id=credentials.bank_customer_id or None,
        password=credentials.password,
    )
    await audit.record(
        AuditAction.CREDENTIALS_SUBMITTED,
        user,
        connection_id=connection_id,
        fields=credentials.field_names,
    )
    return connection


async def finish_setup(
    store: Store,
    waycore: WaycoreClient,
    audit: AuditTrail,
    user: HostUser,
    connection_id: str,
    credentials: Credentials,
) -> None:
    """Submit only the populated bank fields (skipped when all are blank), then mark setup
    complete. A 409 from a double submit, or another tab finishing first, is success when the
    connection has left `draft`."""
    try:
        async with retry_after_respected(store, "finish_setup"):
            if credentials.any:
                await _send_credentials(waycore, audit, user, connection_id, credentials)
            completed = await waycore.complete_setup(connection_id)
    except Conflict:
        current = await _current(waycore, connection_id)
        if current is None or current.status == "draft":
            raise
        await record_seen(store, user.tenant.id, current)
        outcome = "already completed"
    else:
        await record_seen(store, user.tenant.id, completed)
        outcome = "completed"
    await audit.record(
        AuditAction.SETUP_COMPLETED, user, connection_id=connection_id, outcome=outcome
    )


class CredentialsRefused(Exception):
    """Waycore would not take new credentials for this connection in its current state (409)."""

    def __init__(self, cause: Conflict) -> None:
        super().__init__(str(cause))
        self.cause = cause


async def resubmit_credentials(
    store: Store,
    waycore: WaycoreClient,
    audit: AuditTrail,
    user: HostUser,
    connection_id: str,
    credentials: Credentials,
) -> None:
    """Re-authentication: send the bank-issued details again (only the populated fields; at
    least one). Waycore's documents do not say in which states it takes them; a 409 is
    `CredentialsRefused`, for the page to send the customer to support instead."""
    if not credentials.any:
        raise InvalidChoice(
            {"bank_username": "Enter at least one of the details your bank issued."}
        )
    try:
        async with retry_after_respected(store, "credentials"):
            connection = await _send_credentials(waycore, audit, user, connection_id, credentials)
    except Conflict as exc:
        raise CredentialsRefused(exc) from exc
    await record_seen(store, user.tenant.id, connection)


async def _current(waycore: WaycoreClient, connection_id: str) -> Connection | None:
    """After a 409 of setup completion: the connection now (None if it cannot be read)."""
    try:
        return await waycore.get_connection(connection_id)
    except WaycoreError:
        return None


# ---------------------------------------------------------------------------- sync and delete


def cooldown_until(owned: OwnedConnection, now: float | None = None) -> float | None:
    """When a manual sync is allowed again, while Waycore's cooldown runs; None otherwise."""
    now = time.time() if now is None else now
    if owned.sync_allowed_at and owned.sync_allowed_at > now:
        return owned.sync_allowed_at
    return None


@dataclass(frozen=True)
class SyncOutcome:
    """`started` (202), `busy` (409: running or not ready), or `cooling_down` (429, or still
    inside a cooldown Waycore told us about: then nothing was sent)."""

    result: Literal["started", "busy", "cooling_down"]
    owned: OwnedConnection
    connection: Connection | None = None


async def start_sync(
    store: Store, waycore: WaycoreClient, audit: AuditTrail, user: HostUser, connection_id: str
) -> SyncOutcome:
    """Ask Waycore for a manual sync, unless its cooldown is known to be running. An accepted
    sync starts the guide's 45-minute cooldown; a 429 one of `Retry-After` seconds."""
    outcome = await _sync(store, waycore, user.tenant.id, connection_id)
    await audit.record(
        AuditAction.SYNC_REQUESTED, user, connection_id=connection_id, outcome=outcome.result
    )
    return outcome


async def _sync(
    store: Store, waycore: WaycoreClient, tenant_id: str, connection_id: str
) -> SyncOutcome:
    owned = await owned_record(store, tenant_id, connection_id)
    if cooldown_until(owned) is not None:
        return SyncOutcome("cooling_down", owned)
    try:
        connection = await waycore.sync_connection(connection_id)
    except RateLimited as exc:
        wait = exc.retry_after if exc.retry_after is not None else DEFAULT_SYNC_COOLDOWN_SECONDS
        await store.set_sync_allowed_at(tenant_id, connection_id, time.time() + wait)
        log.info("sync of %s in cooldown for %.0f s", connection_id, wait)
        return SyncOutcome("cooling_down", await owned_record(store, tenant_id, connection_id))
    except Conflict:
        return SyncOutcome("busy", owned)
    # An accepted manual sync starts Waycore's cooldown: keep the control off for all of it.
    await store.set_sync_allowed_at(
        tenant_id, connection_id, time.time() + DEFAULT_SYNC_COOLDOWN_SECONDS
    )
    log.info("sync of %s accepted; next manual sync after the cooldown", connection_id)
    if connection is not None:
        await record_seen(store, tenant_id, connection)
    return SyncOutcome("started", await owned_record(store, tenant_id, connection_id), connection)


async def delete_connection(
    store: Store,
    waycore: WaycoreClient,
    events: HostEvents,
    audit: AuditTrail,
    user: HostUser,
    connection_id: str,
) -> None:
    """`DELETE /v1/connections/{id}` (the caller has the customer's explicit confirmation), then
    forget it locally with its drafts, record it and tell the host."""
    async with retry_after_respected(store, "delete_connection"):
        await waycore.delete_connection(connection_id)
    await store.forget_connection(user.tenant.id, connection_id)
    log.info("connection %s deleted by %s (%s)", connection_id, user.id, user.tenant.id)
    await audit.record(AuditAction.CONNECTION_DELETED, user, connection_id=connection_id)
    await events.emit(host_events.removed(connection_id, user))


async def discard_draft(store: Store, audit: AuditTrail, user: HostUser, draft: Draft) -> bool:
    """Cancel before Waycore has a connection: the local draft only, no Waycore call. A draft
    that already has a connection is kept (that setup stays resumable); returns whether it went."""
    if draft.connection_id or not await store.delete_draft(user.tenant.id, draft.id):
        return False
    await audit.record(AuditAction.DRAFT_DISCARDED, user, draft_id=draft.id)
    return True


# ---------------------------------------------------------------------------- repairs


@dataclass(frozen=True)
class Correction:
    """What the customer may do about a connection whose portal URL Waycore could not use.

    `institution` for a listed bank: the other portals of its catalog entry are the choices
    (none when it has only one: then support is the way); None for an unlisted bank, whose URL
    the customer types again."""

    sent_url: str | None
    institution: Institution | None
    other_portals: list[str]

    @property
    def possible(self) -> bool:
        return self.institution is None or bool(self.other_portals)


async def correction_for(waycore: WaycoreClient, connection: Connection) -> Correction:
    """The choices `correct_portal` accepts for `connection`."""
    if not connection.institution_id:
        return Correction(connection.portal_url, None, [])
    institution = await waycore.get_institution(connection.institution_id)
    others = [url for url in institution.portal_urls if url != connection.portal_url]
    return Correction(connection.portal_url, institution, others)


async def correct_portal(
    store: Store,
    waycore: WaycoreClient,
    entities: EntityResolver,
    events: HostEvents,
    audit: AuditTrail,
    user: HostUser,
    owned: OwnedConnection,
    connection: Connection,
    portal_url: str,
) -> ConnectionResult:
    """Start a corrected connection for the same bank with another portal URL (one of its
    catalog portals for a listed bank; a valid HTTPS URL of no supported bank otherwise). The
    connection that needs correction is left as it is: removing it is the customer's explicit,
    separate choice."""
    correction = await correction_for(waycore, connection)
    institution = correction.institution
    if institution is not None:
        if portal_url not in correction.other_portals:
            raise InvalidChoice(
                {"portal_url": "Choose one of the other sign-in portals listed for this bank."}
            )
        draft = await store.create_draft(
            user.tenant.id,
            user.id,
            institution_id=institution.institution_id,
            institution_name=institution.name,
            portal_url=portal_url,
        )
        choice = BankChoice(draft, institution, portal_url)
    else:
        url, error = validate_portal_url(portal_url)
        if url is not None and url == correction.sent_url:
            error = "This is the address Waycore could not use. Enter the corrected one."
        if error or url is None:
            raise InvalidChoice({"portal_url": error or "Enter the corrected portal URL."})
        name = owned.requested_institution_name or bank_label(connection, owned)
        choice = await choose_unlisted(store, waycore, user, None, name, url)
    return await create_connection(store, waycore, entities, events, audit, user, choice)


def bank_label(connection: Connection, owned: OwnedConnection) -> str:
    """A name for a bank the customer did not name: its portal's host."""
    return (
        connection.institution_name
        or owned.institution_name
        or host_events.portal_host(connection.portal_url)
        or "Your bank"
    )


# ---------------------------------------------------------------------------- the list


@dataclass(frozen=True)
class Overview:
    """The tenant's connections, grouped the way the list shows them, and its open drafts.

    `error` is set when Waycore could not be asked: the drafts still show."""

    live: list[Connection]
    attention: list[Connection]
    in_setup: list[Connection]
    drafts: list[Draft]
    owned: dict[str, OwnedConnection]
    error: WaycoreError | None = None
    #: More drafts than `drafts` holds (the list shows them a page at a time).
    more_drafts: bool = False
    #: connection id -> what changed since this user last looked (`CONNECTED_WHILE_AWAY`,
    #: `NEEDS_ATTENTION`); only connections that changed are in it.
    marks: dict[str, str] = field(default_factory=dict)


async def overview(
    live: LiveStatus,
    entities: EntityResolver,
    user: HostUser,
    *,
    drafts_shown: int = DRAFTS_PAGE,
) -> Overview:
    """Waycore's connections of the tenant's entity (recorded locally as the tenant's), grouped
    by the journey table, with the newest `drafts_shown` drafts that have no connection yet
    (`more_drafts`: whether there are more)."""
    tenant, store = user.tenant, live.store
    shown = max(DRAFTS_PAGE, min(drafts_shown, MAX_DRAFTS_SHOWN))
    drafts = await store.open_drafts(tenant.id, shown + 1)
    more = len(drafts) > shown
    drafts = drafts[:shown]
    owned = {row.connection_id: row for row in await store.owned_connections(tenant.id)}
    entity_id = await store.entity_for(tenant.id)
    if entity_id is None:
        await entities.prefetch(tenant)
        return Overview([], [], [], drafts, owned, more_drafts=more)
    try:
        connections = await live.tenant_connections(tenant.id, entity_id, list(owned.values()))
    except WaycoreError as exc:
        return Overview([], [], [], drafts, owned, error=exc, more_drafts=more)
    for connection in connections:
        if connection.id not in owned:  # recorded just now, from Waycore's list
            owned[connection.id] = await owned_record(store, tenant.id, connection.id)
    ready = [c for c in connections if c.is_ready]
    in_setup = [c for c in connections if step_for(c) is Step.DELEGATED_USER or is_waiting(c)]
    attention = [c for c in connections if not c.is_ready and c not in in_setup]
    seen = await store.seen_statuses(tenant.id, user.id)
    marks = changes_since_last_look(seen, ready, attention)
    now_seen = {c.id: c.status for c in connections if seen.get(c.id) != c.status}
    if now_seen:  # only what changed is written
        await store.mark_seen(tenant.id, user.id, now_seen)
    return Overview(ready, attention, in_setup, drafts, owned, more_drafts=more, marks=marks)


#: The list's marks on a row that changed since the user last looked.
CONNECTED_WHILE_AWAY = "connected_while_away"
NEEDS_ATTENTION = "needs_attention"


def changes_since_last_look(
    seen: dict[str, str], ready: list[Connection], attention: list[Connection]
) -> dict[str, str]:
    """What changed since the user last saw each connection (`seen`: its status then, on the
    list or its own screens): a connection now connected that they last saw otherwise, and one
    needing attention that they last saw in another status. A connection they never saw is new
    to them once they have looked at any before (someone else's connection); on a first look
    nothing is marked."""
    marks = {}
    for group, mark in ((ready, CONNECTED_WHILE_AWAY), (attention, NEEDS_ATTENTION)):
        for connection in group:
            last = seen.get(connection.id)
            if last != connection.status and (last is not None or seen):
                marks[connection.id] = mark
    return marks


async def mark_seen(store: Store, user: HostUser, connection: Connection) -> None:
    """`user` has now seen `connection` in its current status (a screen of it was shown)."""
    await store.mark_seen(user.tenant.id, user.id, {connection.id: connection.status})


def guide_url(setup_guides: dict[str, str], institution_id: str | None) -> str:
    """The exact guide Waycore supplied for this institution, else the general setup page."""
    if institution_id and institution_id in setup_guides:
        return setup_guides[institution_id]
    return DEFAULT_SETUP_GUIDE_URL
