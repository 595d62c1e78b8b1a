"""The guide's public status display rules, in one table, and the URL of a connection's step.

Labels are chosen by lifecycle stage (`kind` + `status`), never by wording elsewhere. Each status
also says what the UI does with it: keep polling, offer a fix (recoverable), or stop (terminal),
and what the screen showing it says in its title, heading and lede (`screen_copy`).
Which screen a connection belongs on is `onboarding.journey.step_for` (its URL:
`views.urls.step_url`).
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlencode

from onboarding.journey import (
    RECOVERABLE,
    TERMINAL,
    Step,
    is_waiting,
    is_watched,
    repair_for,
    watch_delay,
)
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


#: The statuses that need someone to act or know: label, tone and what to do. Whether each is
#: recoverable or terminal is the journey table's (`onboarding.journey`).
_PROBLEMS: dict[str, tuple[str, Tone, str]] = {
    "reauthRequired": (
        "Reauthentication required",
        "warning",
        (
            "Your bank needs the delegated user to sign in again. Check in your bank portal "
            "that the delegated user is still active and that its sign-in verification still "
            "goes to the phone number or email Waycore gave it. If your bank issued new sign-in "
            "details, send them; otherwise contact support so Waycore can re-authenticate it."
        ),
    ),
    "errored": (
        "Error",
        "danger",
        (
            "Waycore hit a problem with this connection and keeps retrying automatically; this "
            "page updates by itself when it recovers. If it does not clear within a few hours, "
            "contact support with the reference below."
        ),
    ),
    "invalidConfig": (
        "Needs correction",
        "warning",
        (
            "Waycore could not use the bank portal URL it was given. Review it (it must be the "
            "page where you sign in to your bank) and start a corrected connection, or contact "
            "support."
        ),
    ),
    "paused": (
        "Paused",
        "neutral",
        (
            "Waycore has paused this connection, usually for bank maintenance. There is nothing "
            "to do on your side; contact support if it stays paused."
        ),
    ),
    "revoked": (
        "Revoked",
        "danger",
        (
            "Access to this bank was removed and it no longer syncs. To connect this bank again, "
            "start a new connection."
        ),
    ),
}

_BY_STATUS: dict[str, StatusView] = {
    status: StatusView(
        label,
        tone,
        recoverable=status in RECOVERABLE,
        terminal=status in TERMINAL,
        guidance=guidance,
    )
    for status, (label, tone, guidance) in _PROBLEMS.items()
}

SETUP_IN_PROGRESS = StatusView("Setup in progress", "progress", pending=True)
ACTIVATING = StatusView("Activating", "progress", pending=True)
CONNECTED = StatusView("Connected", "success")

SYNC_LABELS = {"idle": "Not currently syncing", "syncing": "Syncing now"}


@dataclass(frozen=True)
class ScreenCopy:
    """What a connection's screen says about its state: tab title, `<h1>` and lede."""

    title: str
    heading: str
    lede: str


ACTIVATING_LEDE = "Waycore is finalizing activation and will start the first sync automatically."

#: status -> (title, heading with {bank}, lede); the state is named in each.
_COPY: dict[str, tuple[str, str, str]] = {
    "reauthRequired": (
        "Reauthentication required",
        "Reauthentication required for {bank}",
        "Your bank asked Waycore\u2019s delegated user to sign in again, so this connection is "
        "paused until it can.",
    ),
    "invalidConfig": (
        "Needs correction",
        "Your connection to {bank} needs correction",
        "Waycore could not use the bank portal URL it was given, so activation cannot finish.",
    ),
    "paused": (
        "Paused",
        "Your connection to {bank} is paused",
        "Waycore has paused this connection; it is not syncing for now.",
    ),
    "revoked": (
        "Revoked",
        "Access to {bank} was revoked",
        "This connection no longer has access to your bank and will not sync again.",
    ),
}


