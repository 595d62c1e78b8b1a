"""Webhook delivery: POST queued events to registrations, signed, with retries.

Each attempt sends the event's fixed JSON body with `Content-Type: application/json` and a fresh
`Waycore-Signature` from `waycore.webhooks.sign()`. The signature timestamp is the real wall
clock, not the (possibly advanced) sandbox clock, so a receiver's tolerance check still passes
after a clock advance. A non-2xx answer or a transport failure is retried after
`webhook_retry_base_seconds * 2**n` (sandbox clock) until `webhook_max_attempts` is reached.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from ..webhooks import SIGNATURE_HEADER, sign
from .config import SandboxConfig
from .engine import Engine
from .records import DeliveryRec, iso

log = logging.getLogger("waycore.sandbox")


class Deliverer:
    """Sends due deliveries; one instance per running sandbox."""

    def __init__(
        self,
        config: SandboxConfig,
        engine: Engine,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.transport = transport
        self.client: httpx.AsyncClient | None = None
        self._in_flight: set[str] = set()

    async def open(self) -> None:
        if self.client is None:
            self.client = httpx.AsyncClient(
                transport=self.transport,
                timeout=self.config.webhook_timeout_seconds,
                follow_redirects=False,
            )

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    def due(self) -> list[DeliveryRec]:
        now = self.engine.now()
        store = self.engine.store
        pending = [
            d
            for d in store.deliveries.values()
            if d.state == "pending" and d.next_attempt_at <= now and d.id not in self._in_flight
        ]
        return sorted(pending, key=lambda d: d.seq)

    async def deliver_due(self) -> int:
        """Attempt every due delivery concurrently; return how many were attempted."""
        if self.client is None:
            return 0
        batch = self.due()
        for d in batch:
            self._in_flight.add(d.id)
        try:
            await asyncio.gather(*(self._attempt(d) for d in batch))
        finally:
            for d in batch:
                self._in_flight.discard(d.id)
            self.engine.store.flush()
        return len(batch)

    async def _attempt(self, d: DeliveryRec) -> None:
        store = self.engine.store
        hook = store.webhooks.get(d.webhook_id)
        if hook is None or not hook.active:
            d.state = "cancelled"
            store.touch(d)
            return
        assert self.client is not None
        body = d.body.encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(hook.secret, body),
            "User-Agent": "waycore-sandbox-webhooks/1",
        }
        status: int | None = None
        error: str | None = None
        try:
            response = await self.client.post(hook.url, content=body, headers=headers)
            status = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        # the registration may have been deleted while the request was in flight
        d.attempts += 1
        entry: dict[str, Any] = {
            "attempt": d.attempts,
            "at": iso(self.engine.now()),
            "url": hook.url,
            "status": status,
            "error": error,
        }
        d.log.append(entry)
        if status is not None and 200 <= status < 300:
            d.state = "delivered"
        elif d.attempts >= self.config.webhook_max_attempts:
            d.state = "failed"
        else:
            backoff = self.config.webhook_retry_base_seconds * 2 ** (d.attempts - 1)
            d.next_attempt_at = self.engine.now() + backoff
        if d.id in store.deliveries:
            store.touch(d)
        if d.state != "delivered":
            log.info(
                "webhook %s to %s: attempt %s %s", d.event_id, hook.url, d.attempts, status or error
            )


def attempts_view(store_deliveries: list[DeliveryRec]) -> list[dict[str, Any]]:
    """Every attempt of every delivery, oldest first, for `GET /_sandbox/deliveries`."""
    rows: list[dict[str, Any]] = []
    for d in sorted(store_deliveries, key=lambda d: d.seq):
        base = {
            "deliveryId": d.id,
            "eventId": d.event_id,
            "type": d.event_type,
            "webhookId": d.webhook_id,
            "state": d.state,
        }
        for entry in d.log:
            rows.append({**base, **entry})
    return rows
