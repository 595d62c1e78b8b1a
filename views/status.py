"""The guide's public status display rules, in one table, and the URL of a connection's step.

Labels are chosen by lifecycle stage (`kind` + `status`), never by wording elsewhere. Each status
also says what the UI does with it: keep polling, offer a fix (recoverable), or stop (terminal).
Which screen a connection belongs on is `onboarding.journey.step_for` (its URL:
`views.urls.step_url`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from onboarding.journey import Step
from store import OwnedConnection
from views.filters import portal_domain
from waycore.models import Connection

Tone = Literal["progress", "success", "warning", "danger", "neutral"]


@dataclass(frozen=True)
class StatusView:
    label: str
    tone: Tone
    #: Still waiting on setup or activation: the activation step keeps polling.
    pending: bool = False
    #: Something the customer or support can fix; the setup can resume afterwards.
    recoverable: bool = False
    #: Nothing more will happen by waiting; polling stops.
    terminal: bool = False
    #: What the customer should do, in one sentence.
    guidance: str = ""


_BY_STATUS: dict[str, StatusView] = {
    "reauthRequired": StatusView(
        "Reauthentication required",
        "warning",
        recoverable=True,
        guidance=(
            "Your bank needs the delegated user to sign in again. Check in your bank portal "
            "that the delegated user is still active, then contact support so Waycore can "
            "re-authenticate it."
        ),
    ),
    "errored": StatusView(
        "Error",
        "danger",
        recoverable=True,
        guidance=(
            "Waycore hit a problem while connecting and will keep retrying. If this does not "
            "clear within a few hours, contact support with the reference shown."
        ),
    ),
    "invalidConfig": StatusView(
        "Needs correction",
        "warning",
        recoverable=True,
        guidance=(
            "Waycore could not use the details it was given. Review the bank portal URL (it "
            "must be the page where you sign in to your bank), start again with the correct "
            "one, or contact support."
        ),
    ),
    "paused": StatusView(
        "Paused",
        "neutral",
        terminal=True,
        guidance=(
            "Waycore has paused this connection, usually for bank maintenance. There is nothing "
            "to do on your side; contact support if it stays paused."
        ),
    ),
    "revoked": StatusView(
        "Revoked",
        "danger",
        terminal=True,
        guidance=(
            "Access to this bank was removed and it no longer syncs. To connect this bank again, "
            "start a new connection."
        ),
    ),
}

SETUP_IN_PROGRESS = StatusView("Setup in progress", "progress", pending=True)
ACTIVATING = StatusView("Activating", "progress", pending=True)
CONNECTED = StatusView("Connected", "success")

SYNC_LABELS = {"idle": "Not currently syncing", "syncing": "Syncing now"}


def status_view(connection: Connection) -> StatusView:
    """The UI label and behaviour for a connection, by the guide's display rules."""
    if connection.status in _BY_STATUS:
        return _BY_STATUS[connection.status]
    if connection.kind == "ready" and connection.status == "active":
        return CONNECTED
    if connection.status == "pendingActivation":
        return ACTIVATING
    if connection.status == "draft":
        return SETUP_IN_PROGRESS
    return StatusView(connection.status, "neutral")


def sync_label(connection: Connection) -> str | None:
    """`syncStatus` is shown only on `kind="ready"` connections."""
    if connection.kind != "ready" or connection.sync_status is None:
        return None
    return SYNC_LABELS.get(connection.sync_status, connection.sync_status)


#: The wizard's progress indicator, in order.
PROGRESS = (
    (Step.CHOOSE_BANK, "Connection details"),
    (Step.DELEGATED_USER, "Delegated user"),
    (Step.FINISH_SETUP, "Finish setup"),
    (Step.ACTIVATION, "Activation"),
)


def steps_progress(current: Step) -> list[dict[str, str]]:
    """The progress indicator's items: each step's label and whether it is done, current or
    still to do."""
    index = [step for step, _ in PROGRESS].index(current)
    return [
        {"label": label, "state": "done" if i < index else "current" if i == index else "todo"}
        for i, (_, label) in enumerate(PROGRESS)
    ]


def bank_name(connection: Connection, owned: OwnedConnection | None = None) -> str:
    """The name a customer knows a connection by: Waycore's institution name, the name recorded
    here (or typed for an unlisted bank), the portal's domain, else "Your bank"."""
    return (
        connection.institution_name
        or (owned.institution_name if owned else None)
        or (owned.requested_institution_name if owned else None)
        or portal_domain(connection.portal_url)
        or "Your bank"
    )
