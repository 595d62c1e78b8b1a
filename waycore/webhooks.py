"""Waycore webhook signatures and envelopes.

Waycore signs every delivery with a `Waycore-Signature: t=<unix>,v1=<hex>` header, where the hex
is HMAC-SHA256, keyed with the registration's signing secret, of `<t>.<raw body>`. A receiver
verifies against the *raw* body before parsing it, compares in constant time, and rejects a
timestamp more than `tolerance` seconds away from its own clock in either direction (a replay or
a badly skewed sender). The 300 s tolerance is this project's choice; Waycore does not state one.

`sign()` is the sending side, used by the local sandbox and by tests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

SIGNATURE_HEADER = "Waycore-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The delivery is not provably from Waycore: missing, garbled, wrong or stale signature."""


@dataclass(frozen=True)
class WebhookEvent:
    """One delivery envelope: `{id, type, createdAt, data}`. Use `id` to de-duplicate."""

    id: str
    type: str
    created_at: str
    data: dict[str, Any] = field(default_factory=dict)


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The `Waycore-Signature` header value for `body` sent at `timestamp` (default: now)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={_digest(secret, t, body)}"


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed signature header")
        if key == "t":
            # ASCII digits only: str.isdigit() also accepts e.g. "²", which int() rejects; and
            # at most 12 of them, so no huge number reaches the clock arithmetic.
            if not (value.isascii() and value.isdigit()) or len(value) > 12:
                raise SignatureError("malformed signature timestamp")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureError("signature header lacks t= or v1=")
    return timestamp, signatures


def verify(
    secret: str,
    header: str | None,
    body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check a delivery's signature; return its timestamp, or raise `SignatureError`.

    Several `v1=` values are accepted (Waycore may sign with an old and a new secret during a
    rotation); one match is enough.
    """
    if not header:
        raise SignatureError("missing signature header")
    timestamp, signatures = _parse_header(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError("signature timestamp outside the tolerance window")
    expected = _digest(secret, timestamp, body).encode("ascii")
    # Compare bytes: hmac.compare_digest raises TypeError on non-ASCII str input.
    candidates = [s.encode("utf-8", "surrogateescape") for s in signatures]
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("signature does not match")
    return timestamp


def parse_event(body: bytes) -> WebhookEvent:
    """Parse a verified delivery body into a `WebhookEvent`; `ValueError` if it is not one."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError("webhook body is not JSON") from exc
    if not isinstance(payload, dict):
        raise ValueError("webhook body is not an object")
    try:
        event_id, event_type, created_at = payload["id"], payload["type"], payload["createdAt"]
    except KeyError as exc:
        raise ValueError(f"webhook body lacks {exc.args[0]!r}") from exc
    data = payload.get("data") or {}
    if not isinstance(data, dict):
        raise ValueError("webhook data is not an object")
    return WebhookEvent(
        id=str(event_id), type=str(event_type), created_at=str(created_at), data=data
    )
