"""Flow events for the host (`onboarding.events`, like Plaid Link's `onEvent`), sent by the
screens where they happen: a step shown (as a page or an htmx navigation, never its polls), a
bank picked, an unlisted bank's portal entered, the flow left. (Errors shown are reported by
`views.errors.problem_for`.)"""

from __future__ import annotations

from starlette.requests import Request

from host import HostUser
from onboarding import events as host_events
from onboarding.events import EventType, Value
from onboarding.journey import Step
from views.guards import app_state


async def _emit(request: Request, type: EventType, user: HostUser, **data: Value) -> None:
    await app_state(request).events.emit(host_events.funnel(type, user, data))


async def step_viewed(
    request: Request,
    user: HostUser,
    step: Step,
    *,
    connection_id: str | None = None,
    draft_id: str | None = None,
    status: str | None = None,
) -> None:
    data: dict[str, Value] = {"step": step.value}
    if connection_id:
        data["connectionId"] = connection_id
    if draft_id:
        data["draftId"] = draft_id
    if status:
        data["status"] = status
    await _emit(request, EventType.STEP_VIEWED, user, **data)


async def bank_selected(
    request: Request, user: HostUser, institution_id: str | None, institution_name: str | None
) -> None:
    await _emit(
        request,
        EventType.BANK_SELECTED,
        user,
        institutionId=institution_id,
        institutionName=institution_name,
    )


async def unlisted_bank_entered(request: Request, user: HostUser, portal_url: str | None) -> None:
    """Only the portal's host is reported (a typed URL may carry anything)."""
    host = host_events.portal_host(portal_url)
    await _emit(request, EventType.UNLISTED_BANK_ENTERED, user, portalHost=host)


async def exited(request: Request, user: HostUser, step: Step, reason: str) -> None:
    await _emit(request, EventType.EXITED, user, step=step.value, reason=reason)
