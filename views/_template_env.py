"""The Jinja environment: globals, filters and the context every template gets.

Autoescape stays on; nothing from Waycore is ever marked safe.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.templating import Jinja2Templates

from config import DEFAULT_SETUP_GUIDE_URL, TERMS_OF_USE_URL, Settings
from views._security import csrf_token
from views._status import status_view, sync_label

#: htmx settings (read from a meta tag, so no inline script): no eval, no inline styles, no
#: script tags from swapped content, no history snapshots of pages holding bank details, same-
#: origin requests only, and error responses swapped in so their messages show.
HTMX_CONFIG = {
    "allowEval": False,
    "allowScriptTags": False,
    "includeIndicatorStyles": False,
    "historyCacheSize": 0,
    "refreshOnHistoryMiss": True,
    "selfRequestsOnly": True,
    "responseHandling": [
        {"code": "204", "swap": False},
        {"code": "[23]..", "swap": True},
        {"code": "422", "swap": True},  # a form answered with its validation messages
        {"code": "[45]..", "swap": True, "error": True},
    ],
}


def portal_domain(url: str | None) -> str:
    """The host name of a portal URL, shown next to institution names."""
    if not url:
        return ""
    return urlsplit(url).hostname or url


def money(amount: str | None, currency: str | None = None) -> str:
    """`-1234.5` + `USD` -> `-1,234.50 USD`; unparseable amounts are shown as given."""
    if amount is None:
        return "\u2014"
    try:
        value = Decimal(amount)
    except InvalidOperation:
        return f"{amount} {currency or ''}".strip()
    sign = "\u2212" if value < 0 else ""
    return f"{sign}{abs(value):,.2f} {currency or ''}".strip()


def when(value: str | float | None) -> str:
    """An ISO timestamp (or epoch seconds) as `2026-11-25 14:05 UTC`: one zone for everyone,
    whatever the server's or the browser's."""
    if value is None or value == "":
        return "\u2014"
    try:
        if isinstance(value, int | float):
            moment = datetime.fromtimestamp(value, UTC)
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return str(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: float | None) -> str:
    """`2700` -> `45 minutes`; short waits in seconds."""
    if seconds is None:
        return ""
    if seconds < 90:
        return f"{max(1, round(seconds))} seconds"
    minutes = round(seconds / 60)
    return f"{minutes} minutes" if minutes < 120 else f"{round(minutes / 60)} hours"


def configure_templates(templates: Jinja2Templates, settings: Settings) -> Jinja2Templates:
    def base_context(request: Request) -> dict[str, Any]:
        token = csrf_token(request.session) if "session" in request.scope else ""
        return {
            "user": getattr(request.state, "user", None),
            "csrf_token": token,
            "htmx_headers": json.dumps({"X-CSRF-Token": token}),
        }

    templates.context_processors.append(base_context)
    env = templates.env
    env.globals.update(
        htmx_config=json.dumps(HTMX_CONFIG),
        terms_url=TERMS_OF_USE_URL,
        default_guide_url=DEFAULT_SETUP_GUIDE_URL,
        demo_mode=settings.demo_mode,
        status_view=status_view,
        sync_label=sync_label,
        poll_seconds=settings.poll_interval_seconds,
    )
    env.filters.update(portal_domain=portal_domain, money=money, when=when, duration=duration)
    return templates
