"""The `/v1` routes of the sandbox: Waycore's public API as this project understands it.

Every endpoint is wrapped by `V1.endpoint(scope, fn)`, which checks the bearer key and its scope
and turns `ApiError` (and any unexpected exception) into the JSON error body. Handlers are short:
parse, call the engine or read the store, render.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import catalog
from .config import CONNECTION_STATUSES, SCOPES, WEBHOOK_EVENTS
from .engine import Engine
from .records import (
    ConnectionRec,
    EntityRec,
    TransactionRec,
    WebhookRec,
    render_account,
    render_balance,
    render_connection,
    render_entity,
    render_transaction,
    render_webhook,
)
from .wire import (
    ApiError,
    api_error_response,
    error_response,
    json_response,
    opt_object,
    opt_str,
    paginate,
    read_object,
    req_str,
    request_id,
)

log = logging.getLogger("waycore.sandbox")

Handler = Callable[[Request], Awaitable[Response]]
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def bearer_scopes(engine: Engine, request: Request) -> tuple[frozenset[str], bool]:
    """The scopes of the request's key and whether it is the root key; 401 if none is valid."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "Missing API key: send `Authorization: Bearer <key>`.")
    if hmac.compare_digest(token.encode(), engine.config.api_key.encode()):
        return frozenset(SCOPES), True
    digest = key_hash(token)
    for key in engine.store.keys.values():
        if hmac.compare_digest(key.key_hash, digest):
            return frozenset(key.scopes), False
    raise ApiError(401, "unauthorized", "The API key is invalid, expired or revoked.")


def guarded(check: Callable[[Request], None], fn: Handler) -> Handler:
    """Run `check` (auth) then `fn`; render every error as the JSON error body."""

    async def handler(request: Request) -> Response:
        try:
            check(request)
            return await fn(request)
        except ApiError as exc:
            return api_error_response(request, exc)
        except Exception:
            log.exception("sandbox: unexpected error on %s %s", request.method, request.url.path)
            return error_response(
                request_id(request), 500, "internal_error", "The sandbox hit an internal error."
            )

    return handler


def _ordinal(day: str) -> int:
    return date.fromisoformat(day).toordinal()


def _date_param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ApiError(400, "invalid_request", f"`{name}` must be a date (YYYY-MM-DD).") from None


def valid_portal_url(url: str) -> bool:
    if len(url) > 2048 or any(ch.isspace() for ch in url) or not url.lower().startswith("https://"):
        return False
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return False
    host = parts.hostname or ""
    return bool(host) and not host.startswith(".") and ".." not in host


def valid_webhook_url(url: str) -> bool:
    if len(url) > 2048 or any(ch.isspace() for ch in url):
        return False
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return False
    host = parts.hostname or ""
    if not host:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and host in _LOOPBACK)


