"""The sync panel follows the configured poll interval, from the first look after "Sync now"."""

from __future__ import annotations

from dataclasses import replace

import pytest

from config import Settings
from tests.support import Browser, SandboxHandle, soup
from tests.views.test_connections import ready_connection


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, poll_interval_seconds=7)


def test_after_sync_now_the_panel_looks_again_at_the_configured_interval(
    bob: Browser, sandbox: SandboxHandle
) -> None:
    connection_id = ready_connection(bob, sandbox)
    response = bob.post(f"/connections/{connection_id}/sync", htmx=True, target="sync-panel")
    panel = soup(response).select_one("#sync-panel")
    assert "Syncing now" in panel.select_one(".sync-state").get_text()
    assert panel["hx-trigger"] == "load delay:7s"
