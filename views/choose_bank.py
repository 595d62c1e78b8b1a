"""Choosing the bank: the wizard's first step, before Waycore has a connection.

Progress here is a local draft (`/connections/drafts/{id}`), scoped by tenant and never holding a
secret. The customer searches the catalog (nothing is ever auto-selected) and explicitly picks a
bank, or enters an unlisted bank's HTTPS portal URL (one on a listed bank's domain is offered
that bank first; the customer chooses). "Continue" creates or returns the Waycore
connection; from then on its id is the resume key and the setup screens (`views.setup`) take
over. Discarding a draft is local only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from host import HostUser
from onboarding import service
from onboarding.entities import EntityUnavailable
from onboarding.errors import InvalidChoice, LooksListed
from onboarding.journey import Step
from store import Draft
from views import funnel, htmx, inputs
from views.errors import Problem, problem_for
from views.guards import app_state, owned_draft, require_user
from views.render import flash, render, render_shared
from views.status import steps_progress
from views.urls import step_url, url_for
from waycore.errors import WaycoreError
from waycore.models import Institution

TEMPLATE = "connections/choose_bank.html"
#: The search suggestions (shared: they show only the query and its matches).
OPTIONS = "connections/_institution_options.html"
MAX_QUERY = 100


@dataclass
class ChooseBank:
    """What the step shows: a search (`q`, `results`), a selected bank (`institution`), the
    unlisted-bank form as typed (`unlisted`), listed banks an entered portal looks like
    (`offer`), field `errors`, and a Waycore `problem`."""

    draft: Draft | None = None
    q: str = ""
    institution: Institution | None = None
    results: list[Institution] | None = None
    unlisted: dict[str, str] | None = None
    offer: LooksListed | None = None
    errors: dict[str, str] = field(default_factory=dict)
    problem: Problem | None = None
    entity_problem: bool = False

    def refused(self, exc: InvalidChoice) -> ChooseBank:
        self.errors = exc.errors
        self.institution = exc.institution or self.institution
        return self

    def context(self) -> dict[str, Any]:
        draft = self.draft
        unlisted = self.unlisted
        if unlisted is None and draft is not None and not draft.institution_id:
            unlisted = {
                "bank_name": draft.requested_institution_name or "",
                "portal_url": draft.portal_url or "",
            }
        return {
            "steps": steps_progress(Step.CHOOSE_BANK),
            "q": self.q,
            "draft": draft,
            "created": bool(draft and draft.connection_id),
            "institution": self.institution,
            "results": self.results,
            "unlisted": unlisted or {},
            "unlisted_open": bool(unlisted or self.offer),
            "errors": self.errors,
            "problem": self.problem,
            "offer": self.offer,
            "portal_url": draft.portal_url if draft else None,
            "entity_problem": self.entity_problem,
        }


def _query(fields: inputs.Fields, page: ChooseBank) -> ChooseBank:
    """The search text of a form or query string (refused: a message under the search box)."""
    page.q = fields.text("q", MAX_QUERY)
    if "q" in fields.errors:
        page.errors["search"] = fields.errors["q"]
    return page


async def _search(request: Request, page: ChooseBank) -> None:
    try:
        page.results = await app_state(request).waycore.search_institutions(page.q)
    except WaycoreError as exc:
        page.problem = await problem_for(request, exc, "searching institutions")


#: What the suggestions show of a match.
_SHOWN = attrgetter("institution_id", "name", "canonical_portal_url")


def _shown(page: ChooseBank) -> tuple[object, ...]:
    """Everything the suggestions show: the query, whether it was searched, each match."""
    return (page.q, page.results is None, *map(_SHOWN, page.results or ()))


def _with_options(request: Request, page: ChooseBank) -> dict[str, Any]:
    """The page's context, with the suggestions rendered once per query and answer (the same
    prefixes are typed by everyone looking for the same bank)."""
    context = page.context()
    if page.results:
        context["options_html"] = render_shared(
            request, OPTIONS, {"results": page.results, "q": page.q}, _shown(page)
        )
    return context


async def choose_bank(request: Request) -> Response:
    """Connection details with no draft yet; `?q=` runs the search without JavaScript."""
    user = await require_user(request, "connect")
    await app_state(request).entities.prefetch(user.tenant)
    page = _query(inputs.query(request), ChooseBank())
    if page.q:
        await _search(request, page)
    await funnel.step_viewed(request, user, Step.CHOOSE_BANK)
    return render(request, TEMPLATE, _with_options(request, page))


async def search_institutions(request: Request) -> Response:
    """Search as you type: the suggestions list only (debounced by htmx on the input)."""
    user = await require_user(request, "connect")
    fields = inputs.query(request)
    page = _query(fields, ChooseBank())
    page.draft = await owned_draft(request, user, fields.id("draft_id"))
    if not htmx.is_htmx(request):
        url = url_for(request, "choose_bank") + ("?" + urlencode({"q": page.q}) if page.q else "")
        return htmx.navigate(request, url)
    if len(page.q) >= 2:
        await _search(request, page)
    # The region shows nothing of the viewer: htmx sends the CSRF token as a header, so the
    # form around the suggestions carries none. Without a draft it is the same for everyone
    # searching the same: rendered once per query and answer, and reused. A draft's search is
    # its own customer's (only the suggestions inside are shared), and a failed one has the
    # problem's own support reference.
    if page.draft or page.problem:
        context = {**_with_options(request, page), "token_in_header": True}
        return render(request, TEMPLATE, context, block="institution_results")
    context = {**page.context(), "token_in_header": True}
    return render(request, TEMPLATE, context, block="institution_results", reuse=_shown(page))


async def select_institution(request: Request) -> Response:
    """The customer explicitly picked a suggestion: start (or update) the local draft with it."""
    user = await require_user(request, "connect")
    fields = await inputs.form(request)
    state = app_state(request)
    page = _query(fields, ChooseBank())
    page.draft = await owned_draft(request, user, fields.id("draft_id"))
    try:
        draft = await service.select_institution(
            state.store, state.waycore, user, page.draft, fields.id("institution_id") or ""
        )
    except InvalidChoice as exc:
        page = ChooseBank(draft=page.draft, q=page.q).refused(exc)
        return render(request, TEMPLATE, page.context(), status=422)
    except WaycoreError as exc:
        page.problem = await problem_for(request, exc, "reading the chosen institution")
        return render(request, TEMPLATE, page.context())
    await funnel.bank_selected(request, user, draft.institution_id, draft.institution_name)
    suffix = "?" + urlencode({"q": page.q}) if page.q else ""
    return htmx.navigate(request, url_for(request, "draft", draft_id=draft.id) + suffix)


async def draft_page(request: Request) -> Response:
    """Draft resume: connection details as the draft left them (`?change=1`: choosing another
    bank for this same draft). Once the draft has become a Waycore connection, this step shows
    what was chosen, with the way on: Back from the next step lands here, not forward again."""
    user = await require_user(request, "connect")
    draft = await owned_draft(request, user, request.path_params["draft_id"])
    assert draft is not None
    fields = inputs.query(request)
    page = _query(fields, ChooseBank(draft=draft))
    if draft.connection_id:
        return render(request, TEMPLATE, page.context())
    state = app_state(request)
    await state.entities.prefetch(user.tenant)
    if fields.raw("change"):
        if page.q:
            await _search(request, page)
    elif draft.institution_id:
        try:
            page.institution = await state.waycore.get_institution(draft.institution_id)
        except WaycoreError as exc:
            page.problem = await problem_for(request, exc, "reading institutions for a draft")
    await funnel.step_viewed(request, user, Step.CHOOSE_BANK, draft_id=draft.id)
    return render(request, TEMPLATE, page.context())


async def discard_draft(request: Request) -> Response:
    """Cancel before Waycore has a connection: clear the local draft only, no Waycore call.
    After a connection exists, cancelling leaves the setup resumable."""
    user = await require_user(request, "connect")
    draft = await owned_draft(request, user, request.path_params["draft_id"])
    assert draft is not None
    state = app_state(request)
    if await service.discard_draft(state.store, state.audit, user, draft):
        flash(request, "Draft discarded. Nothing was sent to your bank or to Waycore.")
        await funnel.exited(request, user, Step.CHOOSE_BANK, "discarded")
    return htmx.navigate(request, url_for(request, "connections"))


async def _choice(
    request: Request, user: HostUser, fields: inputs.Fields, page: ChooseBank
) -> service.BankChoice:
    """The bank the form chose, listed or unlisted (`InvalidChoice` when it cannot go on,
    `LooksListed` to offer a listed bank first). The unlisted form's values are kept on `page`,
    to be shown again as typed."""
    state = app_state(request)
    mode = fields.raw("mode")
    if mode == "listed":
        portal_url = fields.text("portal_url", service.MAX_URL)
        if fields.errors:
            raise InvalidChoice(fields.errors)
        return await service.choose_listed(
            state.store, state.waycore, user.tenant.id, page.draft, portal_url
        )
    if mode == "unlisted":
        page.unlisted = {
            "bank_name": fields.text("bank_name", service.MAX_BANK_NAME + 1),
            "portal_url": fields.text("portal_url", service.MAX_URL + 1, strip=False),
        }
        if fields.errors:  # nothing unreadable is stored or sent on
            raise InvalidChoice(fields.errors)
        return await service.choose_unlisted(
            state.store,
            state.waycore,
            user,
            page.draft,
            **page.unlisted,
            not_listed=fields.raw("not_listed") == "yes",
        )
    raise InvalidChoice({"search": "Choose your bank, or enter its portal URL."})


async def continue_details(request: Request) -> Response:
    """Continue from connection details: create or return the Waycore connection, then go to
    the step it belongs on."""
    user = await require_user(request, "connect")
    fields = await inputs.form(request)
    draft = await owned_draft(request, user, fields.id("draft_id"))
    if draft is not None and draft.connection_id:
        return htmx.navigate(request, _resume_url(request, draft))
    state = app_state(request)
    page, status = ChooseBank(draft=draft), 200
    try:
        choice = await _choice(request, user, fields, page)
        page = ChooseBank(draft=choice.draft, institution=choice.institution)
        if choice.institution is None:
            await funnel.unlisted_bank_entered(request, user, choice.portal_url)
        result = await service.create_connection(
            state.store, state.waycore, state.entities, state.events, state.audit, user, choice
        )
    except InvalidChoice as exc:
        page, status = page.refused(exc), 422
    except LooksListed as exc:
        page.offer = exc
    except EntityUnavailable as exc:
        page.problem = await problem_for(
            request, exc.cause, "resolving the customer's Waycore entity"
        )
        page.entity_problem, status = True, 503
    except WaycoreError as exc:
        page.problem = await problem_for(request, exc, "creating the connection")
    else:
        if not result.created and not result.connection.is_ready:
            flash(
                request,
                "You already had a connection to this bank in progress; it has been resumed.",
            )
        return htmx.navigate(request, step_url(request, result.connection))
    return render(request, TEMPLATE, page.context(), status=status)


def _resume_url(request: Request, draft: Draft) -> str:
    """A draft that has become a Waycore connection resumes there (its step is decided on
    arrival, by the journey table)."""
    return url_for(request, "connection", connection_id=draft.connection_id)


routes = [
    Route("/connections/new", choose_bank, methods=["GET"], name="choose_bank"),
    Route("/connections/institutions", search_institutions, methods=["GET"]),
    Route("/connections/drafts", select_institution, methods=["POST"]),
    Route("/connections/drafts/{draft_id}", draft_page, methods=["GET"], name="draft"),
    Route("/connections/drafts/{draft_id}/discard", discard_draft, methods=["POST"]),
    Route("/connections/continue", continue_details, methods=["POST"]),
]
