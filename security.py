"""Request-level protections: CSRF on every state-changing request, and security headers.

CSRF is layered: the session cookie is `SameSite=Lax` and HttpOnly; every non-GET
request from another site is refused by `Sec-Fetch-Site`/`Origin`; and it must carry the token
bound to the session, as the `X-CSRF-Token` header (htmx sends it through `hx-headers` on
`<body>`) or as the `csrf_token` field of a plain form (the no-JavaScript path). The webhook
receiver is exempt: Waycore signs its deliveries instead.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Iterable
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_SESSION_KEY = "csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_FORM_BYTES = 1024 * 1024

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def csrf_token(session: dict[str, object]) -> str:
    """The session's CSRF token, created on first use."""
    token = session.get(CSRF_SESSION_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_SESSION_KEY] = token
    return token


#: Builds the 403 answer for a refused request (the app renders its error page).
Refusal = Callable[[Request, str], Response]


class CSRFMiddleware:
    """Refuse cross-site or token-less state-changing requests (403) before any view runs."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        refuse: Refusal,
        public_origins: Iterable[str] = (),
        exempt_paths: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.refuse = refuse
        self.public_origins = frozenset(public_origins)
        self.exempt_paths = frozenset(exempt_paths)

    def same_site(self, headers: Headers) -> bool:
        """Whether a state-changing request comes from this app's own pages.

        A browser's `Sec-Fetch-Site` is trusted when sent (`same-origin`, or `none` for a
        user-initiated request); otherwise `Origin`, when sent, must be one of the configured
        public origins (`PUBLIC_ORIGINS`), or, with none configured, the request's own `Host`.
        Behind a proxy that rewrites `Host`, configure the public origins."""
        fetch_site = headers.get("sec-fetch-site")
        if fetch_site is not None:
            return fetch_site in ("same-origin", "none")
        origin = headers.get("origin")
        if origin is None:
            return True  # an old client: the session-bound token below still has to match
        if self.public_origins:
            return origin.rstrip("/") in self.public_origins
        return urlsplit(origin).netloc == headers.get("host")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The token is made when a page first needs it (`csrf_token`), so a health check or an
        # asset gets no session cookie.
        if scope["method"] in SAFE_METHODS or _route_path(scope) in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not self.same_site(headers):
            await self.refuse(Request(scope), "It did not come from this site.")(
                scope, receive, send
            )
            return
        sent = headers.get(CSRF_HEADER)
        if sent is None and headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            body, receive = await _buffer(receive)
            if body is None:
                await HTMLResponse("Form too large", status_code=413)(scope, receive, send)
                return
            values = parse_qs(body.decode("latin-1")).get(CSRF_FIELD)
            sent = values[0] if values else None
        expected = scope["session"].get(CSRF_SESSION_KEY)
        if (
            not sent
            or not isinstance(expected, str)
            or not hmac.compare_digest(sent.encode(), expected.encode())
        ):
            refusal = self.refuse(Request(scope), "The page it came from has expired.")
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The request path within this app (without the prefix it is served or mounted at)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def _buffer(receive: Receive) -> tuple[bytes | None, Receive]:
    """Read the whole request body (None if larger than `MAX_FORM_BYTES`) and a `receive` that
    replays it for the view."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None, receive
        chunks.append(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


class SecurityHeadersMiddleware:
    """Add the CSP and related headers to every HTTP response (a header a response already has
    is left as it is)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in _RAW_SECURITY_HEADERS if h[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


_RAW_SECURITY_HEADERS = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
