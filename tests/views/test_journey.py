"""The journey table, walked end to end: every status of both kinds, entered by every step URL
(as a plain page load, as an htmx navigation, and as the activation poll), converges on the one
screen where the connection belongs, or stays on the repair screen of its state; the list's
action for it points to its screen, and that screen offers the repair."""

from __future__ import annotations

import json

import pytest

from onboarding.events import ATTENTION_STATUSES
from onboarding.journey import RECOVERABLE, TERMINAL, Step, may_show, step_for
from tests.support import Browser, SandboxHandle, soup, start_listed
from views.status import status_view
from waycore.models import CONNECTION_STATUSES, Connection

#: Written out here, not computed from the app's table, so a change to either shows up.
HOME = {
    ("setup", "draft"): "/delegated-user",
    ("setup", "pendingActivation"): "/activation",
    ("setup", "active"): "/activation",
    ("setup", "reauthRequired"): "/activation",
    ("setup", "errored"): "/activation",
    ("setup", "invalidConfig"): "/activation",
    ("setup", "paused"): "",
    ("setup", "revoked"): "",
    **{("ready", status): "" for status in CONNECTION_STATUSES},
}
ENTRY_URLS = ("", "/delegated-user", "/finish", "/activation", "/reauth", "/correct")
#: The repair screen each status may also show (of either kind).
REPAIRS = {"reauthRequired": "/reauth", "invalidConfig": "/correct"}
#: Statuses whose screen keeps reading the connection with backoff.
WATCHED = {"reauthRequired", "errored", "invalidConfig"}
STATES = sorted(HOME)


def _path(connection_id: str, suffix: str) -> str:
    return f"/connections/{connection_id}{suffix}"


def _follow(browser: Browser, url: str, *, htmx: bool) -> tuple[str, int]:
    """Follow 303s (plain) or `HX-Location`s (htmx) to where the browser ends up."""
    for _ in range(4):
        response = browser.get(url, htmx=htmx)
        if htmx and "hx-location" in response.headers:
            url = json.loads(response.headers["hx-location"])["path"]
        elif not htmx and response.status_code == 303:
            url = response.headers["location"]
        else:
            return url, response.status_code
    raise AssertionError(f"no convergence from {url}")


@pytest.fixture
def state_of(alice: Browser, sandbox: SandboxHandle):  # type: ignore[no-untyped-def]
    def put(kind: str, status: str) -> str:
        connection_id = start_listed(alice, "chase")
        sandbox.set_status(connection_id, status, kind)
        return connection_id

    return put


def test_every_state_of_the_table_is_covered() -> None:
    assert set(HOME) == {(k, s) for k in ("setup", "ready") for s in CONNECTION_STATUSES}


@pytest.mark.parametrize(("kind", "status"), STATES)
def test_every_entry_url_converges_on_the_screen_the_state_belongs_on(
    alice: Browser,
    state_of,
    kind: str,
    status: str,  # type: ignore[no-untyped-def]
) -> None:
    connection_id = state_of(kind, status)
    home = _path(connection_id, HOME[(kind, status)])
    for suffix in ENTRY_URLS:
        entered = _path(connection_id, suffix)
        # Finish setup may show a setup-stage draft (the customer goes back and forth freely);
        # a repair screen shows the state it repairs.
        stays = (kind, status, suffix) == ("setup", "draft", "/finish")
        stays = stays or REPAIRS.get(status) == suffix
        expected = entered if stays else home
        for htmx in (False, True):
            landed, code = _follow(alice, entered, htmx=htmx)
            assert (landed, code) == (expected, 200), (suffix, htmx)


@pytest.mark.parametrize(("kind", "status"), STATES)
def test_the_activation_poll_stays_only_where_activation_is_home(
    alice: Browser,
    state_of,
    kind: str,
    status: str,  # type: ignore[no-untyped-def]
) -> None:
    connection_id = state_of(kind, status)
    response = alice.get(
        _path(connection_id, "/activation/status"), htmx=True, target="activation-status"
    )
    if HOME[(kind, status)] == "/activation":
        assert soup(response).select_one("#activation-status") is not None
        assert "hx-location" not in response.headers
    else:
        location = json.loads(response.headers["hx-location"])
        assert location["path"] == _path(connection_id, HOME[(kind, status)])


@pytest.mark.parametrize(("kind", "status"), STATES)
def test_the_list_action_goes_straight_to_the_home_screen(
    alice: Browser,
    state_of,
    kind: str,
    status: str,  # type: ignore[no-untyped-def]
) -> None:
    connection_id = state_of(kind, status)
    row = soup(alice.get("/connections")).select_one(f"[data-connection-id={connection_id}]")
    assert row.select_one("a.row-action")["href"] == _path(connection_id, HOME[(kind, status)])


@pytest.mark.parametrize(("kind", "status"), STATES)
def test_the_home_screen_offers_the_repair_and_watches_as_the_table_says(
    alice: Browser,
    state_of,
    kind: str,
    status: str,  # type: ignore[no-untyped-def]
) -> None:
    connection_id = state_of(kind, status)
    page = soup(alice.get(_path(connection_id, HOME[(kind, status)])))
    repair = page.select_one("a.repair")
    if status in REPAIRS:
        assert repair["href"] == _path(connection_id, REPAIRS[status])
    else:
        assert repair is None
    watched = page.select_one("[hx-trigger^='load delay']")
    if status in WATCHED:
        assert f"seen={status}" in watched["hx-get"] and "n=1" in watched["hx-get"]
    elif HOME[(kind, status)] != "/activation" and status != "draft":
        assert watched is None or watched["id"] == "sync-panel", watched


@pytest.mark.parametrize(("kind", "status"), STATES)
def test_the_table_agrees_with_the_written_expectation(kind: str, status: str) -> None:
    connection = Connection(id="conn_x", entity_id="e", kind=kind, status=status)
    steps = {
        "/delegated-user": Step.DELEGATED_USER,
        "/activation": Step.ACTIVATION,
        "": Step.CONNECTION,
    }
    assert step_for(connection) is steps[HOME[(kind, status)]]
    assert may_show(Step.FINISH_SETUP, connection) is ((kind, status) == ("setup", "draft"))
    assert may_show(Step.REAUTH, connection) is (status == "reauthRequired")
    assert may_show(Step.CORRECT_PORTAL, connection) is (status == "invalidConfig")
    assert step_for(None) is Step.CHOOSE_BANK


def test_each_status_needing_attention_has_its_own_view() -> None:
    """The status views, the journey's sets and the host events' "needs attention" agree:
    a recoverable or terminal status has its own label and guidance, flagged as such."""
    assert RECOVERABLE == WATCHED and {"paused", "revoked"} == TERMINAL
    assert ATTENTION_STATUSES == WATCHED | TERMINAL
    for status in CONNECTION_STATUSES:
        view = status_view(Connection.from_api({"id": "conn_1", "status": status}))
        assert (view.recoverable, view.terminal) == (status in WATCHED, status in TERMINAL)
        assert bool(view.guidance) == (status in ATTENTION_STATUSES)
