"""Running the app: the Waycore webhook registration, the periodic purge of expired drafts and
sessions, and the operator's checks of a Waycore API key (`manage.py check`)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Literal

from store import Store
from waycore.client import WaycoreClient
from waycore.errors import Forbidden, Unauthorized, WaycoreAPIError, WaycoreError

log = logging.getLogger("app.operations")

#: The events this app's receiver takes (`test`, so `manage.py webhooks test` can reach it).
WEBHOOK_EVENTS = ["connection.status_changed", "transactions.sync_available", "test"]
#: How often expired drafts and sessions are purged while the app runs.
PURGE_INTERVAL_SECONDS = 60 * 60


async def register_webhook(client: WaycoreClient, url: str) -> str:
    """Register `url` for this app's events, replacing earlier registrations of the same URL;
    returns the signing secret (only the create response carries it)."""
    for old in await client.list_webhooks():
        if old.url == url:
            await client.delete_webhook(old.id)
    registration = await client.create_webhook(url, WEBHOOK_EVENTS)
    if not registration.secret:
        raise RuntimeError("Waycore answered the webhook registration without its secret")
    log.info("webhook deliveries go to %s", url)
    return registration.secret


async def purge_periodically(store: Store, interval: float = PURGE_INTERVAL_SECONDS) -> None:
    """Delete drafts untouched for the TTL and expired sessions, every `interval` seconds."""
    while True:
        await asyncio.sleep(interval)
        removed = await store.purge_expired()
        if removed:
            log.info("purged %d expired draft(s)", removed)


# ---------------------------------------------------------------------------- key checks


@dataclass(frozen=True)
class ScopeProbe:
    """How to see whether the key has `scope` without changing anything (see
    `WaycoreClient.check_access`)."""

    scope: str
    method: Literal["GET", "POST"]
    path: str
    #: Needed by the app itself (the guide's six); the others only by some commands.
    required: bool = True


#: The guide's six scopes for the whole flow, then the webhook scopes `manage.py webhooks` uses.
SCOPE_PROBES = (
    ScopeProbe("entities:read", "GET", "/v1/entities"),
    ScopeProbe("entities:write", "POST", "/v1/entities"),
    ScopeProbe("connections:read", "GET", "/v1/connections"),
    ScopeProbe("connections:write", "POST", "/v1/connections"),
    ScopeProbe("accounts:read", "GET", "/v1/accounts"),
    ScopeProbe("transactions:read", "GET", "/v1/transactions"),
    ScopeProbe("webhooks:read", "GET", "/v1/webhooks", required=False),
    ScopeProbe("webhooks:write", "POST", "/v1/webhooks", required=False),
)


@dataclass(frozen=True)
class ScopeCheck:
    probe: ScopeProbe
    #: "ok", "missing" (403), "unauthorized" (401) or "error" (anything else).
    result: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.result == "ok" or (self.result == "missing" and not self.probe.required)


async def check_scopes(client: WaycoreClient) -> list[ScopeCheck]:
    """Each scope of `SCOPE_PROBES`, tried with the configured key."""
    checks = []
    for probe in SCOPE_PROBES:
        try:
            await client.check_access(probe.method, probe.path)
        except Forbidden as exc:
            checks.append(ScopeCheck(probe, "missing", _said(exc)))
        except Unauthorized as exc:
            checks.append(ScopeCheck(probe, "unauthorized", _said(exc)))
        except WaycoreError as exc:
            checks.append(ScopeCheck(probe, "error", _said(exc)))
        else:
            checks.append(ScopeCheck(probe, "ok"))
    return checks


def _said(exc: WaycoreError) -> str:
    """What Waycore said, for the operator (never the key: errors do not carry it)."""
    if isinstance(exc, WaycoreAPIError):
        said = exc.message or exc.code or ""
        return f"{exc.status} {said}".strip() + (
            f" (request {exc.request_id})" if exc.request_id else ""
        )
    return str(exc)
