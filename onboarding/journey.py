"""The journey table: which screen a connection belongs on, decided in one place.

What is known about a connection (none yet; its `kind`; its `status`) maps to the one screen
where it belongs, to the screens it may also be shown on (the repair screens among them), and to
how that screen keeps watching it. While Waycore has not returned the
delegated-user instructions, the delegated-user screen waits for them in place. Every step URL,
the connections list's actions, the poll fragments and the webhook effects ask this table;
entering a step URL of a connection in another state is sent to the screen the table names.
Templates never re-derive it.

| known                                           | belongs on       | may also show  | watched   |
|-------------------------------------------------|------------------|----------------|-----------|
| no Waycore connection yet (no draft, or a draft) | choose bank      |                |           |
| setup, draft                                    | delegated user   | finish setup   | details*  |
| setup, pendingActivation (or active, not ready) | activation       |                | every 5 s |
| setup, reauthRequired                           | activation       | reauth         | backoff   |
| setup, errored                                  | activation       |                | backoff   |
| setup, invalidConfig                            | activation       | correct portal | backoff   |
| setup, paused / revoked                         | connection page  |                |           |
| ready, active                                   | connection page  |                |           |
| ready, reauthRequired                           | connection page  | reauth         | backoff   |
| ready, errored                                  | connection page  |                | backoff   |
| ready, invalidConfig                            | connection page  | correct portal | backoff   |
| ready, any other status                         | connection page  |                |           |
| any status this app does not know               | connection page  |                |           |

(*) the delegated-user screen polls only until Waycore has returned the delegated-user details.
"Backoff": a state someone must act on, or that Waycore retries (errored), is read again at
growing intervals (`watch_delay`), so the page changes by itself when Waycore recovers.
"""

from __future__ import annotations

from enum import StrEnum

from waycore.models import Connection


class Step(StrEnum):
    """The screens of the journey (the route names of their pages)."""

    CHOOSE_BANK = "choose_bank"
    DELEGATED_USER = "delegated_user"
    FINISH_SETUP = "finish_setup"
    ACTIVATION = "activation"
    CONNECTION = "connection"
    #: Repair screens, shown beside a connection's own screen in the states they repair.
    REAUTH = "reauth"
    CORRECT_PORTAL = "correct_portal"


#: Statuses after which waiting changes nothing: shown on the connection page, polling stops.
TERMINAL = frozenset({"paused", "revoked"})
#: Statuses the customer or support can fix; setup-stage ones stay on the activation screen.
RECOVERABLE = frozenset({"reauthRequired", "errored", "invalidConfig"})
#: The repair screens and the status each repairs (of either kind).
_REPAIRS: dict[Step, str] = {Step.REAUTH: "reauthRequired", Step.CORRECT_PORTAL: "invalidConfig"}
#: The longest pause between two reads of a connection in a recoverable state.
MAX_WATCH_SECONDS = 300

_SETUP_STEPS: dict[str, Step] = {
    "draft": Step.DELEGATED_USER,
    "pendingActivation": Step.ACTIVATION,
    # A setup record reported active is still waiting for `kind="ready"`.
    "active": Step.ACTIVATION,
    "reauthRequired": Step.ACTIVATION,
    "errored": Step.ACTIVATION,
    "invalidConfig": Step.ACTIVATION,
    "paused": Step.CONNECTION,
    "revoked": Step.CONNECTION,
}


def step_for(connection: Connection | None) -> Step:
    """The one screen where `connection` (None: no Waycore connection yet) belongs."""
    if connection is None:
        return Step.CHOOSE_BANK
    if connection.kind != "setup":
        return Step.CONNECTION
    return _SETUP_STEPS.get(connection.status, Step.CONNECTION)


def may_show(step: Step, connection: Connection | None) -> bool:
    """Whether `step` may be shown for `connection`: its own step; finish setup while the
    delegated user is being created (the customer moves between those two without a Waycore
    call); or the repair screen of the state it is in."""
    home = step_for(connection)
    if step is home or (step is Step.FINISH_SETUP and home is Step.DELEGATED_USER):
        return True
    return connection is not None and _REPAIRS.get(step) == connection.status


def repair_for(connection: Connection) -> Step | None:
    """The repair screen of the state `connection` is in, if it has one."""
    return next((step for step, status in _REPAIRS.items() if status == connection.status), None)


def is_waiting(connection: Connection) -> bool:
    """Still activating: the activation screen keeps checking."""
    return step_for(connection) is Step.ACTIVATION and connection.status not in RECOVERABLE


def is_watched(connection: Connection) -> bool:
    """In a recoverable state: its screen reads it again with backoff (`watch_delay`)."""
    return connection.status in RECOVERABLE


def watch_delay(poll_seconds: int, attempt: int) -> int:
    """Seconds before read number `attempt` (0-based) of a connection in a recoverable state:
    twice the poll interval, doubling each time, at most `MAX_WATCH_SECONDS`."""
    delay: int = poll_seconds * 2 ** (min(attempt, 16) + 1)
    return min(MAX_WATCH_SECONDS, delay)
