"""The router that remembers which route answered a path (`views.routing`): every request is
answered by the route Starlette's own walk would have chosen, however often the path comes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Host, Mount, Route, Router
from starlette.testclient import TestClient

from views import routing


def _endpoint(text: str) -> Callable[[Request], Awaitable[PlainTextResponse]]:
    """An endpoint answering `text` and its path parameters."""

    async def endpoint(request: Request) -> PlainTextResponse:
        params = ",".join(f"{k}={v}" for k, v in request.path_params.items())
        return PlainTextResponse(f"{text} {params}".strip())

    return endpoint


def _app(routes: list[BaseRoute]) -> Starlette:
    app = Starlette()
    app.router = routing.Router(routes)
    return app


ROUTES: list[BaseRoute] = [
    Route("/items/new", _endpoint("new")),
    Route("/items/{item_id}", _endpoint("item")),
    Route("/items/{item_id}", _endpoint("item-post"), methods=["POST"]),
    Route("/items/{item_id}/edit", _endpoint("edit"), methods=["POST"]),
    Mount("/files", routes=[Route("/{name}", _endpoint("file"))]),
]


def test_each_path_is_answered_as_by_starlettes_walk_again_and_again() -> None:
    ours = TestClient(_app(list(ROUTES)))
    theirs = TestClient(Starlette(routes=list(ROUTES)))
    requests = [
        ("GET", "/items/new"),
        ("GET", "/items/a1"),
        ("POST", "/items/a1"),
        ("HEAD", "/items/a1"),
        ("GET", "/items/a1/edit"),  # only POST there: 405
        ("POST", "/items/a1/edit"),
        ("GET", "/files/report.csv"),
        ("GET", "/items/a1/"),  # a trailing slash: redirected
        ("GET", "/nowhere"),  # 404
    ]
    for _ in range(3):  # first the walk, then what is remembered
        for method, path in requests:
            mine = ours.request(method, path, follow_redirects=False)
            expected = theirs.request(method, path, follow_redirects=False)
            assert (mine.status_code, mine.text) == (expected.status_code, expected.text), path
            assert mine.headers.get("allow") == expected.headers.get("allow")
            assert mine.headers.get("location") == expected.headers.get("location")


def test_a_route_added_later_is_honoured_for_a_path_already_answered() -> None:
    app = _app(list(ROUTES))
    client = TestClient(app)
    assert client.get("/items/export").text == "item item_id=export"
    app.router.routes.insert(0, Route("/items/export", _endpoint("export")))
    assert client.get("/items/export").text == "export"


def test_routes_by_host_are_never_remembered() -> None:
    app = _app(
        [
            Host("a.example", Router([Route("/", _endpoint("site a"))])),
            Host("b.example", Router([Route("/", _endpoint("site b"))])),
        ]
    )
    client = TestClient(app)
    for _ in range(2):
        assert client.get("/", headers={"host": "a.example"}).text == "site a"
        assert client.get("/", headers={"host": "b.example"}).text == "site b"


def test_under_a_prefix_the_same_path_is_its_own() -> None:
    app = _app(list(ROUTES))
    at_root, under = TestClient(app), TestClient(app, root_path="/kit")
    assert under.get("/kit/items/new").text == "new"
    assert at_root.get("/kit/items/new").status_code == 404
    assert at_root.get("/items/new").text == "new"
    assert under.get("/kit/items/b2").text == "item item_id=b2"


def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routing, "REMEMBERED_LIMIT", 3)
    app = _app(list(ROUTES))
    client = TestClient(app)
    for n in range(10):
        assert client.get(f"/items/i{n}").text == f"item item_id=i{n}"
        assert isinstance(app.router, routing.Router)
        assert len(app.router._answered) <= 3


def test_only_short_paths_of_routes_are_kept() -> None:
    """Routing comes before sign-in: what anyone can make the router keep is bounded (no path
    under a mount such as /static, no long path)."""
    app = _app(list(ROUTES))
    client = TestClient(app)
    long_id = "x" * (routing.REMEMBERED_PATH_LIMIT + 1)
    assert client.get(f"/items/{long_id}").text == f"item item_id={long_id}"
    assert client.get("/files/a.txt").text == "file name=a.txt"
    assert isinstance(app.router, routing.Router)
    assert app.router._answered == {}
    assert client.get("/items/short").text == "item item_id=short"
    assert [path for _, path, _ in app.router._answered] == ["/items/short"]
