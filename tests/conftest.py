"""Shared test setup: anyio on asyncio only, and app fixtures over the embedded sandbox.

No test reaches a real Waycore: the app runs against its in-process sandbox (or respx), and the
browser tests serve the app on a loopback port.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from config import Settings
from server import create_app
from tests.support import Browser, SandboxHandle, make_settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def app(settings: Settings) -> Starlette:
    return create_app(settings)


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def sandbox(client: TestClient, app: Starlette) -> SandboxHandle:
    return SandboxHandle(client, app)


@pytest.fixture
def alice(client: TestClient) -> Browser:
    """Acme's admin."""
    return browser_for(client, "u-alice")


def browser_for(client: TestClient, user_id: str) -> Browser:
    browser = Browser(client)
    browser.sign_in(user_id)
    return browser


@pytest.fixture
def bob(client: TestClient) -> Browser:
    """Acme's member, in a browser of his own (same app, separate cookies)."""
    return browser_for(client, "u-bob")


@pytest.fixture
def carol(client: TestClient) -> Browser:
    """Acme's viewer."""
    return browser_for(client, "u-carol")


@pytest.fixture
def dana(client: TestClient) -> Browser:
    """Globex's admin: another tenant."""
    return browser_for(client, "u-dana")
