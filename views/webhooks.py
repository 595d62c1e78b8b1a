"""`POST /webhooks/waycore`: Waycore's signed event deliveries, the background complement to
polling.

The signature is checked on the raw body before anything is parsed (`waycore.webhooks`); each
event id is processed once (Waycore may deliver an event more than once); the answer is a quick
2xx. A connection that became ready and active is settled (its local drafts cleared, the host
told) even when nobody is watching the activation page, and one that now needs attention is
reported to the host (`onboarding.service.status_changed`). Without a signing secret the
receiver is off (404).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from onboarding import service
from views.guards import app_state
from views.inputs import bounded_body
from waycore.models import Connection
from waycore.webhooks import SignatureError, parse_event, verify

log = logging.getLogger("app.webhooks")

PATH = "/webhooks/waycore"
MAX_BODY_BYTES = 256 * 1024


def _answer(status: int, message: str) -> Response:
    return JSONResponse({"status": message}, status_code=status)


async def receive(request: Request) -> Response:
    state = app_state(request)
    secret = state.webhook_secret
    if not secret:
        return _answer(404, "webhook receiver not configured")
    body = await bounded_body(request, MAX_BODY_BYTES)
    if body is None:
        return _answer(413, "too large")
    try:
        verify(secret, request.headers.get("waycore-signature"), body)
        event = parse_event(body)
    except SignatureError as exc:
        log.warning("refused a webhook delivery: %s", exc)
        return _answer(400, "invalid signature")
    except ValueError as exc:
        log.warning("refused a malformed webhook delivery: %s", exc)
        return _answer(400, "malformed event")
    if not await state.store.first_delivery(event.id, event.type):
        return _answer(200, "duplicate")
    data = event.data
    connection_id = str(data.get("connectionId") or "")
    log.info("webhook %s %s for %s: %s", event.id, event.type, connection_id, data)
    if event.type == "connection.status_changed" and connection_id:
        reported = Connection(
            id=connection_id,
            entity_id=str(data.get("entityId") or ""),
            kind=str(data.get("kind") or ""),
            status=str(data.get("status") or ""),
            # Only used when the connection cannot be read again: the change's time.
            updated_at=event.created_at,
        )
        previous = data.get("previousStatus")
        await service.status_changed(
            state.live,
            state.events,
            reported,
            previous if isinstance(previous, str) else None,
        )
    elif event.type == "transactions.sync_available" and connection_id:
        await service.sync_available(state.live, connection_id)
    return _answer(200, "ok")


routes = [Route(PATH, receive, methods=["POST"])]
