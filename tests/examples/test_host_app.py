"""The example host (examples/host_app.py): its own sign-in, layout and users, the kit mounted
at /banking with `Mount` alone; and a host whose lifespan enters the kit's."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2
import pytest
from bs4 import BeautifulSoup
from starlette.applications import Starlette
from starlette.datastructures import Secret
from starlette.routing import Mount
from starlette.testclient import TestClient

from examples.host_app import LedgerlyAuth, create_host_app, kit_settings
from server import create_app
from tests.support import SandboxHandle, make_settings

HOST_SECRET = "ledgerly-secret-" + "l" * 40


class HostBrowser:
    """A browser on the host's site: signs in on the host's own page, then uses the kit."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""

    def page(self, response: httpx2.Response) -> BeautifulSoup:
        page = BeautifulSoup(response.text, "html.parser")
        field = page.select_one("input[name=csrf_token]")
        body = page.select_one("body[hx-headers]")
        if field is not None:
            self.csrf = str(field["value"])
        elif body is not None:
            self.csrf = json.loads(str(body["hx-headers"]))["X-CSRF-Token"]
        return page

    def sign_in(self, email: str, next_url: str = "/") -> httpx2.Response:
        form = self.page(self.client.get(f"/login?next={next_url}"))
        token = str(form.select_one("input[name=token]")["value"])  # type: ignore[index]
        data = {"email": email, "password": "ledgerly-demo", "token": token, "next": next_url}
        return self.client.post("/login", data=data)

    def get(self, path: str, **headers: str) -> httpx2.Response:
        response = self.client.get(path, headers=headers)
        self.page(response)
        return response

    def post(self, path: str, data: dict[str, str]) -> httpx2.Response:
        headers = {"HX-Request": "true", "HX-Target": "main", "X-CSRF-Token": self.csrf}
        return self.client.post(path, data=data, headers=headers)


@pytest.fixture
def host(tmp_path: Path) -> Starlette:
    return create_host_app(make_settings(tmp_path), secret_key=HOST_SECRET)


@pytest.fixture
def client(host: Starlette) -> Iterator[TestClient]:
    # The host's own lifespan knows nothing of the kit: the Mount alone must do.
    with TestClient(host, follow_redirects=False) as test_client:
        yield test_client


def _location(response: httpx2.Response) -> str:
    if "hx-location" in response.headers:
        return str(json.loads(response.headers["hx-location"])["path"])
    return response.headers["location"]


def test_the_journey_through_the_mounted_kit_with_the_hosts_sign_in(
    client: TestClient, host: Starlette
) -> None:
    maria = HostBrowser(client)
    signed_out = client.get("/banking/connections")
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/login?next=%2Fbanking%2Fconnections"
    assert (
        maria.sign_in("maria@northwind.example", "/banking/connections").headers["location"]
        == "/banking/connections"
    )

    page = maria.page(maria.get("/banking/connections"))
    assert page.select_one("header.ledgerly-bar .ledgerly-who").get_text(" ", strip=True) == (
        "Maria Lopez · Northwind Traders Sign out"
    )
    assert page.select_one("link[href='/assets/ledgerly.css']") is not None
    assert page.select_one("a.button.primary")["href"] == "/banking/connections/new"

    chosen = maria.post("/banking/connections/drafts", {"institution_id": "chase"})
    draft_path = _location(chosen)
    maria.get(draft_path)
    created = maria.post(
        "/banking/connections/continue",
        {"draft_id": draft_path.rsplit("/", 1)[-1], "mode": "listed"},
    )
    delegated = _location(created)
    assert re.fullmatch(r"/banking/connections/conn_\w+/delegated-user", delegated)
    connection_id = delegated.split("/")[3]
    maria.get(f"/banking/connections/{connection_id}/finish")
    finished = maria.post(
        f"/banking/connections/{connection_id}/finish",
        {"confirm_active": "yes", "accept_terms": "yes"},
    )
    assert _location(finished) == f"/banking/connections/{connection_id}/activation"

    sandbox = SandboxHandle(client, host.state.kit)
    sandbox.advance(31)
    polled = client.get(
        f"/banking/connections/{connection_id}/activation/status",
        headers={"HX-Request": "true", "HX-Target": "activation-status"},
    )
    assert _location(polled) == f"/banking/connections/{connection_id}"
    # That answer wrote the kit's session (a flash); the host's session is untouched by it.
    assert "ledgerly_session" not in polled.headers.get("set-cookie", "")
    detail = maria.page(maria.get(f"/banking/connections/{connection_id}"))
    assert "Your bank is connected" in detail.select_one(".alert-success").get_text()
    assert detail.select_one(".page-head .badge").get_text(strip=True) == "Connected"
    (entity,) = sandbox.calls("POST", "/v1/entities")
    assert entity.body["externalEntityId"] == "nw-001"  # the host's company id

    lee = HostBrowser(client)
    client.cookies.clear()
    lee.sign_in("lee@harbor.example")
    assert lee.get(f"/banking/connections/{connection_id}").status_code == 404


def test_the_hosts_sign_out_signs_out_of_the_kit_too(client: TestClient) -> None:
    sam = HostBrowser(client)
    sam.sign_in("sam@northwind.example")
    assert sam.get("/banking/connections").status_code == 200
    token = str(sam.page(client.get("/logout")).select_one("input[name=token]")["value"])  # type: ignore[index]
    client.post("/logout", data={"token": token})
    assert client.get("/banking/connections").headers["location"].startswith("/login?next=")


def test_a_host_lifespan_may_enter_the_kits_own(tmp_path: Path) -> None:
    kit = create_app(kit_settings(make_settings(tmp_path)), auth_backend=LedgerlyAuth())
    entered: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with kit.router.lifespan_context(kit):
            entered.append("kit")
            yield

    host = Starlette(routes=[Mount("/banking", app=kit)], lifespan=lifespan)
    with TestClient(host, follow_redirects=False) as client:
        assert entered == ["kit"]
        assert client.get("/banking/healthz").status_code == 200
        assert client.get("/banking/connections").headers["location"] == (
            "/login?next=%2Fbanking%2Fconnections"
        )
    assert not hasattr(kit.state, "runtime")  # shut down with the host


def test_settings_secret_is_the_kits_not_the_hosts(tmp_path: Path) -> None:
    settings = kit_settings(make_settings(tmp_path))
    assert isinstance(settings.secret_key, Secret) and str(settings.secret_key) != HOST_SECRET
    assert settings.root_path == "/banking" and not settings.demo_mode
