"""The audit trail page: an admin's list of what the users of their company did (connections
created or returned, bank-issued details sent (their names only), setup completed, syncs asked
for, connections deleted, drafts discarded), newest first, one page at a time.

Admins only (the `audit` permission; anyone else gets the 403 page); only the signed-in user's
tenant's entries are ever read. Paging is by cursor: `?before=<entry id>` is the page just
older than that entry, `?after=<entry id>` the page just newer; a cursor that is not one of the
tenant's entries shows an empty page with a link to the newest.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onboarding import audit
from onboarding.audit import AuditAction
from views import inputs
from views.guards import app_state, require_user
from views.render import render

#: Each action, in words.
ACTION_WORDS = {
    AuditAction.CONNECTION_CREATED: "Started a connection",
    AuditAction.CONNECTION_RETURNED: "Continued an existing connection",
    AuditAction.CREDENTIALS_SUBMITTED: "Sent bank-issued details",
    AuditAction.SETUP_COMPLETED: "Completed setup",
    AuditAction.SYNC_REQUESTED: "Asked for a sync",
    AuditAction.CONNECTION_DELETED: "Deleted a connection",
    AuditAction.DRAFT_DISCARDED: "Discarded a draft",
}

#: The credential fields, in words (an entry names them; their values are never kept).
FIELD_WORDS = {
    "bankUsername": "Bank username",
    "bankCustomerId": "Bank customer ID",
    "password": "Password",
}

#: What came of an action, in words.
OUTCOME_WORDS = {
    "started": "Sync started",
    "busy": "Not started: a sync was running or the connection was not ready",
    "cooling_down": "Not sent: inside Waycore's 45-minute cooldown",
    "completed": "Completed",
    "already completed": "Already completed (another tab or a repeated click)",
}


def _cursors(request: Request) -> tuple[str | None, str | None]:
    """`?before=` / `?after=`: an entry id each, at most one of them (400 otherwise)."""
    fields = inputs.query(request)
    before, after = fields.text("before", 128), fields.text("after", 128)
    if fields.errors or (before and after):
        raise HTTPException(400, "That page of the audit trail does not exist.")
    for cursor in (before, after):
        if cursor and not inputs.is_id(cursor):
            raise HTTPException(400, "That page of the audit trail does not exist.")
    return before or None, after or None


async def audit_trail(request: Request) -> Response:
    user = await require_user(request, "audit")
    before, after = _cursors(request)
    page = await audit.trail_page(
        app_state(request).store, user.tenant.id, before=before, after=after
    )
    context = {
        "page": page,
        "paged": before is not None or after is not None,
        "action_words": ACTION_WORDS,
        "field_words": FIELD_WORDS,
        "outcome_words": OUTCOME_WORDS,
    }
    return render(request, "audit/trail.html", context)


routes = [Route("/audit", audit_trail, methods=["GET"], name="audit")]
