"""The app's session cookie: Starlette's signed cookie, checked once per cookie value.

`SessionMiddleware` keeps Starlette's format, flags and `Session` (a dict that knows when it was
changed): the cookie is base64 JSON signed with `itsdangerous.TimestampSigner` under
`SECRET_KEY`, and a changed session is signed again and sent back. What differs is the check of
an unchanged cookie: an activation screen sends the same cookie every few seconds, so a value
whose signature was verified is remembered (with when it was signed) for as long as it is valid,
and its next request costs a dictionary lookup instead of an HMAC and a JSON parse. A value that
fails the check is never remembered; an expired one is refused as before.

The cookie holds no identity of its own (`host.SessionAuth`: a server-side session row, deleted at
sign-out), so remembering a value never outlives a sign-out.
"""

from __future__ import annotations

import json
import time
from base64 import b64decode, b64encode
from typing import Any, Literal

import itsdangerous
from itsdangerous.exc import BadSignature
from starlette.datastructures import Secret
from starlette.middleware.sessions import Session
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The most cookie values remembered at once (oldest forgotten first).
REMEMBERED = 20_000

_now = time.time  # the clock a remembered value's age is measured by


class SessionMiddleware:
    """`scope["session"]` from the signed cookie; a changed session is sent back signed."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        secret_key: str | Secret,
        session_cookie: str,
        max_age: int,
        path: str = "/",
        same_site: Literal["lax", "strict", "none"] = "lax",
        https_only: bool = False,
    ) -> None:
        self.app = app
        self.signer = itsdangerous.TimestampSigner(str(secret_key))
        self.session_cookie = session_cookie
        self.max_age = max_age
        self.path = path
        flags = f"path={path}; httponly; samesite={same_site}"
        self.flags = flags + "; secure" if https_only else flags
        self._cookie_prefix = session_cookie.encode() + b"="  # a quick "is it there at all"
        #: verified cookie value -> (its session data, when it was signed)
        self._verified: dict[str, tuple[dict[str, Any], float]] = {}

    def load(self, value: str | None) -> dict[str, Any] | None:
        """The session data a cookie value carries, or None (absent, forged or expired)."""
        if not value:
            return None
        now = _now()
        known = self._verified.get(value)
        if known is not None:
            data, signed_at = known
            if now - signed_at <= self.max_age:
                return dict(data)
            del self._verified[value]
            return None
        try:
            payload, signed = self.signer.unsign(value, max_age=self.max_age, return_timestamp=True)
            data = json.loads(b64decode(payload))
        except (BadSignature, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        if len(self._verified) >= REMEMBERED:
            del self._verified[next(iter(self._verified))]
        self._verified[value] = (data, signed.timestamp())
        return dict(data)

    def _cookie(self, scope: Scope) -> str | None:
        """This app's cookie from the request's `Cookie` header, parsed as Starlette parses it
        (`starlette.requests.cookie_parser`: the first header; a repeated name, the last)."""
        raw = next((value for name, value in scope["headers"] if name == b"cookie"), b"")
        if self._cookie_prefix not in raw:
            return None
        return cookie_parser(raw.decode("latin-1")).get(self.session_cookie)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        data = self.load(self._cookie(scope))
        had_session = data is not None
        scope["session"] = Session(data or {})

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                session: Session = scope["session"]
                headers = message.setdefault("headers", [])
                if not isinstance(headers, list):
                    headers = message["headers"] = list(headers)
                if session.accessed:
                    _add_vary(headers, b"Cookie")
                if session.modified and session:
                    signed = self.signer.sign(b64encode(json.dumps(session).encode()))
                    value = f"{self.session_cookie}={signed.decode()}; {self.flags}; "
                    value += f"Max-Age={self.max_age}"
                    headers.append((b"set-cookie", value.encode("latin-1")))
                elif session.modified and had_session:  # cleared: the browser drops it
                    value = f"{self.session_cookie}=null; {self.flags}; "
                    value += "expires=Thu, 01 Jan 1970 00:00:00 GMT"
                    headers.append((b"set-cookie", value.encode("latin-1")))
            await send(message)

        await self.app(scope, receive, send_wrapper)


def _add_vary(headers: list[tuple[bytes, bytes]], value: bytes) -> None:
    """Add `value` to the response's one `Vary` header."""
    for index, (name, current) in enumerate(headers):
        if name == b"vary":
            headers[index] = (name, current + b", " + value)
            return
    headers.append((b"vary", value))
