"""`POST /webhooks/waycore`: Waycore's signed event deliveries, the background complement to
polling.

The signature is checked on the raw body before anything is parsed (`waycore.webhooks`); each
event id is processed once (Waycore may deliver an event more than once); the answer is a quick
2xx. A connection that became ready and active has its local drafts cleared even when nobody is
watching the activation page. Without a signing secret the receiver is off (404).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from views import _deps
from waycore.webhooks import SignatureError, parse_event, verify

log = logging.getLogger("app.webhooks")

PATH = "/webhooks/waycore"
MAX_BODY_BYTES = 256 * 1024


def _answer(status: int, message: str) -> Response:
    return JSONResponse({"status": message}, status_code=status)


async def receive(request: Request) -> Response:
    secret: str | None = getattr(request.state, "webhook_secret", None)
    if not secret:
        return _answer(404, "webhook receiver not configured")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():  # stop reading as soon as it is too large
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return _answer(413, "too large")
        chunks.append(chunk)
    body = b"".join(chunks)
    try:
        verify(secret, request.headers.get("waycore-signature"), body)
        event = parse_event(body)
    except SignatureError as exc:
        log.warning("refused a webhook delivery: %s", exc)
        return _answer(400, "invalid signature")
    except ValueError as exc:
        log.warning("refused a malformed webhook delivery: %s", exc)
        return _answer(400, "malformed event")
    store = _deps.store(request)
    if not await store.first_delivery(event.id, event.type):
        return _answer(200, "duplicate")
    connection_id = str(event.data.get("connectionId") or "")
    log.info("webhook %s %s for %s: %s", event.id, event.type, connection_id, event.data)
    if (
        event.type == "connection.status_changed"
        and event.data.get("status") == "active"
        and event.data.get("kind") == "ready"
    ):
        tenant_id = await store.tenant_of(connection_id)
        if tenant_id:
            await store.delete_drafts_for_connection(tenant_id, connection_id)
    return _answer(200, "ok")


routes = [Route(PATH, receive, methods=["POST"])]
