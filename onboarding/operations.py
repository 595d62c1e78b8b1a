"""Running the app: the Waycore webhook registration and the periodic purge of expired drafts
and sessions."""

from __future__ import annotations

import asyncio
import logging

from store import Store
from waycore.client import WaycoreClient

log = logging.getLogger("app.operations")

#: The events this app acts on.
WEBHOOK_EVENTS = ["connection.status_changed", "transactions.sync_available"]
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
