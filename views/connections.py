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


async def list_connections(request: Request) -> Response:
    user = await require_user(request, "read")
    state = app_state(request)
    left = request.query_params.get("from", "")
    if left in {step.value for step in Step}:
        await funnel.exited(request, user, Step(left), "finished_later")
    overview = await service.overview(state.store, state.waycore, state.entities, user)
    context = {
        "live": overview.live,
        "attention": overview.attention,
        "in_setup": overview.in_setup,
        "drafts": overview.drafts,
        "owned": overview.owned,
        "marks": overview.marks,
        "problem": await problem_for(request, overview.error, "listing connections")
        if overview.error
        else None,
    }
    return render(request, "connections/list.html", context)


routes = [Route("/connections", list_connections, methods=["GET"], name="connections")]
