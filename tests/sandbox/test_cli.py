"""`python -m waycore.sandbox` as a real process on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx

from .helpers import ROOT_KEY, auth


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serves_v1_with_the_key() -> None:
    port = _free_port()
    env = {**os.environ, "WAYCORE_API_KEY": ROOT_KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "waycore.sandbox", "--port", str(port), "--seed", "3"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        response = None
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"{base}/v1/institutions", headers=auth(ROOT_KEY))
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
        assert response is not None and response.status_code == 200
        assert any(i["institutionId"] == "chase" for i in response.json()["data"])
        assert response.headers["X-Request-Id"].startswith("req_")
        assert httpx.get(f"{base}/v1/institutions").status_code == 401
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=10)
    assert ROOT_KEY.encode() not in err


def test_refuses_to_start_without_a_key() -> None:
    env = {k: v for k, v in os.environ.items() if k != "WAYCORE_API_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "waycore.sandbox", "--port", str(_free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "WAYCORE_API_KEY" in result.stderr
