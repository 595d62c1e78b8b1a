"""The local Waycore sandbox: a faithful simulator of Waycore's `/v1` API for development and tests.

    async with Sandbox(SandboxConfig(api_key="...")) as sandbox:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=sandbox.app), base_url="http://waycore-sandbox"
        )

Or standalone: `WAYCORE_API_KEY=... python -m waycore.sandbox --port 8010`. See docs/sandbox.md.
"""

from __future__ import annotations

from .app import Sandbox
from .config import SandboxConfig
from .records import RecordedRequest

__all__ = ["RecordedRequest", "Sandbox", "SandboxConfig"]
