"""The new-connection wizard: connection details, delegated user, finish setup, activation.

Each step is a full page on direct load and a fragment for htmx, and its URL follows the step.
Before Waycore has a connection, progress is a local draft (`/connections/drafts/{id}`); once
`POST /v1/connections` answers, the Waycore connection id is the resume key
(`/connections/{id}/...`). Every id in a URL is checked against the signed-in tenant's own rows
before any Waycore call; an unknown or foreign id is a 404.
"""

from __future__ import annotations

import logging
import random
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from config import DEFAULT_SETUP_GUIDE_URL
from host import HostUser
from store import Draft, OwnedConnection
from views import _deps, htmx
from views._access import navigate, owned_connection, owned_connection_or_retry
from views._entities import EntityUnavailable
from views._errors import Problem, problem_for
from views._render import render
from waycore.errors import BadRequest, Conflict, WaycoreError
from waycore.models import Connection, ConnectionResult, Institution

log = logging.getLogger("app.wizard")

STEPS = (
    ("details", "Connection details"),
    ("delegated", "Delegated user"),
    ("finish", "Finish setup"),
    ("activation", "Activation"),
)
MAX_QUERY = 100
MAX_BANK_NAME = 120
MAX_URL = 2048
MAX_CREDENTIAL = 256


def _text(form: FormData, name: str, limit: int) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def validate_portal_url(raw: str) -> tuple[str | None, str | None]:
    """(url, None) for a valid HTTPS portal URL, kept exactly as typed (surrounding whitespace
    aside); (None, message) otherwise."""
    url = raw.strip()
    if not url:
        return None, "Enter the web address of your bank\u2019s online banking sign-in page."
    if len(url) > MAX_URL:
        return None, "That address is too long to be a bank portal URL."
    if any(char.isspace() for char in url):
        return None, "The portal URL must not contain spaces."
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        _ = parts.port
    except ValueError:
        return None, "That is not a valid web address."
    if parts.scheme.lower() != "https":
        if parts.scheme.lower() == "http":
            return None, "The portal URL must use HTTPS: it should start with https://"
        return None, "Enter the full address, starting with https://"
    if not hostname or "." not in hostname.strip("."):
        return (
            None,
            "The portal URL must include your bank\u2019s domain, e.g. https://bank.example.com/login",
        )
    if parts.username is not None or parts.password is not None:
        return None, "The portal URL must not contain a username or password."
    return url, None


def _steps(current: str) -> list[dict[str, Any]]:
    index = [key for key, _ in STEPS].index(current)
    return [
        {
            "key": key,
            "label": label,
            "state": "done" if i < index else "current" if i == index else "todo",
        }
        for i, (key, label) in enumerate(STEPS)
    ]


async def _own_draft(request: Request, user: HostUser, draft_id: str) -> Draft:
    draft = await _deps.store(request).get_draft(user.tenant.id, draft_id)
    if draft is None:
        raise HTTPException(404)
    return draft


# ---------------------------------------------------------------------------- connection details


def _details_context(
    *,
    q: str = "",
    draft: Draft | None = None,
    institution: Institution | None = None,
    results: list[Institution] | None = None,
    unlisted: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problem: Problem | None = None,
    suggestions: list[Institution] | None = None,
    portal_url: str | None = None,
) -> dict[str, Any]:
    return {
        "steps": _steps("details"),
        "q": q,
        "draft": draft,
        "institution": institution,
        "results": results,
        "unlisted": unlisted or {},
        "unlisted_open": bool(unlisted or suggestions)
        or (draft is not None and not draft.institution_id),
        "errors": errors or {},
        "problem": problem,
        "suggestions": suggestions or [],
        "portal_url": portal_url or (draft.portal_url if draft else None),
    }


