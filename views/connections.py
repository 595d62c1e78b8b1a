"""The connections list: live, needing attention, in setup, and local drafts.

The tenant's Waycore connections (by its mapped entity) are grouped by the journey table; each
row's action goes straight to the screen the connection belongs on. Drafts that have not reached
Waycore yet are listed from the local store. A row that changed since the user last looked is
marked ("Connected while you were away", "Needs attention"); showing the list records what the
user has now seen. Arriving from a step of the flow's "Finish later" (`?from=<step>`) is the
flow's exit, reported to the host.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onboarding import service
from onboarding.journey import Step
from views import funnel
from views.errors import problem_for
from views.guards import app_state, require_user
from views.render import render
from views.urls import url_for

#: The steps a `?from=` may name.
_STEPS = frozenset(step.value for step in Step)


async def list_connections(request: Request) -> Response:
    user = await require_user(request, "read")
    state = app_state(request)
    left = request.query_params.get("from", "")
    if left in _STEPS:
        await funnel.exited(request, user, Step(left), "finished_later")
    shown = drafts_shown(request)
    overview = await service.overview(state.live, state.entities, user, drafts_shown=shown)
    context = {
        "live": overview.live,
        "attention": overview.attention,
        "in_setup": overview.in_setup,
        "drafts": overview.drafts,
        "more_drafts_url": (
            url_for(request, "connections") + f"?drafts={shown + service.DRAFTS_PAGE}#drafts"
            if overview.more_drafts
            else None
        ),
        "owned": overview.owned,
        "marks": overview.marks,
        "problem": await problem_for(request, overview.error, "listing connections")
        if overview.error
        else None,
    }
    return render(request, "connections/list.html", context)


def drafts_shown(request: Request) -> int:
    """How many drafts the list shows (`?drafts=`, a page more each time; a page by default)."""
    raw = request.query_params.get("drafts", "")
    return int(raw) if raw.isdigit() and len(raw) <= 4 else service.DRAFTS_PAGE


routes = [Route("/connections", list_connections, methods=["GET"], name="connections")]
