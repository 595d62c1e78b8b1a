"""Setting up a Waycore connection: delegated user, finish setup, activation.

These screens are keyed by the Waycore connection id, the resume key once `POST /v1/connections`
has answered. Each opens by proving the tenant owns the connection (before any Waycore call) and
asking the journey table whether this screen may show it; otherwise the browser is sent to the
screen it belongs on.

The activation screen says the state it shows in its title, heading and lede, and keeps reading
the connection: every poll interval while it activates, with backoff in a recoverable state. A
read that finds the status changed reloads the screen (or goes where the journey table says), so
the page changes by itself when Waycore recovers.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onboarding import service
from onboarding.journey import Step, is_waiting, step_for
from onboarding.live import Reading
from store import OwnedConnection
from views import funnel, htmx, inputs
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
from views.render import flash, render
from views.status import steps_progress, watch_attempt, watch_context
from views.urls import step_url
from waycore.errors import WaycoreError
from waycore.models import Connection

PASSWORD_AGAIN = "For your security, enter the password again."


async def delegated_user(request: Request) -> Response:
    """The delegated-user details from `connection.setup.instructions`, and the guide link. While
    Waycore is still preparing the details, that block polls for them."""
    user = await require_user(request, "read")
    owned, connection = await owned_connection(request, user)
    ensure_step(request, Step.DELEGATED_USER, connection)
    context = {
        "steps": steps_progress(Step.DELEGATED_USER),
        "connection": connection,
        "owned": owned,
        "instructions": connection.setup.instructions if connection.setup else None,
        "guide_url": service.guide_url(
            app_state(request).settings.setup_guides, connection.institution_id
        ),
    }
    polled = htmx.target(request) == "delegated-details"
    if not polled:
        await funnel.step_viewed(request, user, Step.DELEGATED_USER, connection_id=connection.id)
    template = "connections/delegated_user.html"
    return render(request, template, context, block="delegated_details" if polled else None)


def _finish_context(
    owned: OwnedConnection,
    connection: Connection,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problem: Problem | None = None,
    again: bool = False,
) -> dict[str, Any]:
    return {
        "steps": steps_progress(Step.FINISH_SETUP),
        "owned": owned,
        "connection": connection,
        "values": values or {},
        "errors": errors or {},
        "problem": problem,
        "password_again": PASSWORD_AGAIN if again else None,
    }


def read_credentials(fields: inputs.Fields) -> tuple[service.Credentials, dict[str, str]]:
    """The bank-issued details of a form (finish setup, re-authentication), and errors by
    field. A password is never put back into the form, and never marked invalid because another
    field was: it is only ever refused for what it holds itself."""
    limit = service.MAX_CREDENTIAL
    password = fields.text("password", limit + 1, strip=False)
    credentials = service.Credentials(
        bank_username=fields.text("bank_username", limit + 1),
        bank_customer_id=fields.text("bank_customer_id", limit + 1),
        password=password if password.strip() else None,
    )
    errors = dict(fields.errors)
    for name in ("bank_username", "bank_customer_id"):
        if len(getattr(credentials, name)) > limit:
            errors[name] = f"Keep this under {limit} characters."
    if credentials.password is not None and len(credentials.password) > limit:
        errors["password"] = f"Keep the password under {limit} characters."
    return credentials, errors


def form_values(credentials: service.Credentials) -> dict[str, str]:
    """What a credentials form shows again after an error (never the password)."""
    return {
        "bank_username": credentials.bank_username,
        "bank_customer_id": credentials.bank_customer_id,
    }


def password_again(credentials: service.Credentials, errors: dict[str, str]) -> bool:
    """A password typed is never rendered back: if the form comes back, say to enter it again."""
    return credentials.password is not None or "password" in errors


def read_finish_form(fields: inputs.Fields) -> tuple[service.Credentials, dict[str, str]]:
    """(the optional bank-issued details, errors by field)."""
    credentials, errors = read_credentials(fields)
    if fields.raw("confirm_active") != "yes":
        errors["confirm_active"] = "Confirm that the delegated user is active in your bank portal."
    if fields.raw("accept_terms") != "yes":
        errors["accept_terms"] = "Accept the Waycore terms of use to continue."
    return credentials, errors


async def finish_page(request: Request) -> Response:
    user = await require_user(request, "connect")
    owned, connection = await owned_connection(request, user)
    ensure_step(request, Step.FINISH_SETUP, connection)
    await funnel.step_viewed(request, user, Step.FINISH_SETUP, connection_id=connection.id)
    return render(request, "connections/finish.html", _finish_context(owned, connection))


async def finish(request: Request) -> Response:
    """Submit only the populated bank fields, then mark setup complete, then show activation.

    The password goes to Waycore once, in this request, and is never stored, logged, put in a
    cookie or rendered back (a failed submit asks for it again)."""
    user = await require_user(request, "connect")
    owned, connection = await owned_connection(request, user)
    ensure_step(request, Step.FINISH_SETUP, connection)
    credentials, errors = read_finish_form(await inputs.form(request))
    values = form_values(credentials)
    again = password_again(credentials, errors)
    if errors:
        context = _finish_context(owned, connection, values=values, errors=errors, again=again)
        return render(request, "connections/finish.html", context, status=422)
    state = app_state(request)
    try:
        await service.finish_setup(
            state.store, state.waycore, state.audit, user, connection.id, credentials
        )
    except WaycoreError as exc:
        problem = await problem_for(request, exc, "completing setup")
        context = _finish_context(owned, connection, values=values, problem=problem, again=again)
        return render(request, "connections/finish.html", context)
    return htmx.navigate(request, step_url(request, connection, Step.ACTIVATION))


def _activation_context(
    request: Request,
    reading: Reading,
    *,
    first: bool,
    attempt: int = 0,
    held: bool = False,
) -> dict[str, Any]:
    settings = app_state(request).settings
    watch = watch_context(
        settings.poll_interval_seconds,
        reading.connection,
        attempt,
        first=first,
        version=reading.version,
        long_poll=settings.long_poll_seconds > 0,
        held=held,
        check_after=reading.check_after,
    )
    return {
        "steps": steps_progress(Step.ACTIVATION),
        "owned": reading.owned,
        "connection": reading.connection,
        **watch,
    }


async def activation(request: Request) -> Response:
    user = await require_user(request, "read")
    reading = await read_connection(request, user)
    connection = reading.connection
    ensure_step(request, Step.ACTIVATION, connection)
    await mark_seen(request, user, connection)
    status = connection.status
    await funnel.step_viewed(
        request, user, Step.ACTIVATION, connection_id=connection.id, status=status
    )
    context = _activation_context(request, reading, first=True)
    return render(request, "connections/activation.html", context)


async def activation_status(request: Request) -> Response:
    """The polled fragment: still waiting or still recoverable (reads again, with backoff when
    recoverable); changed since the page showed it (`?seen=`: the whole screen again, since its
    heading names the state); or elsewhere by the journey table (ready: the connection page,
    with the news)."""
    user = await require_user(request, "read")
    state = app_state(request)
    held = await hold_for_change(request, user)
    watched = await service.watch(
        state.live,
        state.events,
        user.tenant.id,
        request.path_params["connection_id"],
        request.query_params.get("seen"),
    )
    connection = watched.connection
    if connection.is_ready:
        flash(request, "Your bank is connected. The first sync has started.")
    home = step_for(connection)
    if not htmx.is_htmx(request) or home is not Step.ACTIVATION or watched.changed:
        return htmx.navigate(
            request, step_url(request, connection), push=home is not Step.ACTIVATION
        )
    attempt = watch_attempt(request.query_params.get("n"))
    context = _activation_context(request, watched.reading, first=False, attempt=attempt, held=held)
    # Still waiting, the region only says so: the same state shows the same region (to each
    # role: `render` adds the viewer's).
    reuse = (
        (connection.id, watched.reading.version, context["watch_query"], context["poll_delay"])
        if is_waiting(connection) and not context["next_check_at"]
        else None
    )
    template = "connections/activation.html"
    return render(request, template, context, block="activation_status", reuse=reuse)


routes = [
    Route("/connections/{connection_id}/delegated-user", delegated_user, methods=["GET"]),
    Route("/connections/{connection_id}/finish", finish_page, methods=["GET"], name="finish_setup"),
    Route("/connections/{connection_id}/finish", finish, methods=["POST"], name="finish"),
    Route("/connections/{connection_id}/activation", activation, methods=["GET"]),
    Route("/connections/{connection_id}/activation/status", activation_status, methods=["GET"]),
]