async def new_connection(request: Request) -> Response:
    """Connection details with no draft yet; `?q=` runs the search without JavaScript."""
    user = await _deps.require_user(request, "connect")
    await _deps.entities(request).prefetch(user.tenant)
    q = request.query_params.get("q", "").strip()[:MAX_QUERY]
    results: list[Institution] | None = None
    problem = None
    if q:
        try:
            results = await _deps.waycore(request).search_institutions(q)
        except WaycoreError as exc:
            problem = problem_for(exc, "searching institutions")
    return render(
        request, "connections/details.html", _details_context(q=q, results=results, problem=problem)
    )


async def search_institutions(request: Request) -> Response:
    """Search as you type: the suggestions list only (debounced by htmx on the input)."""
    user = await _deps.require_user(request, "connect")
    q = request.query_params.get("q", "").strip()[:MAX_QUERY]
    draft_id = request.query_params.get("draft_id", "")[:64]
    draft = await _own_draft(request, user, draft_id) if draft_id else None
    if not htmx.is_htmx(request):
        return RedirectResponse("/connections/new?" + urlencode({"q": q}), status_code=303)
    results: list[Institution] | None = None
    problem = None
    if len(q) >= 2:
        try:
            results = await _deps.waycore(request).search_institutions(q)
        except WaycoreError as exc:
            problem = problem_for(exc, "searching institutions")
    context = _details_context(q=q, draft=draft, results=results, problem=problem)
    return render(request, "connections/details.html", context, block="institution_results")


async def select_institution(request: Request) -> Response:
    """The customer explicitly picked a suggestion: start a local draft with it."""
    user = await _deps.require_user(request, "connect")
    form = await request.form()
    institution_id = _text(form, "institution_id", 200)
    q = _text(form, "q", MAX_QUERY)
    if not institution_id:
        return render(
            request,
            "connections/details.html",
            _details_context(q=q, errors={"search": "Choose your bank from the list."}),
            status=422,
        )
    draft_id = _text(form, "draft_id", 64)
    draft = await _own_draft(request, user, draft_id) if draft_id else None
    try:
        institution = await _deps.waycore(request).get_institution(institution_id)
    except ValueError:  # not an id any catalog entry can have (e.g. "a/b")
        context = _details_context(q=q, errors={"search": "Choose your bank from the list."})
        return render(request, "connections/details.html", context, status=422)
    except WaycoreError as exc:
        problem = problem_for(exc, "reading the chosen institution")
        return render(request, "connections/details.html", _details_context(q=q, problem=problem))
    chosen = {
        "institution_id": institution.institution_id,
        "institution_name": institution.name,
        "portal_url": institution.canonical_portal_url,
    }
    store = _deps.store(request)
    if draft is not None and not draft.connection_id:
        # Another bank for the same draft: one draft, not a trail of abandoned ones.
        await store.update_draft(
            user.tenant.id, draft.id, requested_institution_name=None, **chosen
        )
    else:
        draft = await store.create_draft(user.tenant.id, user.id, **chosen)
    suffix = "?" + urlencode({"q": q}) if q else ""
    return navigate(request, f"/connections/drafts/{draft.id}{suffix}")


async def draft_page(request: Request) -> Response:
    """Draft resume: connection details as the draft left them."""
    user = await _deps.require_user(request, "connect")
    draft = await _own_draft(request, user, request.path_params["draft_id"])
    if draft.connection_id:
        return navigate(request, f"/connections/{draft.connection_id}")
    await _deps.entities(request).prefetch(user.tenant)
    q = request.query_params.get("q", "").strip()[:MAX_QUERY]
    institution = None
    results: list[Institution] | None = None
    problem = None
    try:
        if request.query_params.get("change"):  # choosing another bank for this same draft
            results = await _deps.waycore(request).search_institutions(q) if q else None
        elif draft.institution_id:
            institution = await _deps.waycore(request).get_institution(draft.institution_id)
    except WaycoreError as exc:
        problem = problem_for(exc, "reading institutions for a draft")
    context = _details_context(
        q=q,
        draft=draft,
        institution=institution,
        results=results,
        unlisted=_unlisted_values(draft),
        problem=problem,
    )
    return render(request, "connections/details.html", context)