def screen_copy(connection: Connection, owned: OwnedConnection | None = None) -> ScreenCopy:
    """Title, heading and lede of the screen showing `connection` in its current state."""
    bank = bank_name(connection, owned)
    if connection.status == "errored":
        if connection.kind == "setup":
            return ScreenCopy(
                "Activation error",
                f"Activation of your connection to {bank} hit an error",
                "Waycore ran into a problem while activating this connection and is retrying "
                "automatically.",
            )
        return ScreenCopy(
            f"Error: {bank}",
            f"Your connection to {bank} has an error",
            "Waycore ran into a problem with this connection and is retrying automatically.",
        )
    if connection.status in _COPY:
        title, heading, lede = _COPY[connection.status]
        title = title if connection.kind == "setup" else f"{title}: {bank}"
        return ScreenCopy(title, heading.format(bank=bank), lede)
    if connection.kind == "ready" and connection.status == "active":
        return ScreenCopy(bank, bank, "")
    if connection.status in ("pendingActivation", "active"):
        return ScreenCopy(
            "Activating your connection", f"Activating your connection to {bank}", ACTIVATING_LEDE
        )
    view = status_view(connection)
    return ScreenCopy(f"{view.label}: {bank}", f"{bank}: {view.label}", "")


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


@functools.cache
def steps_progress(current: Step) -> tuple[Mapping[str, str], ...]:
    """The progress indicator's items: each step's label and whether it is done, current or
    still to do (made once per step: every poll of a wizard screen shows them)."""
    index = [step for step, _ in PROGRESS].index(current)
    return tuple(
        MappingProxyType(
            {"label": label, "state": "done" if i < index else "current" if i == index else "todo"}
        )
        for i, (_, label) in enumerate(PROGRESS)
    )


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


#: The action that opens each repair screen (the journey table says which state has one).
REPAIR_LABELS = {
    Step.REAUTH: "Send new sign-in details",
    Step.CORRECT_PORTAL: "Review and correct the portal URL",
}


def repair_label(connection: Connection) -> tuple[Step, str] | None:
    """The repair screen for `connection`'s state and the label of the action opening it."""
    step = repair_for(connection)
    return (step, REPAIR_LABELS[step]) if step else None


#: Seconds before the next read when the answer was held until now (the server already waited).
AFTER_HOLD_SECONDS = 0.2


def watch_context(
    poll_seconds: int,
    connection: Connection,
    attempt: int = 0,
    *,
    first: bool = False,
    version: int | None = None,
    long_poll: bool = False,
    held: bool = False,
    check_after: float | None = None,
) -> dict[str, Any]:
    """How a connection's screen keeps reading it: `poll_delay` seconds before the next read
    (None: it does not), and `watch_query`, the query the read sends (the status shown, which
    tells the reader whether it changed, for backoff the attempt number, and with long-poll the
    state's version, for the server to hold the read until it moves).

    Still activating: every poll interval (the first one jittered, so many waiting pages do not
    poll in lockstep after a restart), or again at once after a held read. A recoverable state:
    backoff (`journey.watch_delay`). Either way not before a `Retry-After` Waycore gave
    (`check_after`, shown on the page as `next_check_at`)."""
    delay: float
    if is_waiting(connection):
        if held:
            delay = AFTER_HOLD_SECONDS
        elif first:
            delay = round(random.uniform(poll_seconds * 0.6, poll_seconds), 1)
        else:
            delay = poll_seconds
        query: tuple[tuple[str, str], ...] = (("seen", connection.status),)
        if long_poll and version is not None:
            query += (("v", str(version)), ("wait", "1"))
    elif is_watched(connection):
        delay = watch_delay(poll_seconds, attempt)
        query = (("seen", connection.status), ("n", str(attempt + 1)))
    else:
        return {"poll_delay": None, "watch_delay": None, "watch_query": "", "next_check_at": None}
    if check_after is not None:
        delay = max(delay, round(check_after - time.time() + 0.5, 1))
    return {
        "poll_delay": delay,
        "watch_delay": delay if is_watched(connection) else None,
        "watch_query": _query_string(query),
        "next_check_at": check_after,
    }


@functools.lru_cache(maxsize=4096)
def _query_string(query: tuple[tuple[str, str], ...]) -> str:
    """`?` and the encoded query (the same few are asked for again and again by every poll)."""
    return "?" + urlencode(query)


def version_param(raw: str | None) -> int | None:
    """The state version a read sent back (None when absent or not a number)."""
    return int(raw) if raw and raw.isdigit() and len(raw) <= 9 else None


def watch_attempt(raw: str | None) -> int:
    """The backoff attempt number a read sent back (0 when absent or not a small number)."""
    return int(raw) if raw and raw.isdigit() and len(raw) <= 2 else 0
