"""A connection's page: status, accounts, daily balances, paged transactions, sync and delete.

Data is read only from a usable (ready and active) connection. Sync is optional (activation
starts the first one) and honours the 45-minute cooldown locally: after an accepted sync (45
minutes) or a 429 (its `Retry-After`) no sync is sent to Waycore until the cooldown has passed.
Delete is for admins, after an explicit confirmation.

A connection in a recoverable state is read again with backoff (`status-watch`); when its status
changes the page reloads itself (or goes where the journey table says), so a connection Waycore
recovers shows its accounts without the customer doing anything.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from host import HostUser
from onboarding import service
from onboarding.journey import Step, step_for
from onboarding.live import Reading
from store import OwnedConnection
from views import htmx, inputs
from views.errors import Problem, problem_for
from views.guards import (
    app_state,
    ensure_step,
    hold_for_change,
    mark_seen,
    owned_connection,
    read_connection,
    require_user,
)
from views.guards import connection_id as guarded_connection_id
from views.render import flash, keeps_renderings, render, render_block, viewer_role
from views.status import (
    AFTER_HOLD_SECONDS,
    SYNC_LABELS,
    sync_label,
    watch_attempt,
    watch_context,
)
from views.urls import step_url, url_for
from waycore.errors import WaycoreError
from waycore.models import Account, Balance, Connection

TEMPLATE = "connections/connection.html"
TRANSACTIONS_PAGE_SIZE = 25
BALANCE_DAYS = 14


def _sync_context(
    user: HostUser,
    owned: OwnedConnection,
    connection: Connection | None,
    *,
    message: str | None = None,
    problem: Problem | None = None,
    version: int | None = None,
    long_poll: bool = False,
    held: bool = False,
    poll_seconds: float,
) -> dict[str, Any]:
    """What the sync panel shows. `connection` is None when no fresh read was made (inside the
    cooldown nothing is asked of Waycore). While a sync runs the panel reads again (held until
    the state moves, with long-poll: `version`)."""
    until = service.cooldown_until(owned)
    query = "?after=sync"  # nothing to encode: a word and a number
    if long_poll and version is not None:
        query += f"&v={int(version)}&wait=1"
    return {
        "sync_poll_query": query,
        "sync_poll_delay": AFTER_HOLD_SECONDS if held else poll_seconds,
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


async def _data(request: Request, connection: Connection, cursor: str | None) -> dict[str, Any]:
    """Accounts, the balance table and one page of transactions; a Waycore failure is a
    `problem` shown in the page."""
    if not connection.is_ready:  # data is read only from a usable (ready and active) connection
        return {"accounts": [], "balances": _balance_table([], []), "transactions": None}
    client = app_state(request).waycore
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
        return {
            "accounts": [],
            "balances": _balance_table([], []),
            "transactions": None,
            "problem": await problem_for(request, exc, "reading connection data"),
        }
    return {
        "accounts": accounts,
        "balances": _balance_table(accounts, balances),
        "transactions": transactions,
    }


def _cursor(request: Request) -> str | None:
    """The `?cursor=` of a transactions page: Waycore's opaque cursor, refused (400) before it
    goes anywhere when it cannot be one."""
    fields = inputs.query(request)
    cursor = fields.text("cursor", 4096)
    if fields.errors or (cursor and not inputs.is_cursor(cursor)):
        raise HTTPException(400, "That page of transactions does not exist. Start from the newest.")
    return cursor or None


async def _account_data(request: Request, reading: Reading, cursor: str | None) -> dict[str, Any]:
    """`_data`, reused while Waycore has said nothing of new data (see `LiveStatus.data`)."""
    cache = app_state(request).live.data
    key = (reading.connection.id, reading.data_version, cursor)
    held = cache.get(key)
    if isinstance(held, dict):
        return held
    data = await _data(request, reading.connection, cursor)
    if "problem" not in data:
        cache.put(key, data)
    return data


def _account_data_html(request: Request, data: dict[str, Any], context: dict[str, Any]) -> Markup:
    """The page's data section (accounts, balances, transactions: the `account_data` block),
    rendered once per read of the data and kept with it (`_account_data`): the same data renders
    the same, so a page viewed again reuses it until the data is read again. A read that failed
    (`problem`) is not kept, and neither is its rendering (nor any with `TEMPLATE_RELOAD`)."""
    rendered: dict[tuple[object, ...], Markup] = data.setdefault(_RENDERED, {})
    root = str(request.scope.get("root_path", ""))
    key = (request.app.state.templates, root, viewer_role(request))
    html = rendered.get(key)
    if html is None:  # shown to the tenant's other users: nothing of this one but the role
        html = Markup(render_block(request, TEMPLATE, "account_data", context, shared=True))
        if "problem" not in data and keeps_renderings(request):
            rendered[key] = html
    return html


#: Where `_account_data_html` keeps the rendered section, in the data it shows.
_RENDERED = "_rendered"


async def connection_page(request: Request) -> Response:
    """A connection's page; setup-stage connections are sent to their step."""
    user = await require_user(request, "read")
    cursor = _cursor(request)
    reading = await read_connection(request, user)
    owned, connection = reading.owned, reading.connection
    ensure_step(request, Step.CONNECTION, connection)
    await mark_seen(request, user, connection)
    poll = app_state(request).settings.poll_interval_seconds
    data = await _account_data(request, reading, cursor)
    context = {
        "owned": owned,
        "connection": connection,
        "cursor": cursor,
        "problem": None,
        "can_delete": user.can("delete"),
        **data,
        **_sync_context(user, owned, connection, **_sync_polling(request, reading)),
        **watch_context(poll, connection),
    }
    context["account_data_html"] = _account_data_html(request, data, context)
    return render(request, TEMPLATE, context)