async def discard_draft(request: Request) -> Response:
    """Cancel before Waycore has a connection: clear the local draft only, no Waycore call."""
    user = await _deps.require_user(request, "connect")
    draft = await _own_draft(request, user, request.path_params["draft_id"])
    if draft.connection_id:
        # After a connection exists, cancelling leaves the setup resumable.
        return navigate(request, "/connections")
    await _deps.store(request).delete_draft(user.tenant.id, draft.id)
    request.session["flash"] = "Draft discarded. Nothing was sent to your bank or to Waycore."
    return navigate(request, "/connections")


async def _matching_institutions(request: Request, portal_url: str) -> list[Institution]:
    """Supported institutions whose login portal is on the host the customer typed: they must
    select that institution instead. Only the portal's host is searched for; the bank name the
    customer typed stays in this app (it is never sent to Waycore, not even as a search)."""
    host = (urlsplit(portal_url).hostname or "").lower()
    found: list[Institution] = []
    for candidate in await _deps.waycore(request).search_institutions(host, limit=20):
        domains = {(urlsplit(u).hostname or "").lower() for u in candidate.portal_urls}
        if host in domains:
            found.append(candidate)
    return found


def _unlisted_values(draft: Draft | None) -> dict[str, str] | None:
    """What the unlisted-bank form showed, to render it again."""
    if draft is None or draft.institution_id:
        return None
    return {
        "bank_name": draft.requested_institution_name or "",
        "portal_url": draft.portal_url or "",
    }


async def _listed_choice(
    request: Request, user: HostUser, form: FormData, draft: Draft | None
) -> tuple[Draft, Institution, str | None] | Response:
    """The draft's institution and the portal to send with it (only when it has several)."""
    if draft is None or not draft.institution_id:
        context = _details_context(errors={"search": "Search for your bank and choose it."})
        return render(request, "connections/details.html", context, status=422)
    try:
        institution = await _deps.waycore(request).get_institution(draft.institution_id)
    except WaycoreError as exc:
        problem = problem_for(exc, "reading the draft's institution")
        return render(
            request, "connections/details.html", _details_context(draft=draft, problem=problem)
        )
    chosen = _text(form, "portal_url", MAX_URL) or institution.canonical_portal_url
    if institution.portal_urls and chosen not in institution.portal_urls:
        context = _details_context(
            draft=draft,
            institution=institution,
            errors={"portal_url": "Choose one of the sign-in portals listed for this bank."},
        )
        return render(request, "connections/details.html", context, status=422)
    if chosen != draft.portal_url:
        await _deps.store(request).update_draft(user.tenant.id, draft.id, portal_url=chosen)
    return draft, institution, chosen if len(institution.portal_urls) > 1 else None


async def _unlisted_choice(
    request: Request, user: HostUser, form: FormData, draft: Draft | None
) -> tuple[Draft, str] | Response:
    """A valid HTTPS portal URL (exactly as typed) for a bank the catalog does not have."""
    bank_name = _text(form, "bank_name", MAX_BANK_NAME + 1)
    raw_url = form.get("portal_url")
    typed_url = raw_url if isinstance(raw_url, str) else ""
    portal_url, url_error = validate_portal_url(typed_url)
    typed = {"bank_name": bank_name, "portal_url": typed_url}
    errors = {}
    if not bank_name:
        errors["bank_name"] = "Enter your bank\u2019s name so you can recognise it here."
    elif len(bank_name) > MAX_BANK_NAME:
        errors["bank_name"] = f"Keep the bank name under {MAX_BANK_NAME} characters."
    if url_error:
        errors["portal_url"] = url_error
    if errors or portal_url is None:
        context = _details_context(draft=draft, unlisted=typed, errors=errors)
        return render(request, "connections/details.html", context, status=422)
    try:
        matches = await _matching_institutions(request, portal_url)
    except WaycoreError as exc:
        problem = problem_for(exc, "checking the catalog for an unlisted bank")
        context = _details_context(draft=draft, unlisted=typed, problem=problem)
        return render(request, "connections/details.html", context)
    if matches:
        context = _details_context(
            draft=draft,
            unlisted=typed,
            suggestions=matches,
            errors={"portal_url": "This bank is supported. Select it from the list below."},
        )
        return render(request, "connections/details.html", context, status=422)
    store = _deps.store(request)
    if draft is None:
        draft = await store.create_draft(
            user.tenant.id, user.id, requested_institution_name=bank_name, portal_url=portal_url
        )
    else:
        await store.update_draft(
            user.tenant.id,
            draft.id,
            institution_id=None,
            institution_name=None,
            requested_institution_name=bank_name,
            portal_url=portal_url,
        )
        draft = await _own_draft(request, user, draft.id)
    return draft, portal_url


