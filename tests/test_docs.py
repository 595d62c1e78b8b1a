"""The examples in docs/embedding.md work as written: the Python and Node.js token minting, and
(in tests/e2e/test_embedded.py) the nginx location block."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.datastructures import Secret
from starlette.testclient import TestClient

import handoff
from server import create_app
from tests.support import make_settings

ROOT = Path(__file__).resolve().parents[1]
EMBEDDING = ROOT / "docs" / "embedding.md"
SECRET = "docs-example-secret-" + "d" * 40


def snippet(name: str) -> str:
    """The fenced code between `<!-- name:start -->` and `<!-- name:end -->`."""
    text = EMBEDDING.read_text(encoding="utf-8")
    match = re.search(
        rf"<!-- {name}:start -->\n```[a-z]*\n(.*?)```\n<!-- {name}:end -->", text, re.S
    )
    assert match, f"docs/embedding.md has no {name} block"
    return match.group(1)


def _use(url: str, tmp_path: Path) -> None:
    """The URL the example built signs its user in at the kit, and lands on `next`."""
    parts = urlsplit(url)
    assert parts.path == "/banking/handoff"
    query = parse_qs(parts.query)
    assert query["next"] == ["/banking/connections"]
    signed = handoff.verify(query["token"][0], SECRET)
    assert (signed.user.id, signed.user.tenant.id, signed.user.role) == ("u-9", "co-9", "member")
    settings = make_settings(tmp_path, handoff_secret=Secret(SECRET), demo_mode=False)
    with TestClient(create_app(settings), follow_redirects=False) as client:
        response = client.get(
            "/handoff",
            params={"token": query["token"][0], "next": "/x"},
            headers={"Sec-Fetch-Site": "same-origin"},  # the host's own link or redirect
        )
        assert response.status_code == 303
        assert "Acme Books" in client.get("/connections").text


def test_the_python_minting_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDOFF_SECRET", SECRET)
    namespace: dict[str, object] = {}
    exec(compile(snippet("mint-python"), "docs/embedding.md", "exec"), namespace)  # noqa: S102
    url = namespace["bank_connections_url"]("u-9", "Ada", "co-9", "Acme Books")  # type: ignore[operator]
    _use(str(url), tmp_path)


def test_the_node_minting_example(tmp_path: Path) -> None:
    modules = ROOT / "examples" / "node" / "node_modules" / "jsonwebtoken"
    node = shutil.which("node")
    if node is None or not modules.exists():
        reason = "node and examples/node's packages (scripts/install --test) are needed"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    script = ROOT / "examples" / "node" / "mint.js"
    # The runnable example is the doc's function, word for word.
    assert snippet("mint-node") in script.read_text(encoding="utf-8")
    done = subprocess.run(
        [node, str(script), "u-9", "Ada", "co-9", "Acme Books"],
        env={**os.environ, "HANDOFF_SECRET": SECRET},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    _use(done.stdout.strip(), tmp_path)