async def connection_status(request: Request) -> Response:
    """The watched status section of a connection in a recoverable state: the same section,
    reading again after a longer pause, while nothing changed; the page again (or the screen the
    journey table names) once the status has changed since the page showed it (`?seen=`)."""
    user = await require_user(request, "read")
    state = app_state(request)
    watched = await service.watch(
        state.live,
        state.events,
        user.tenant.id,
        request.path_params["connection_id"],
        request.query_params.get("seen"),
    )
    connection = watched.connection
    home = step_for(connection)
    if not htmx.is_htmx(request) or home is not Step.CONNECTION or watched.changed:
        if connection.is_ready:
            flash(request, "Your bank connection is working again.")
        return htmx.navigate(
            request, step_url(request, connection), push=home is not Step.CONNECTION
        )
    attempt = watch_attempt(request.query_params.get("n"))
    poll = state.settings.poll_interval_seconds
    context = {
        "owned": watched.owned,
        "connection": connection,
        **watch_context(poll, connection, attempt),
    }
    return render(request, TEMPLATE, context, block="status_watch")


async def transactions_page(request: Request) -> Response:
    """The next page of transactions (`nextCursor`), appended by htmx under the table; the first
    page again (the table) when a sync has brought new ones."""
    user = await require_user(request, "read")
    cursor = _cursor(request)
    _, connection = await owned_connection(request, user)
    if not htmx.is_htmx(request):
        suffix = "?" + urlencode({"cursor": cursor}) if cursor else ""
        return htmx.navigate(
            request, url_for(request, "connection", connection_id=connection.id) + suffix
        )
    context: dict[str, Any] = {"connection": connection, "cursor": None, "transactions": None}
    try:
        context["transactions"] = await app_state(request).waycore.transactions_page(
            connection_id=connection.id, cursor=cursor, limit=TRANSACTIONS_PAGE_SIZE
        )
    except WaycoreError as exc:
        context["problem"] = await problem_for(request, exc, "reading transactions")
        return render(request, "connections/_transactions_page.html", context)
    if cursor:
        return render(request, "connections/_transactions_page.html", context)
    return render(request, TEMPLATE, context, block="transactions")


async def sync_panel(request: Request) -> Response:
    """The sync panel, read again while a sync runs (held until the state moves, with
    long-poll); it stops once the connection is idle."""
    user = await require_user(request, "read")
    held = await hold_for_change(request, user)
    reading = await read_connection(request, user)
    owned, connection = reading.owned, reading.connection
    if not htmx.is_htmx(request):
        return htmx.navigate(request, url_for(request, "connection", connection_id=connection.id))
    context = _sync_context(user, owned, connection, **_sync_polling(request, reading, held))
    response = render(request, TEMPLATE, context, block="sync_panel")
    if connection.sync_status != "syncing" and inputs.query(request).raw("after") == "sync":
        htmx.with_trigger(response, "transactionsChanged")
    return response


def _sync_polling(request: Request, reading: Reading, held: bool = False) -> dict[str, Any]:
    settings = app_state(request).settings
    return {
        "version": reading.version,
        "long_poll": settings.long_poll_seconds > 0,
        "held": held,
        "poll_seconds": settings.poll_interval_seconds,
    }


SYNC_MESSAGES = {
    "started": "Sync started. New transactions will appear when it finishes.",
    "busy": (
        "A sync is already running, or the connection is not ready for one yet. "
        "Nothing was changed; try again in a few minutes."
    ),
}