async def _create_connection(
    request: Request, user: HostUser, institution: Institution | None, portal_url: str | None
) -> ConnectionResult:
    """Create or return the connection for the tenant's entity (resolved here, server-side).

    A mapping to an entity Waycore no longer knows (`invalid_entity`) is dropped and resolved
    again, once."""
    entities = _deps.entities(request)
    institution_id = institution.institution_id if institution else None
    for attempt in (1, 2):
        entity_id = await entities.resolve(user.tenant)
        try:
            return await _deps.waycore(request).create_connection(
                entity_id, institution_id=institution_id, portal_url=portal_url
            )
        except BadRequest as exc:
            if exc.code != "invalid_entity" or attempt == 2:
                raise
            log.warning("entity %s of %s is gone at Waycore; remapping", entity_id, user.tenant.id)
            await entities.forget(user.tenant, entity_id)
    raise AssertionError("unreachable")


async def continue_details(request: Request) -> Response:
    """Continue from connection details: create or return the Waycore connection."""
    user = await _deps.require_user(request, "connect")
    form = await request.form()
    draft_id = _text(form, "draft_id", 64)
    draft = await _own_draft(request, user, draft_id) if draft_id else None
    if draft is not None and draft.connection_id:
        return navigate(request, f"/connections/{draft.connection_id}/delegated-user")
    mode = _text(form, "mode", 16)
    institution: Institution | None = None
    if mode == "listed":
        choice = await _listed_choice(request, user, form, draft)
        if isinstance(choice, Response):
            return choice
        draft, institution, send_portal = choice
    elif mode == "unlisted":
        unlisted = await _unlisted_choice(request, user, form, draft)
        if isinstance(unlisted, Response):
            return unlisted
        draft, send_portal = unlisted
    else:
        context = _details_context(
            draft=draft, errors={"search": "Choose your bank, or enter its portal URL."}
        )
        return render(request, "connections/details.html", context, status=422)

    try:
        result = await _create_connection(request, user, institution, send_portal)
    except EntityUnavailable as exc:
        problem = problem_for(exc.cause, "resolving the customer's Waycore entity")
        context = _details_context(
            draft=draft, institution=institution, unlisted=_unlisted_values(draft), problem=problem
        )
        context["entity_problem"] = True
        return render(request, "connections/details.html", context, status=503)
    except WaycoreError as exc:
        problem = problem_for(exc, "creating the connection")
        context = _details_context(
            draft=draft, institution=institution, unlisted=_unlisted_values(draft), problem=problem
        )
        return render(request, "connections/details.html", context)
    return await _connected(request, user, draft, institution, result)


async def _connected(
    request: Request,
    user: HostUser,
    draft: Draft,
    institution: Institution | None,
    result: ConnectionResult,
) -> Response:
    """Record the new (or returned) connection as the tenant's and the draft's resume key."""
    store = _deps.store(request)
    connection = result.connection
    await store.record_connection(
        user.tenant.id,
        connection.id,
        institution_name=connection.institution_name or (institution.name if institution else None),
        requested_institution_name=draft.requested_institution_name,
    )
    await store.update_draft(user.tenant.id, draft.id, connection_id=connection.id)
    log.info(
        "connection %s %s for tenant %s",
        connection.id,
        "created" if result.created else "returned (already existed)",
        user.tenant.id,
    )
    if connection.is_ready:
        await store.delete_drafts_for_connection(user.tenant.id, connection.id)
        return navigate(request, f"/connections/{connection.id}")
    if not result.created:
        request.session["flash"] = (
            "You already had a connection to this bank in progress; it has been resumed."
        )
    if connection.status != "draft":
        return navigate(request, f"/connections/{connection.id}")
    return navigate(request, f"/connections/{connection.id}/delegated-user")


