"""The connections list, the connection detail page, manual sync and deletion.

The list merges the tenant's Waycore connections (by its mapped entity) with its local drafts.
The detail page shows status, accounts with balances, daily balances and paged transactions.
Sync is offered on ready, active connections only and honours the 45-minute cooldown locally:
after a 429 no Waycore call is made until `Retry-After` has passed. Delete is for admins, after
an explicit confirmation step.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from host import HostUser
from store import OwnedConnection
from views import _deps, htmx
from views._access import navigate, owned_connection, owned_connection_or_retry
from views._errors import Problem, problem_for
from views._render import render
from views._status import SYNC_LABELS, status_view, sync_label
from waycore.errors import Conflict, RateLimited, WaycoreError
from waycore.models import Account, Balance, Connection, Page, Transaction

log = logging.getLogger("app.connections")

#: Waycore's documented manual-sync cooldown, used when a 429 carries no Retry-After.
DEFAULT_SYNC_COOLDOWN_SECONDS = 45 * 60
TRANSACTIONS_PAGE_SIZE = 25
BALANCE_DAYS = 14


async def list_connections(request: Request) -> Response:
    user = await _deps.require_user(request, "read")
    store = _deps.store(request)
    drafts = await store.list_drafts(user.tenant.id)
    owned = {row.connection_id: row for row in await store.owned_connections(user.tenant.id)}
    entity_id = await store.entity_for(user.tenant.id)
    connections: list[Connection] = []
    problem: Problem | None = None
    if entity_id is None:
        await _deps.entities(request).prefetch(user.tenant)
    else:
        try:
            listed = await _deps.waycore(request).list_connections(entity_id=entity_id)
        except WaycoreError as exc:
            problem = problem_for(exc, "listing connections")
            listed = []
        for connection in listed:
            if connection.entity_id and connection.entity_id != entity_id:
                continue  # defensive: never show another entity's connection
            connections.append(connection)
            if connection.id not in owned:
                await store.record_connection(user.tenant.id, connection.id)
    attention = [c for c in connections if not c.is_ready and not status_view(c).pending]
    context = {
        "live": [c for c in connections if c.is_ready],
        "attention": attention,
        "in_setup": [c for c in connections if not c.is_ready and c not in attention],
        "drafts": [d for d in drafts if not d.connection_id],
        "owned": owned,
        "problem": problem,
        "flash": request.session.pop("flash", None),
    }
    return render(request, "connections/list.html", context)


def _cooldown_until(owned: OwnedConnection | None) -> float | None:
    if owned and owned.sync_allowed_at and owned.sync_allowed_at > time.time():
        return owned.sync_allowed_at
    return None


def _sync_context(
    user: HostUser,
    owned: OwnedConnection,
    connection: Connection | None,
    *,
    message: str | None = None,
    problem: Problem | None = None,
) -> dict[str, Any]:
    """What the sync panel shows. `connection` is None when no fresh read was made (inside the
    cooldown nothing is asked of Waycore)."""
    until = _cooldown_until(owned)
    return {
        "sync_connection_id": owned.connection_id,
        "sync_state": connection.sync_status if connection else None,
        "sync_label_text": sync_label(connection) if connection else None,
        "last_synced_at": connection.last_synced_at if connection else None,
        "can_sync": user.can("connect") and (connection is None or connection.is_ready),
        "cooldown_until": until,
        "cooldown_seconds": int(until - time.time()) + 1 if until else None,
        "sync_message": message,
        "sync_problem": problem,
    }


def _balance_table(accounts: list[Account], balances: list[Balance]) -> dict[str, Any]:
    """Daily ledger balances pivoted to rows by date (newest first), one column per account."""
    cells: dict[str, dict[str, Balance]] = {}
    for balance in balances:
        cells.setdefault(balance.date, {})[balance.account_id] = balance
    dates = sorted(cells, reverse=True)[:BALANCE_DAYS]
    return {"dates": dates, "cells": cells, "accounts": accounts}


async def _data(
    request: Request, connection: Connection, cursor: str | None
) -> tuple[list[Account], dict[str, Any], Page[Transaction] | None, Problem | None]:
    client = _deps.waycore(request)
    since = (datetime.now(UTC).date() - timedelta(days=BALANCE_DAYS + 2)).isoformat()
    try:
        accounts, balances, transactions = await asyncio.gather(
            client.list_accounts(connection.id),
            client.list_balances(connection_id=connection.id, date_gte=since),
            client.transactions_page(
                connection_id=connection.id, cursor=cursor, limit=TRANSACTIONS_PAGE_SIZE
            ),
        )
    except WaycoreError as exc:
        return [], _balance_table([], []), None, problem_for(exc, "reading connection data")
    return accounts, _balance_table(accounts, balances), transactions, None


async def connection_detail(request: Request) -> Response:
    """A connection's page; setup-stage connections are routed to their wizard step."""
    user = await _deps.require_user(request, "read")
    owned, connection = await owned_connection(request, user)
    store = _deps.store(request)
    if connection.kind == "setup" and connection.status == "draft":
        return navigate(request, f"/connections/{connection.id}/delegated-user")
    if connection.kind == "setup" and connection.status == "pendingActivation":
        return navigate(request, f"/connections/{connection.id}/activation")
    if connection.is_ready:
        await store.delete_drafts_for_connection(user.tenant.id, connection.id)
    cursor = request.query_params.get("cursor") or None
    accounts: list[Account] = []
    balances: dict[str, Any] = _balance_table([], [])
    transactions: Page[Transaction] | None = None
    problem = None
    if connection.is_ready:  # data is read only from a usable (ready and active) connection
        accounts, balances, transactions, problem = await _data(request, connection, cursor)
    context = {
        "owned": owned,
        "accounts": accounts,
        "balances": balances,
        "transactions": transactions,
        "cursor": cursor,
        "problem": problem,
        "can_delete": user.can("delete"),
        "flash": request.session.pop("flash", None),
        "connection": connection,
        **_sync_context(user, owned, connection),
    }
    return render(request, "connections/detail.html", context)