class V1:
    """The `/v1` routes over one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.store

    def endpoint(self, scope: str, fn: Handler) -> Handler:
        def check(request: Request) -> None:
            scopes, _root = bearer_scopes(self.engine, request)
            if scope not in scopes:
                raise ApiError(
                    403, "insufficient_scope", f"This API key lacks the `{scope}` scope."
                )

        return guarded(check, fn)

    def routes(self) -> list[Route]:
        table: list[tuple[str, str, str, Handler]] = [
            ("GET", "/v1/entities", "entities:read", self.list_entities),
            ("POST", "/v1/entities", "entities:write", self.create_entity),
            ("GET", "/v1/entities/{entity_id}", "entities:read", self.get_entity),
            ("DELETE", "/v1/entities/{entity_id}", "entities:write", self.delete_entity),
            ("GET", "/v1/institutions", "connections:read", self.list_institutions),
            ("GET", "/v1/institutions/{institution_id}", "connections:read", self.get_institution),
            ("GET", "/v1/connections", "connections:read", self.list_connections),
            ("POST", "/v1/connections", "connections:write", self.create_connection),
            ("GET", "/v1/connections/{connection_id}", "connections:read", self.get_connection),
            (
                "DELETE",
                "/v1/connections/{connection_id}",
                "connections:write",
                self.delete_connection,
            ),
            (
                "PUT",
                "/v1/connections/{connection_id}/credentials",
                "connections:write",
                self.put_credentials,
            ),
            (
                "PUT",
                "/v1/connections/{connection_id}/setupCompletion",
                "connections:write",
                self.complete_setup,
            ),
            ("PUT", "/v1/connections/{connection_id}/sync", "connections:write", self.sync),
            ("GET", "/v1/accounts", "accounts:read", self.list_accounts),
            ("GET", "/v1/accounts/{account_id}", "accounts:read", self.get_account),
            ("GET", "/v1/balances", "accounts:read", self.list_balances),
            ("GET", "/v1/transactions", "transactions:read", self.list_transactions),
            ("GET", "/v1/transactions/{transaction_id}", "transactions:read", self.get_transaction),
            ("GET", "/v1/webhooks", "webhooks:read", self.list_webhooks),
            ("POST", "/v1/webhooks", "webhooks:write", self.create_webhook),
            ("GET", "/v1/webhooks/{webhook_id}", "webhooks:read", self.get_webhook),
            ("PATCH", "/v1/webhooks/{webhook_id}", "webhooks:write", self.update_webhook),
            ("DELETE", "/v1/webhooks/{webhook_id}", "webhooks:write", self.delete_webhook),
            ("POST", "/v1/webhooks/{webhook_id}/test", "webhooks:write", self.test_webhook),
        ]
        return [
            Route(path, self.endpoint(scope, fn), methods=[method])
            for method, path, scope, fn in table
        ]

    # -- lookups -----------------------------------------------------------------------------

    def _entity(self, entity_id: str) -> EntityRec:
        entity = self.store.entities.get(entity_id)
        if entity is None:
            raise ApiError(404, "not_found", f"Entity {entity_id} was not found.")
        return entity

    def _connection(self, request: Request) -> ConnectionRec:
        connection_id = request.path_params["connection_id"]
        conn = self.store.connections.get(connection_id)
        if conn is None:
            raise ApiError(404, "not_found", f"Connection {connection_id} was not found.")
        return conn

    def _webhook(self, request: Request) -> WebhookRec:
        webhook_id = request.path_params["webhook_id"]
        hook = self.store.webhooks.get(webhook_id)
        if hook is None:
            raise ApiError(404, "not_found", f"Webhook {webhook_id} was not found.")
        return hook

    # -- entities ----------------------------------------------------------------------------

    async def list_entities(self, request: Request) -> Response:
        wanted = request.query_params.get("externalEntityId")
        items = [
            e
            for e in self.store.entities.values()
            if wanted is None or e.external_entity_id == wanted
        ]
        return paginate(request, items, lambda e: (e.seq,), render_entity)

    async def create_entity(self, request: Request) -> Response:
        body = read_object(request, ("externalEntityId", "name", "metadata"))
        external = req_str(body, "externalEntityId")
        name = opt_str(body, "name")
        metadata = opt_object(body, "metadata") or {}
        if any(e.external_entity_id == external for e in self.store.entities.values()):
            raise ApiError(
                409, "conflict", f"An entity with externalEntityId `{external}` already exists."
            )
        at = self.engine.now()
        entity = EntityRec(
            id=str(uuid.uuid4()),
            seq=self.store.next_seq(),
            external_entity_id=external,
            is_default=False,
            name=name,
            metadata=metadata,
            created_at=at,
            updated_at=at,
        )
        self.store.put(entity)
        return json_response(render_entity(entity), 201)

    async def get_entity(self, request: Request) -> Response:
        return json_response(render_entity(self._entity(request.path_params["entity_id"])))

    async def delete_entity(self, request: Request) -> Response:
        entity = self._entity(request.path_params["entity_id"])
        if entity.is_default:
            raise ApiError(409, "conflict", "The default organization entity cannot be deleted.")
        owned = [c for c in self.store.connections.values() if c.entity_id == entity.id]
        if any(c.sync_status == "syncing" for c in owned):
            raise ApiError(409, "conflict", "One of this entity's connections is syncing.")
        for conn in owned:
            self.engine.delete_connection_data(conn)
        self.store.delete(entity)
        return Response(status_code=204)

    # -- institutions ------------------------------------------------------------------------

    async def list_institutions(self, request: Request) -> Response:
        found = catalog.search(request.query_params.get("query"))
        return paginate(
            request, found, lambda i: (i.name.lower(), i.institution_id), lambda i: i.to_api()
        )

    async def get_institution(self, request: Request) -> Response:
        institution_id = request.path_params["institution_id"]
        inst = catalog.BY_ID.get(institution_id)
        if inst is None:
            raise ApiError(404, "not_found", f"Institution {institution_id} was not found.")
        return json_response(inst.to_api())

    # -- connections -------------------------------------------------------------------------

    async def list_connections(self, request: Request) -> Response:
        q = request.query_params
        status = q.get("status")
        if status is not None and status not in CONNECTION_STATUSES:
            raise ApiError(400, "invalid_request", f"Unknown connection status `{status}`.")
        items = [
            c
            for c in self.store.connections.values()
            if (q.get("entityId") is None or c.entity_id == q.get("entityId"))
            and (status is None or c.status == status)
            and (q.get("institutionId") is None or c.institution_id == q.get("institutionId"))
        ]
        return paginate(request, items, lambda c: (c.seq,), render_connection)

    async def create_connection(self, request: Request) -> Response:
        body = read_object(request, ("entityId", "institutionId", "portalUrl"))
        entity_id = req_str(body, "entityId")
        institution_id = opt_str(body, "institutionId")
        portal_url = opt_str(body, "portalUrl")
        if institution_id is None and portal_url is None:
            raise ApiError(400, "invalid_request", "Send `institutionId`, `portalUrl`, or both.")
        if entity_id not in self.store.entities:
            raise ApiError(400, "invalid_entity", f"Entity {entity_id} does not exist.")
        inst = None
        if institution_id is not None:
            inst = catalog.BY_ID.get(institution_id)
            if inst is None:
                raise ApiError(
                    400, "invalid_institution", f"Unknown institution `{institution_id}`."
                )
        if portal_url is not None:
            if not valid_portal_url(portal_url):
                raise ApiError(
                    400, "invalid_portal_url", "`portalUrl` must be an https:// URL with a host."
                )
            if inst is not None and not catalog.portal_matches(inst, portal_url):
                raise ApiError(
                    400,
                    "invalid_portal_url",
                    f"`portalUrl` is not one of {inst.name}'s login portals.",
                )
        conn, created = self.engine.create_connection(entity_id, institution_id, portal_url)
        return json_response(render_connection(conn), 201 if created else 200)

    async def get_connection(self, request: Request) -> Response:
        return json_response(render_connection(self._connection(request)))

    async def delete_connection(self, request: Request) -> Response:
        self.engine.delete_connection_data(self._connection(request))
        return Response(status_code=204)

    async def put_credentials(self, request: Request) -> Response:
        body = read_object(request, ("bankUsername", "bankCustomerId", "password"))
        values = [opt_str(body, k) for k in ("bankUsername", "bankCustomerId", "password")]
        conn = self._connection(request)
        if not any(v is not None and v.strip() for v in values):
            raise ApiError(
                400,
                "invalid_credentials",
                "Send at least one of bankUsername, bankCustomerId or password.",
            )
        if conn.kind != "setup" and conn.status != "reauthRequired":
            raise ApiError(
                409,
                "invalid_state",
                "Credentials can only be sent while the connection is in setup, or when it "
                "needs re-authentication.",
            )
        conn.credentials_present = True  # the values themselves are never stored
        conn.updated_at = self.engine.now()
        self.store.touch(conn)
        return json_response(render_connection(conn))

    async def complete_setup(self, request: Request) -> Response:
        read_object(request, (), optional=True)
        conn = self._connection(request)
        self.engine.complete_setup(conn)
        return json_response(render_connection(conn))

    async def sync(self, request: Request) -> Response:
        read_object(request, (), optional=True)
        conn = self._connection(request)
        self.engine.request_sync(conn)
        return json_response(render_connection(conn), 202)

    # -- accounts, balances, transactions ----------------------------------------------------

    async def list_accounts(self, request: Request) -> Response:
        q = request.query_params
        filters = {"connection_id": "connectionId", "type": "type", "currency": "currency"}
        items = [
            a
            for a in self.store.accounts.values()
            if all(q.get(p) is None or getattr(a, f) == q.get(p) for f, p in filters.items())
            and q.get("status") in (None, "open")
        ]
        return paginate(request, items, lambda a: (a.seq,), render_account)

    async def get_account(self, request: Request) -> Response:
        account_id = request.path_params["account_id"]
        account = self.store.accounts.get(account_id)
        if account is None:
            raise ApiError(404, "not_found", f"Account {account_id} was not found.")
        return json_response(render_account(account))

    async def list_balances(self, request: Request) -> Response:
        q = request.query_params
        gte, lt = _date_param(request, "dateGte"), _date_param(request, "dateLt")
        filters = {
            "connection_id": "connectionId",
            "account_id": "accountId",
            "entity_id": "entityId",
        }
        items = [
            b
            for b in self.store.balances.values()
            if all(q.get(p) is None or getattr(b, f) == q.get(p) for f, p in filters.items())
            and (gte is None or b.date >= gte)
            and (lt is None or b.date < lt)
        ]
        return paginate(request, items, lambda b: (-_ordinal(b.date), b.account_id), render_balance)

    async def list_transactions(self, request: Request) -> Response:
        q = request.query_params
        gte, lt = _date_param(request, "postedDateGte"), _date_param(request, "postedDateLt")
        filters = {
            "connection_id": "connectionId",
            "account_id": "accountId",
            "status": "status",
            "rail": "rail",
        }

        def in_range(t: TransactionRec) -> bool:
            if gte is None and lt is None:
                return True
            if t.posted_date is None:
                return False
            return (gte is None or t.posted_date >= gte) and (lt is None or t.posted_date < lt)

        items = [
            t
            for t in self.store.transactions.values()
            if all(q.get(p) is None or getattr(t, f) == q.get(p) for f, p in filters.items())
            and in_range(t)
        ]
        return paginate(request, items, _txn_key, render_transaction)

    async def get_transaction(self, request: Request) -> Response:
        transaction_id = request.path_params["transaction_id"]
        txn = self.store.transactions.get(transaction_id)
        if txn is None:
            raise ApiError(404, "not_found", f"Transaction {transaction_id} was not found.")
        return json_response(render_transaction(txn))

    # -- webhooks ----------------------------------------------------------------------------

    @staticmethod
    def _check_url(body: dict[str, Any]) -> str:
        url = req_str(body, "url")
        if not valid_webhook_url(url):
            raise ApiError(
                400,
                "invalid_request",
                "`url` must be https:// (or http:// on 127.0.0.1, localhost or ::1).",
            )
        return url

    @staticmethod
    def _check_events(body: dict[str, Any]) -> list[str]:
        events = body.get("events")
        if not isinstance(events, list) or not events:
            raise ApiError(400, "invalid_request", "`events` must be a non-empty list.")
        for event in events:
            if event not in WEBHOOK_EVENTS:
                raise ApiError(400, "invalid_request", f"Unknown webhook event `{event}`.")
        return list(dict.fromkeys(str(e) for e in events))

    async def list_webhooks(self, request: Request) -> Response:
        return paginate(request, self.store.webhooks.values(), lambda w: (w.seq,), render_webhook)

    async def create_webhook(self, request: Request) -> Response:
        body = read_object(request, ("url", "events", "metadata"))
        url = self._check_url(body)
        events = self._check_events(body)
        metadata = opt_object(body, "metadata") or {}
        at = self.engine.now()
        hook = WebhookRec(
            id=f"wh_{secrets.token_hex(8)}",
            seq=self.store.next_seq(),
            url=url,
            events=events,
            secret=f"whsec_{secrets.token_hex(24)}",
            active=True,
            metadata=metadata,
            created_at=at,
            updated_at=at,
        )
        self.store.put(hook)
        return json_response(
            {
                "webhook": render_webhook(hook, full_secret=True),
                "meta": {"requestId": request_id(request)},
            }
        )

    async def get_webhook(self, request: Request) -> Response:
        return json_response(render_webhook(self._webhook(request)))

    async def update_webhook(self, request: Request) -> Response:
        body = read_object(request, ("url", "events", "active", "metadata"))
        hook = self._webhook(request)
        if "url" in body:
            hook.url = self._check_url(body)
        if "events" in body:
            hook.events = self._check_events(body)
        if "active" in body:
            if not isinstance(body["active"], bool):
                raise ApiError(400, "invalid_request", "`active` must be true or false.")
            hook.active = body["active"]
        if "metadata" in body:
            hook.metadata = opt_object(body, "metadata") or {}
        hook.updated_at = self.engine.now()
        self.store.touch(hook)
        return json_response(render_webhook(hook))

    async def delete_webhook(self, request: Request) -> Response:
        self.store.delete(self._webhook(request))
        return Response(status_code=204)

    async def test_webhook(self, request: Request) -> Response:
        read_object(request, (), optional=True)
        hook = self._webhook(request)
        if not hook.active or "test" not in hook.events:
            raise ApiError(
                409, "invalid_state", "The webhook must be active and subscribed to `test`."
            )
        event_id = self.engine.emit(
            "test", {"webhookId": hook.id}, self.engine.now(), only_webhook=hook.id
        )
        return json_response({"eventId": event_id, "meta": {"requestId": request_id(request)}}, 202)


def _txn_key(t: TransactionRec) -> tuple[int, int, str]:
    if t.posted_date is None:  # pending first: they are the newest
        return (0, -_ordinal(t.txn_date), t.id)
    return (1, -_ordinal(t.posted_date), t.id)