# ---------------------------------------------------------------------------- delegated user


def guide_url(request: Request, institution_id: str | None) -> str:
    """The exact guide Waycore supplied for this institution, else the general setup page."""
    guides = _deps.settings(request).setup_guides
    if institution_id and institution_id in guides:
        return guides[institution_id]
    return DEFAULT_SETUP_GUIDE_URL


async def delegated_user(request: Request) -> Response:
    user = await _deps.require_user(request, "read")
    found = await owned_connection_or_retry(request, user, "delegated-details")
    if isinstance(found, Response):
        return found
    owned, connection = found
    if connection.kind != "setup":
        return navigate(request, f"/connections/{connection.id}")
    context = {
        "steps": _steps("delegated"),
        "connection": connection,
        "owned": owned,
        "instructions": connection.setup.instructions if connection.setup else None,
        "guide_url": guide_url(request, connection.institution_id),
        "flash": request.session.pop("flash", None),
    }
    return render(request, "connections/delegated_user.html", context)


# ---------------------------------------------------------------------------- finish setup


def _finish_context(
    owned: OwnedConnection,
    connection: Connection,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problem: Problem | None = None,
) -> dict[str, Any]:
    return {
        "steps": _steps("finish"),
        "owned": owned,
        "connection": connection,
        "values": values or {},
        "errors": errors or {},
        "problem": problem,
    }


def _read_finish_form(form: FormData) -> tuple[dict[str, str], str | None, dict[str, str]]:
    """(non-secret values to re-render, the password or None, errors by field)."""
    values = {
        "bank_username": _text(form, "bank_username", MAX_CREDENTIAL + 1),
        "bank_customer_id": _text(form, "bank_customer_id", MAX_CREDENTIAL + 1),
    }
    raw_password = form.get("password")
    password = raw_password if isinstance(raw_password, str) and raw_password.strip() else None
    errors = {
        name: f"Keep this under {MAX_CREDENTIAL} characters."
        for name, value in values.items()
        if len(value) > MAX_CREDENTIAL
    }
    if password is not None and len(password) > MAX_CREDENTIAL:
        errors["password"] = f"Keep the password under {MAX_CREDENTIAL} characters."
    if form.get("confirm_active") != "yes":
        errors["confirm_active"] = "Confirm that the delegated user is active in your bank portal."
    if form.get("accept_terms") != "yes":
        errors["accept_terms"] = "Accept the Waycore terms of use to continue."
    if errors and password is not None:
        # Never rendered back: ask for it again.
        errors.setdefault("password", "For your security, enter the password again.")
    return values, password, errors


async def finish_page(request: Request) -> Response:
    user = await _deps.require_user(request, "connect")
    owned, connection = await owned_connection(request, user)
    if connection.kind != "setup":
        return navigate(request, f"/connections/{connection.id}")
    if connection.status != "draft":
        return navigate(request, f"/connections/{connection.id}/activation")
    return render(request, "connections/finish.html", _finish_context(owned, connection))