async def transactions_page(request: Request) -> Response:
    """The next page of transactions (`nextCursor`), appended by htmx under the table."""
    user = await _deps.require_user(request, "read")
    owned, connection = await owned_connection(request, user)
    cursor = request.query_params.get("cursor") or None
    if not htmx.is_htmx(request):
        suffix = "?" + urlencode({"cursor": cursor}) if cursor else ""
        return navigate(request, f"/connections/{connection.id}{suffix}")
    try:
        page = await _deps.waycore(request).transactions_page(
            connection_id=connection.id, cursor=cursor, limit=TRANSACTIONS_PAGE_SIZE
        )
    except WaycoreError as exc:
        problem = problem_for(exc, "reading transactions")
        context = {"connection": connection, "transactions": None, "problem": problem}
        return render(request, "connections/transactions_page.html", context, block="content")
    context = {"connection": connection, "transactions": page, "cursor": None}
    if cursor:
        return render(request, "connections/transactions_page.html", context, block="content")
    return render(request, "connections/detail.html", context, block="transactions")


async def sync_status(request: Request) -> Response:
    """The sync panel, polled while a sync runs; stops polling once the connection is idle."""
    user = await _deps.require_user(request, "read")
    found = await owned_connection_or_retry(request, user, "sync-panel")
    if isinstance(found, Response):
        return found
    owned, connection = found
    response = render(
        request,
        "connections/detail.html",
        _sync_context(user, owned, connection),
        block="sync_panel",
    )
    if connection.sync_status != "syncing" and request.query_params.get("after") == "sync":
        htmx.with_trigger(response, "transactionsChanged")
    return response


