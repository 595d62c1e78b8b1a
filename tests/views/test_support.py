"""Support: the contact and a copyable reference on every error and every state that needs
attention; the reference names the request, the connection, its status and the time, and
nothing secret."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from config import Settings
from tests.support import (
    ROOT_KEY,
    SECRET_KEY,
    Browser,
    SandboxHandle,
    finish,
    make_settings,
    soup,
    start_listed,
)

SUPPORT_URL = "https://help.host.example/bank-connections"
SUPPORT_EMAIL = "bank-help@host.example"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return replace(make_settings(tmp_path), support_url=SUPPORT_URL, support_email=SUPPORT_EMAIL)


def test_a_state_needing_attention_shows_the_contact_and_a_full_reference(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = start_listed(alice, "scenario_reauth_required")
    finish(alice, connection_id)
    sandbox.advance(31)
    response = alice.get(f"/connections/{connection_id}")
    support = soup(response).select_one("#status-watch .support")
    link = support.select_one("a.support-link")
    assert link["href"] == SUPPORT_URL and link["rel"] == ["noopener", "noreferrer"]
    reference = support.select_one(".reference code").get_text(strip=True)
    assert reference == response.headers["x-request-id"]
    mail = urlsplit(support.select_one("a.support-email")["href"])
    assert (mail.scheme, mail.path) == ("mailto", SUPPORT_EMAIL)
    assert parse_qs(mail.query)["subject"] == [f"Bank connection {reference}"]
    details = support.select_one(".reference-details code")
    assert re.fullmatch(
        rf"Reference {reference} \| Connection {connection_id} \| Status reauthRequired"
        r" \| Time \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC",
        details.get_text(),
    )
    copy = support.select_one("button.copy")
    assert copy["data-copy-target"] == details["id"]
    for secret in (ROOT_KEY, SECRET_KEY):
        assert secret not in response.text


def test_an_error_page_gives_waycores_request_id_as_the_reference(
    alice: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = start_listed(alice, "chase")
    sandbox.fault(mode="error", status=503, count=3, pathPrefix=f"/v1/connections/{connection_id}")
    response = alice.get(f"/connections/{connection_id}/delegated-user")
    assert response.status_code == 502
    support = soup(response).select_one(".support")
    failed = [r for r in sandbox.requests if r.status == 503]
    assert support.select_one(".reference code").get_text(strip=True) == failed[-1].request_id
    assert support.select_one("a.support-email").get_text() == SUPPORT_EMAIL
    assert ROOT_KEY not in response.text


@pytest.mark.parametrize("path", ["/nowhere", "/connections/conn_not_mine"])
def test_not_found_pages_carry_a_reference_too(alice: Browser, path: str) -> None:
    response = alice.get(path)
    assert response.status_code == 404
    code = soup(response).select_one(".support .reference code").get_text(strip=True)
    assert code == response.headers["x-request-id"]


def test_the_default_has_no_contact_but_a_reference(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from server import create_app

    with TestClient(create_app(make_settings(tmp_path)), follow_redirects=False) as client:
        browser = Browser(client)
        browser.sign_in("u-alice")
        support = soup(browser.get("/nowhere")).select_one(".support")
    assert "If you contact support, quote the reference below." in support.get_text()
    assert support.select_one("a") is None
    assert support.select_one(".reference code").get_text(strip=True).startswith("rid_")
