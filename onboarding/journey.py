"""The journey table: which screen a connection belongs on, decided in one place.

What is known about a connection (none yet; its `kind`; its `status`) maps to the one screen
where it belongs, and to the screen it may also be shown on. While Waycore has not returned the
delegated-user instructions, the delegated-user screen waits for them in place. Every step URL,
the connections list's actions, the poll fragments and the webhook effects ask this table;
entering a step URL of a connection in another state is sent to the screen the table names.
Templates never re-derive it.

| known                                           | belongs on       | may also show  |
|-------------------------------------------------|------------------|----------------|
| no Waycore connection yet (no draft, or a draft) | choose bank      |                |
| setup, draft                                    | delegated user   | finish setup   |
| setup, pendingActivation (or active, not ready) | activation       |                |
| setup, reauthRequired / errored / invalidConfig | activation       |                |
| setup, paused / revoked                         | connection page  |                |
| ready, any status                               | connection page  |                |
| any status this app does not know               | connection page  |                |
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


#: Statuses after which waiting changes nothing: shown on the connection page, polling stops.
TERMINAL = frozenset({"paused", "revoked"})
#: Statuses the customer or support can fix; setup-stage ones stay on the activation screen.
RECOVERABLE = frozenset({"reauthRequired", "errored", "invalidConfig"})

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
    """Whether `step` may be shown for `connection`: its own step, or finish setup while the
    delegated user is being created (the customer moves between those two without a Waycore
    call)."""
    home = step_for(connection)
    return step is home or (step is Step.FINISH_SETUP and home is Step.DELEGATED_USER)


def is_waiting(connection: Connection) -> bool:
    """Still activating: the activation screen keeps checking."""
    return step_for(connection) is Step.ACTIVATION and connection.status not in RECOVERABLE