async def sync(request: Request) -> Response:
    """Manual sync: 202 -> "Syncing now"; 409 -> calm retry; 429 -> disabled until allowed.

    Inside a cooldown Waycore told us about, nothing at all is sent to Waycore."""
    user = await _deps.require_user(request, "connect")
    connection_id = request.path_params["connection_id"]
    store = _deps.store(request)
    owned = await store.owned_connection(user.tenant.id, connection_id)
    if owned is None:
        raise HTTPException(404)
    if _cooldown_until(owned) is not None:
        return _sync_response(request, _sync_context(user, owned, None))
    client = _deps.waycore(request)
    connection: Connection | None = None
    accepted = False
    message: str | None = None
    problem: Problem | None = None
    try:
        connection = await client.sync_connection(connection_id)
        accepted = True
        message = "Sync started. New transactions will appear when it finishes."
    except RateLimited as exc:
        wait = exc.retry_after if exc.retry_after is not None else DEFAULT_SYNC_COOLDOWN_SECONDS
        await store.set_sync_allowed_at(user.tenant.id, connection_id, time.time() + wait)
        log.info("sync of %s in cooldown for %.0f s", connection_id, wait)
        owned = await store.owned_connection(user.tenant.id, connection_id)
        assert owned is not None
    except Conflict:
        message = (
            "A sync is already running, or the connection is not ready for one yet. "
            "Nothing was changed; try again in a few minutes."
        )
    except WaycoreError as exc:
        problem = problem_for(exc, "starting a sync")
    context = _sync_context(user, owned, connection, message=message, problem=problem)
    if accepted:
        # 202: queued. Show "Syncing now" and poll until Waycore reports idle again.
        context.update(sync_state="syncing", sync_label_text=SYNC_LABELS["syncing"])
    return _sync_response(request, context)


def _sync_response(request: Request, context: dict[str, Any]) -> Response:
    if not htmx.is_htmx(request):
        if context.get("sync_message"):
            request.session["flash"] = context["sync_message"]
        return navigate(request, f"/connections/{context['sync_connection_id']}")
    return render(request, "connections/detail.html", context, block="sync_panel")


async def delete_confirm(request: Request) -> Response:
    """The confirmation step: says what will be removed. Admins only."""
    user = await _deps.require_user(request, "delete")
    owned, connection = await owned_connection(request, user)
    return render(request, "connections/delete.html", {"connection": connection, "owned": owned})


async def delete(request: Request) -> Response:
    """`DELETE /v1/connections/{id}` only with the confirmation field set."""
    user = await _deps.require_user(request, "delete")
    owned, connection = await owned_connection(request, user)
    store = _deps.store(request)
    form = await request.form()
    if form.get("confirm") != "delete":
        context = {
            "connection": connection,
            "owned": owned,
            "error": "Tick the box to confirm you want to delete this connection.",
        }
        return render(request, "connections/delete.html", context, status=422)
    try:
        await _deps.waycore(request).delete_connection(connection.id)
    except WaycoreError as exc:
        problem = problem_for(exc, "deleting a connection")
        context = {"connection": connection, "owned": owned, "problem": problem}
        return render(request, "connections/delete.html", context)
    await store.forget_connection(user.tenant.id, connection.id)
    log.info("connection %s deleted by %s (%s)", connection.id, user.id, user.tenant.id)
    request.session["flash"] = "The connection and its accounts and transactions were deleted."
    return navigate(request, "/connections")


routes = [
    Route("/connections", list_connections, methods=["GET"]),
    Route("/connections/{connection_id}", connection_detail, methods=["GET"]),
    Route("/connections/{connection_id}/transactions", transactions_page, methods=["GET"]),
    Route("/connections/{connection_id}/sync", sync_status, methods=["GET"]),
    Route("/connections/{connection_id}/sync", sync, methods=["POST"]),
    Route("/connections/{connection_id}/delete", delete_confirm, methods=["GET"]),
    Route("/connections/{connection_id}/delete", delete, methods=["POST"]),
]
