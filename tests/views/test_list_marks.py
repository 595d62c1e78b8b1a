"""The connections list marks what changed since each user last looked: "Connected while you
were away" and "Needs attention". A mark shows once: showing the list (or a screen of the
connection) records what the user has now seen, for that user only."""

from __future__ import annotations

from bs4 import Tag

from tests.support import Browser, SandboxHandle, finish, soup, start_listed


def ready_connection(browser: Browser, sandbox: SandboxHandle, institution: str = "chase") -> str:
    connection_id = start_listed(browser, institution)
    finish(browser, connection_id)
    sandbox.advance(31)  # activation
    sandbox.advance(5)  # the first sync ends
    return connection_id


def marks(browser: Browser) -> dict[str, str]:
    """connection id -> the mark its row shows, for each marked row of the list."""
    page = soup(browser.get("/connections"))
    found = {}
    for row in page.select(".connection-row[data-connection-id]"):
        mark = row.select_one(".change-mark")
        if isinstance(mark, Tag):
            found[str(row["data-connection-id"])] = mark.get_text(strip=True)
    return found


def section_of(browser: Browser, connection_id: str) -> str:
    row = soup(browser.get("/connections")).select_one(f"[data-connection-id='{connection_id}']")
    assert row is not None
    section = row.find_parent("section")
    assert isinstance(section, Tag)
    return str(section["aria-labelledby"])


def test_connected_while_you_were_away_shows_once_for_each_user(
    alice: Browser, bob: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = start_listed(alice, "chase")
    finish(alice, connection_id)
    assert marks(alice) == {} and marks(bob) == {}  # both saw it activating
    sandbox.advance(31)

    assert marks(bob) == {connection_id: "Connected while you were away"}
    assert section_of(bob, connection_id) == "live-title"
    assert marks(bob) == {}  # seen: cleared for Bob
    assert marks(alice) == {connection_id: "Connected while you were away"}  # not for Alice
    assert marks(alice) == {}


def test_needs_attention_shows_until_seen_on_the_list_or_the_connection(
    alice: Browser, bob: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = ready_connection(alice, sandbox)
    assert marks(alice) == {} and marks(bob) == {}  # a first look marks nothing
    sandbox.set_status(connection_id, "reauthRequired")

    assert marks(bob) == {connection_id: "Needs attention"}
    assert section_of(alice, connection_id) == "attention-title"  # that look was Alice's
    assert marks(bob) == {}
    assert marks(alice) == {}

    sandbox.set_status(connection_id, "errored")
    page = alice.get(f"/connections/{connection_id}")  # the connection's own screen
    assert page.status_code == 200 and "Error" in soup(page).select_one("title").get_text()
    assert marks(alice) == {}
    assert marks(bob) == {connection_id: "Needs attention"}


def test_a_connection_made_by_someone_else_is_new_to_a_user_who_looked_before(
    alice: Browser, bob: Browser, sandbox: SandboxHandle
) -> None:
    first = ready_connection(alice, sandbox, "chase")
    assert marks(bob) == {}
    second = ready_connection(alice, sandbox, "apple_bank")
    assert marks(bob) == {second: "Connected while you were away"}
    assert first != second
