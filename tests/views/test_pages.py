"""Every screen works as a full page (direct load, reload, history restore) and as an htmx
fragment, with `Vary` set so no cache mixes the two."""

from __future__ import annotations

import pytest

from tests.support import Browser, SandboxHandle, finish, soup, start_listed

SCREENS = [
    ("list", "Bank connections"),
    ("new", "Connect your bank"),
    ("draft", "Connect your bank"),
    ("delegated", "Create a delegated user"),
    ("finish", "Finish setup"),
    ("activation", "Activating your connection"),
    ("detail", "JPMorgan Chase"),
    ("delete", "Delete the connection"),
]


@pytest.fixture
def urls(alice: Browser, sandbox: SandboxHandle) -> dict[str, str]:
    draft = alice.post("/connections/drafts", {"institution_id": "chase"}).headers["location"]
    setup = start_listed(alice, "apple_bank")
    activating = start_listed(alice, "scenario_slow")  # still activating after the clock moves
    finish(alice, activating)
    ready = start_listed(alice, "chase")
    finish(alice, ready)
    sandbox.advance(36)
    return {
        "list": "/connections",
        "new": "/connections/new",
        "draft": draft,
        "delegated": f"/connections/{setup}/delegated-user",
        "finish": f"/connections/{setup}/finish",
        "activation": f"/connections/{activating}/activation",
        "detail": f"/connections/{ready}",
        "delete": f"/connections/{ready}/delete",
    }


@pytest.mark.parametrize(("screen", "heading"), SCREENS)
def test_screen_as_full_page(
    alice: Browser, urls: dict[str, str], screen: str, heading: str
) -> None:
    response = alice.get(urls[screen])
    assert response.status_code == 200, response.text
    page = soup(response)
    assert page.select_one("html") is not None
    assert page.select_one("main#main h1").get_text(" ", strip=True).startswith(heading)
    assert page.select_one("script[src*='htmx-2.0.11.min.js']") is not None
    assert "HX-Request" in response.headers["vary"]


@pytest.mark.parametrize(("screen", "heading"), SCREENS)
def test_screen_as_htmx_fragment(
    alice: Browser, urls: dict[str, str], screen: str, heading: str
) -> None:
    response = alice.get(urls[screen], htmx=True)
    assert response.status_code == 200
    assert "<html" not in response.text and "<main" not in response.text
    fragment = soup(response)
    assert fragment.select_one("h1").get_text(" ", strip=True).startswith(heading)
    assert fragment.select_one("title") is not None  # htmx updates the tab title
    assert response.headers["vary"].startswith("HX-Request, HX-History-Restore-Request")


@pytest.mark.parametrize(("screen", "heading"), SCREENS)
def test_history_restore_gets_the_full_page(
    alice: Browser, urls: dict[str, str], screen: str, heading: str
) -> None:
    response = alice.get(
        urls[screen], headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )
    assert soup(response).select_one("html") is not None


def test_navigation_links_push_the_step_url(alice: Browser, urls: dict[str, str]) -> None:
    """Links inside <main> are boosted: htmx GETs them into #main and pushes their URL."""
    page = soup(alice.get(urls["delegated"]))
    next_step = page.select_one("a.button.primary")
    assert next_step["href"] == urls["finish"]
    region = next_step.find_parent("main")
    assert region["hx-boost"] == "true" and region["hx-target"] == "#main"
    assert not next_step.has_attr("hx-boost") and not next_step.has_attr("target")


def test_signin_page_full_and_fragment(client) -> None:  # type: ignore[no-untyped-def]
    browser = Browser(client)
    assert soup(browser.get("/signin")).select_one("html") is not None
    fragment = browser.get("/signin", htmx=True)
    assert "<html" not in fragment.text and soup(fragment).select_one("form[action='/signin']")


def test_healthz(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_is_200_while_the_database_answers_and_503_when_not(client) -> None:  # type: ignore[no-untyped-def]
    from views.guards import STATE_KEY

    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "database": "ok"}
    assert ready.headers["cache-control"] == "no-store"
    client.portal.call(client.app_state[STATE_KEY].store.close)  # the database goes away
    down = client.get("/readyz")
    assert down.status_code == 503 and down.json() == {"status": "unavailable", "database": "error"}
    assert client.get("/healthz").status_code == 200  # alive, but not ready


def test_the_vendored_htmx_is_the_version_the_readme_names() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    vendored = sorted(p.name for p in (root / "static" / "vendor").glob("htmx-*.min.js"))
    assert vendored == ["htmx-2.0.11.min.js"]
    assert 'version:"2.0.11"' in (root / "static/vendor/htmx-2.0.11.min.js").read_text()
    assert "htmx 2.0.11" in (root / "README.md").read_text()
