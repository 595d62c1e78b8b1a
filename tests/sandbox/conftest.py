"""Fixtures for the sandbox contract tests: a started sandbox and an in-process client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from waycore.sandbox import Sandbox, SandboxConfig

from .helpers import BASE_URL, ROOT_KEY, auth


@pytest.fixture
def config() -> SandboxConfig:
    return SandboxConfig(api_key=ROOT_KEY, tick_seconds=0.02, webhook_retry_base_seconds=0.05)


@pytest.fixture
async def sandbox(config: SandboxConfig) -> AsyncIterator[Sandbox]:
    async with Sandbox(config) as sb:
        yield sb


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE_URL, headers=auth(ROOT_KEY)
    ) as c:
        yield c
