"""The host's sign-in, handed over: a short-lived token the host's backend signs.

The host (in any language) mints a JWT signed with HS256 and the shared `HANDOFF_SECRET`:

    {"sub": "<host user id>", "name": "<display name>", "email": "<optional>",
     "tenant": {"id": "<host company id>", "name": "<company name>"},
     "role": "admin" | "member" | "viewer",
     "aud": "waycore-onboarding", "iat": <now>, "exp": <now + at most 300>, "jti": "<unique>"}

and sends the browser to `{ROOT_PATH}/handoff?token=...&next=...`. `verify()` accepts it only if
the signature is right, the algorithm is HS256 (never `none` or another), the audience is this
app, it has not expired, `iat` is not in the future beyond 30 s of leeway, it lives at most five
minutes, and the role is known; `views.auth.handoff` then checks the `jti` is used only once and
starts the app's own session. The tenant id becomes Waycore's `externalEntityId`, as with any
other sign-in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from host import HostUser, Role, Tenant, role_named

AUDIENCE = "waycore-onboarding"
ALGORITHM = "HS256"
MAX_LIFETIME_SECONDS = 300
IAT_LEEWAY_SECONDS = 30
MAX_CLAIM_LENGTH = 200


class HandoffRefused(Exception):
    """The token cannot start a session; the message says why (for the log, not the page)."""


@dataclass(frozen=True)
class Handoff:
    user: HostUser
    jti: str
    expires_at: float


def _text(claims: dict[str, object], name: str, *, required: bool = True) -> str:
    value = claims.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_CLAIM_LENGTH:
        raise HandoffRefused(f"claim {name!r} must be a non-empty string")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise HandoffRefused(f"claim {name!r} holds a control character")
    return value


def verify(token: str, secret: str, *, now: float | None = None) -> Handoff:
    """The user a handoff token signs in, or `HandoffRefused`."""
    now = time.time() if now is None else now
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise HandoffRefused(f"not a token: {exc}") from exc
    if header.get("alg") != ALGORITHM:
        raise HandoffRefused(f"algorithm {header.get('alg')!r} is not {ALGORITHM}")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["sub", "aud", "iat", "exp", "jti"], "verify_iat": False},
            leeway=0,
        )
    except jwt.PyJWTError as exc:
        raise HandoffRefused(str(exc)) from exc
    iat, exp = claims["iat"], claims["exp"]
    if not isinstance(iat, int | float) or not isinstance(exp, int | float):
        raise HandoffRefused("iat and exp must be numbers")
    if exp <= now:  # decode() checked it too, at its own clock
        raise HandoffRefused("expired")
    if iat > now + IAT_LEEWAY_SECONDS:
        raise HandoffRefused("issued in the future")
    if exp - iat > MAX_LIFETIME_SECONDS:
        raise HandoffRefused(f"lives longer than {MAX_LIFETIME_SECONDS} s")
    tenant = claims.get("tenant")
    if not isinstance(tenant, dict):
        raise HandoffRefused("claim 'tenant' must be an object with id and name")
    user = HostUser(
        id=_text(claims, "sub"),
        name=_text(claims, "name"),
        email=_text(claims, "email", required=False),
        role=_role(claims.get("role")),
        tenant=Tenant(_text(tenant, "id"), _text(tenant, "name")),
    )
    return Handoff(user, _text(claims, "jti"), float(exp))


def _role(value: object) -> Role:
    role = role_named(value)
    if role is None:
        raise HandoffRefused(f"unknown role {value!r}")
    return role


def mint(
    secret: str,
    *,
    sub: str,
    name: str,
    tenant_id: str,
    tenant_name: str,
    role: Role,
    email: str = "",
    jti: str,
    lifetime: int = 120,
    now: float | None = None,
) -> str:
    """A handoff token, as the host's backend would mint it (the docs' Python example; tests)."""
    issued = int(time.time() if now is None else now)
    claims = {
        "sub": sub,
        "name": name,
        "tenant": {"id": tenant_id, "name": tenant_name},
        "role": role,
        "aud": AUDIENCE,
        "iat": issued,
        "exp": issued + lifetime,
        "jti": jti,
    }
    if email:
        claims["email"] = email
    return jwt.encode(claims, secret, algorithm=ALGORITHM)
