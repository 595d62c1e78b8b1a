"""The repair screens, each for the state the journey table gives it (within the public API).

- Re-authentication (`reauthRequired`): what to check in the bank portal, the delegated-user
  details while Waycore still returns them, and the optional bank-issued credentials sent again
  (`PUT /v1/connections/{id}/credentials`); a 409 (Waycore does not take them in this state)
  sends the customer to support.
- Correct the portal URL (`invalidConfig`): the URL that was sent, and a corrected connection for
  the same bank (another of its catalog portals, or a corrected URL for an unlisted bank). The
  old connection stays until the customer deletes it on the confirmation step, offered next.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onboarding import service
from onboarding.entities import EntityUnavailable
from onboarding.errors import InvalidChoice, LooksListed
from onboarding.journey import Step
from views import funnel, htmx, inputs
from views.errors import problem_for
from views.guards import app_state, ensure_step, mark_seen, owned_connection, require_user
from views.render import flash, render
from views.setup import PASSWORD_AGAIN, form_values, password_again, read_credentials
from views.urls import step_url, url_for
from waycore.errors import WaycoreError

REAUTH = "connections/reauth.html"
CORRECT = "connections/correct_portal.html"

REFUSED_TITLE = "New sign-in details not accepted"
REFUSED_MESSAGE = (
    "Waycore did not take new sign-in details for this connection in its current state. "
    "Nothing was changed. Contact support with the reference below so Waycore can "
    "re-authenticate the delegated user."
)


async def reauth_page(request: Request) -> Response:
    user = await require_user(request, "connect")
    owned, connection = await owned_connection(request, user)
    ensure_step(request, Step.REAUTH, connection)
    await mark_seen(request, user, connection)
    await funnel.step_viewed(request, user, Step.REAUTH, connection_id=connection.id)
    context = {"owned": owned, "connection": connection, "values": {}, "errors": {}}
    return render(request, REAUTH, context)


async def reauth(request: Request) -> Response:
    """Send the bank-issued details again (only the populated ones; the password once, never
    stored or rendered back), then back to the connection's screen, which keeps watching it."""
    user = await require_user(request, "connect")
    owned, connection = await owned_connection(request, user)
    ensure_step(request, Step.REAUTH, connection)
    credentials, errors = read_credentials(await inputs.form(request))
    context: dict[str, Any] = {"owned": owned, "connection": connection}
    again = PASSWORD_AGAIN if password_again(credentials, errors) else None
    context.update(values=form_values(credentials), errors={}, password_again=again)
    state = app_state(request)
    try:
        if errors:
            raise InvalidChoice(errors)
        await service.resubmit_credentials(
            state.store, state.waycore, state.audit, user, connection.id, credentials
        )
    except InvalidChoice as exc:
        context["errors"] = exc.errors
        return render(request, REAUTH, context, status=422)
    except service.CredentialsRefused as exc:
        problem = await problem_for(request, exc.cause, "sending credentials again")
        context["problem"] = replace(problem, title=REFUSED_TITLE, message=REFUSED_MESSAGE)
    except WaycoreError as exc:
        context["problem"] = await problem_for(request, exc, "sending credentials again")
    else:
        flash(
            request,
            "Sent to Waycore. It signs in again with the delegated user; this page updates by "
            "itself when the connection recovers.",
        )
        return htmx.navigate(request, step_url(request, connection))
    return render(request, REAUTH, context)


async def _correct_context(request: Request, **context: Any) -> dict[str, Any]:
    connection = context["connection"]
    correction = await service.correction_for(app_state(request).waycore, connection)
    return {"correction": correction, "values": {}, "errors": {}, "suggestions": [], **context}


async def correct_page(request: Request) -> Response:
    user = await require_user(request, "connect")
    owned, connection = await owned_connection(request, user)
    ensure_step(request, Step.CORRECT_PORTAL, connection)
    await mark_seen(request, user, connection)
    await funnel.step_viewed(request, user, Step.CORRECT_PORTAL, connection_id=connection.id)
    context = await _correct_context(request, owned=owned, connection=connection)
    return render(request, CORRECT, context)


async def correct(request: Request) -> Response:
    """Start the corrected connection, then offer to delete the old one (admins; others go on
    to the corrected connection, the old one stays)."""
    user = await require_user(request, "connect")
    owned, connection = await owned_connection(request, user)
    ensure_step(request, Step.CORRECT_PORTAL, connection)
    fields = await inputs.form(request)
    portal_url = fields.text("portal_url", service.MAX_URL + 1)
    state = app_state(request)
    context = await _correct_context(request, owned=owned, connection=connection)
    context["values"] = {"portal_url": portal_url}
    try:
        if fields.errors:
            raise InvalidChoice(dict(fields.errors))
        result = await service.correct_portal(
            state.store,
            state.waycore,
            state.entities,
            state.events,
            state.audit,
            user,
            owned,
            connection,
            portal_url,
        )
    except InvalidChoice as exc:
        context["errors"] = exc.errors
        return render(request, CORRECT, context, status=422)
    except LooksListed as exc:
        message = "This address belongs to a bank Waycore supports. Connect it from the list."
        context.update(errors={"portal_url": message}, suggestions=exc.institutions)
        return render(request, CORRECT, context, status=422)
    except EntityUnavailable as exc:
        context["problem"] = await problem_for(request, exc.cause, "resolving the entity")
        return render(request, CORRECT, context, status=503)
    except WaycoreError as exc:
        context["problem"] = await problem_for(request, exc, "starting a corrected connection")
        return render(request, CORRECT, context)
    new_id = result.connection.id
    if user.can("delete") and new_id != connection.id:
        flash(request, "Your corrected connection is started.")
        url = url_for(request, "delete_confirm", connection_id=connection.id)
        return htmx.navigate(request, url + "?" + urlencode({"replaced_by": new_id}))
    flash(request, "Your corrected connection is started. The old setup is kept.")
    return htmx.navigate(request, step_url(request, result.connection))


routes = [
    Route("/connections/{connection_id}/reauth", reauth_page, methods=["GET"], name="reauth"),
    Route("/connections/{connection_id}/reauth", reauth, methods=["POST"], name="reauth_send"),
    Route(
        "/connections/{connection_id}/correct",
        correct_page,
        methods=["GET"],
        name="correct_portal",
    ),
    Route("/connections/{connection_id}/correct", correct, methods=["POST"], name="correct"),
]