async def finish(request: Request) -> Response:
    """Submit only the populated bank fields, then mark setup complete, then show activation.

    The password goes to Waycore once, in this request, and is never stored, logged, put in a
    cookie or rendered back (a failed submit asks for it again)."""
    user = await _deps.require_user(request, "connect")
    owned, connection = await owned_connection(request, user)
    if connection.kind != "setup" or connection.status != "draft":
        return navigate(request, f"/connections/{connection.id}/activation")
    values, password, errors = _read_finish_form(await request.form())
    if errors:
        context = _finish_context(owned, connection, values=values, errors=errors)
        return render(request, "connections/finish.html", context, status=422)

    client = _deps.waycore(request)
    try:
        if any(values.values()) or password is not None:
            await client.update_credentials(
                connection.id,
                bank_username=values["bank_username"] or None,
                bank_customer_id=values["bank_customer_id"] or None,
                password=password,
            )
        await client.complete_setup(connection.id)
    except WaycoreError as exc:
        if isinstance(exc, Conflict) and await _setup_completed(request, connection.id):
            # A double submit, or another tab finished first: setup is complete, go on.
            return navigate(request, f"/connections/{connection.id}/activation")
        problem = problem_for(exc, "completing setup")
        again = {"password": "For your security, enter the password again."} if password else {}
        context = _finish_context(owned, connection, values=values, errors=again, problem=problem)
        return render(request, "connections/finish.html", context)
    return navigate(request, f"/connections/{connection.id}/activation")


async def _setup_completed(request: Request, connection_id: str) -> bool:
    """After a 409: has setup completion already happened (the connection left `draft`)?"""
    try:
        current = await _deps.waycore(request).get_connection(connection_id)
    except WaycoreError:
        return False
    return current.status != "draft"


# ---------------------------------------------------------------------------- activation


def _activation_context(
    request: Request, owned: OwnedConnection, connection: Connection, *, first: bool
) -> dict[str, Any]:
    poll = _deps.settings(request).poll_interval_seconds
    # The first poll is jittered so many waiting pages do not poll in lockstep after a restart.
    delay = round(random.uniform(poll * 0.6, poll), 1) if first else poll
    return {
        "steps": _steps("activation"),
        "owned": owned,
        "connection": connection,
        "poll_delay": delay,
    }


async def activation(request: Request) -> Response:
    user = await _deps.require_user(request, "read")
    owned, connection = await owned_connection(request, user)
    if connection.is_ready:
        await _deps.store(request).delete_drafts_for_connection(user.tenant.id, connection.id)
        return navigate(request, f"/connections/{connection.id}")
    if connection.kind == "setup" and connection.status == "draft":
        return navigate(request, f"/connections/{connection.id}/finish")  # setup not complete
    context = _activation_context(request, owned, connection, first=True)
    return render(request, "connections/activation.html", context)


async def activation_status(request: Request) -> Response:
    """The polled fragment: waiting (polls again), recoverable or terminal (stops), or ready
    (clears the draft and moves to the connection page)."""
    user = await _deps.require_user(request, "read")
    found = await owned_connection_or_retry(request, user, "activation-status")
    if isinstance(found, Response):
        return found
    owned, connection = found
    if connection.is_ready:
        await _deps.store(request).delete_drafts_for_connection(user.tenant.id, connection.id)
        request.session["flash"] = "Your bank is connected. The first sync has started."
        return navigate(request, f"/connections/{connection.id}")
    if not htmx.is_htmx(request) or connection.status == "draft":
        return navigate(request, f"/connections/{connection.id}/activation")
    context = _activation_context(request, owned, connection, first=False)
    return render(request, "connections/activation.html", context, block="activation_status")


routes = [
    Route("/connections/new", new_connection, methods=["GET"]),
    Route("/connections/institutions", search_institutions, methods=["GET"]),
    Route("/connections/drafts", select_institution, methods=["POST"]),
    Route("/connections/drafts/{draft_id}", draft_page, methods=["GET"]),
    Route("/connections/drafts/{draft_id}/discard", discard_draft, methods=["POST"]),
    Route("/connections/continue", continue_details, methods=["POST"]),
    Route("/connections/{connection_id}/delegated-user", delegated_user, methods=["GET"]),
    Route("/connections/{connection_id}/finish", finish_page, methods=["GET"]),
    Route("/connections/{connection_id}/finish", finish, methods=["POST"]),
    Route("/connections/{connection_id}/activation", activation, methods=["GET"]),
    Route("/connections/{connection_id}/activation/status", activation_status, methods=["GET"]),
]