async def _current(request: Request, tenant_id: str, connection_id: str) -> Connection | None:
    """Waycore's view of the connection, for the panel's status line (None if it cannot be read
    just now: the panel then shows what it knows)."""
    state = app_state(request)
    try:
        _, connection = await service.owned_connection(
            state.live, state.events, tenant_id, connection_id
        )
    except WaycoreError:
        return None
    return connection


async def sync(request: Request) -> Response:
    """Manual sync: 202 -> "Syncing now"; 409 -> calm retry; 429 -> disabled until allowed.

    An accepted sync starts Waycore's 45-minute cooldown, and so does a 429 (for its
    `Retry-After`): inside it no sync request is sent to Waycore, and the button stays disabled.
    A refused sync keeps the panel's status line (the connection is read for it)."""
    user = await require_user(request, "connect")
    connection_id = guarded_connection_id(request)
    state = app_state(request)
    every = state.settings.poll_interval_seconds  # the panel's next look, if a sync runs
    try:
        outcome = await service.start_sync(
            state.store, state.waycore, state.audit, user, connection_id
        )
    except WaycoreError as exc:
        owned = await service.owned_record(state.store, user.tenant.id, connection_id)
        connection = await _current(request, user.tenant.id, connection_id)
        problem = await problem_for(request, exc, "starting a sync")
        context = _sync_context(user, owned, connection, problem=problem, poll_seconds=every)
    else:
        message = SYNC_MESSAGES.get(outcome.result)
        connection = outcome.connection or await _current(request, user.tenant.id, connection_id)
        context = _sync_context(
            user, outcome.owned, connection, message=message, poll_seconds=every
        )
        if outcome.result == "started":  # 202: queued; poll until Waycore reports idle again
            context.update(sync_state="syncing", sync_label_text=SYNC_LABELS["syncing"])
    if not htmx.is_htmx(request):
        if context["sync_message"]:
            flash(request, context["sync_message"])
        return htmx.navigate(request, url_for(request, "connection", connection_id=connection_id))
    return render(request, TEMPLATE, context, block="sync_panel")


async def _replacement(request: Request, user: HostUser, raw: object) -> OwnedConnection | None:
    """The corrected connection that replaces the one being deleted (`replaced_by`, from a
    query or form), if it is the tenant's own; anything else is ignored."""
    if not isinstance(raw, str) or not raw:
        return None
    return await app_state(request).store.owned_connection(user.tenant.id, raw[:64])


async def delete_confirm(request: Request) -> Response:
    """The confirmation step: says what will be removed. Admins only. After a correction
    (`?replaced_by=`), it offers to remove the setup the corrected connection replaces."""
    user = await require_user(request, "delete")
    owned, connection = await owned_connection(request, user)
    replacement = await _replacement(request, user, request.query_params.get("replaced_by"))
    context = {"connection": connection, "owned": owned, "replacement": replacement}
    return render(request, "connections/delete.html", context)


async def delete(request: Request) -> Response:
    """`DELETE /v1/connections/{id}` only with the confirmation field set."""
    user = await require_user(request, "delete")
    owned, connection = await owned_connection(request, user)
    form = await inputs.form(request)
    replacement = await _replacement(request, user, form.raw("replaced_by"))
    context: dict[str, Any] = {"connection": connection, "owned": owned}
    context["replacement"] = replacement
    if form.raw("confirm") != "delete":
        context["error"] = "Tick the box to confirm you want to delete this connection."
        return render(request, "connections/delete.html", context, status=422)
    state = app_state(request)
    try:
        await service.delete_connection(
            state.store, state.waycore, state.events, state.audit, user, connection.id
        )
    except WaycoreError as exc:
        context["problem"] = await problem_for(request, exc, "deleting a connection")
        return render(request, "connections/delete.html", context)
    if replacement is not None:
        flash(request, "The old setup was deleted. Continue with the corrected connection.")
        next_id = replacement.connection_id
        return htmx.navigate(request, url_for(request, "connection", connection_id=next_id))
    flash(request, "The connection and its accounts and transactions were deleted.")
    return htmx.navigate(request, url_for(request, "connections"))


routes = [
    Route("/connections/{connection_id}", connection_page, methods=["GET"], name="connection"),
    Route("/connections/{connection_id}/status", connection_status, methods=["GET"]),
    Route("/connections/{connection_id}/transactions", transactions_page, methods=["GET"]),
    Route("/connections/{connection_id}/sync", sync_panel, methods=["GET"], name="sync_panel"),
    Route("/connections/{connection_id}/sync", sync, methods=["POST"], name="sync"),
    Route("/connections/{connection_id}/delete", delete_confirm, methods=["GET"]),
    Route("/connections/{connection_id}/delete", delete, methods=["POST"], name="delete"),
]
