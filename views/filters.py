"""Jinja filters: how amounts, times, durations and portal addresses read on every screen."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from markupsafe import Markup, escape

from onboarding.events import portal_host


def portal_domain(url: str | None) -> str:
    """The host name of a portal URL, shown next to institution names (the URL as given when
    it has none, or cannot be parsed)."""
    return portal_host(url) or url or ""


@functools.lru_cache(maxsize=8192)  # a page of transactions shows dozens, shown again and again
def money(amount: str | None, currency: str | None = None) -> Markup:
    """`-1234.5` + `USD` -> `-1,234.50 USD` (HTML); unparseable amounts are shown as given.

    The minus sign and the dash of a missing amount are written as entities (`&minus;`,
    `&mdash;`): one character outside ASCII makes Python hold the whole page as wider text,
    and encoding a 20 KB connection page then costs about 11 µs instead of under one."""
    if amount is None:
        return Markup("&mdash;")
    try:
        value = Decimal(amount)
    except InvalidOperation:
        return escape(f"{amount} {currency or ''}".strip())
    sign = "&minus;" if value < 0 else ""
    return Markup(f"{sign}{abs(value):,.2f} {escape(currency or '')}".strip())


@functools.lru_cache(maxsize=8192)
def when(value: str | float | None, seconds: bool = False) -> str:
    """An ISO timestamp (or epoch seconds) as `2026-11-25 14:05 UTC` (`14:05:09` with
    `seconds`): one zone for everyone, whatever the server's or the browser's."""
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
    return moment.astimezone(UTC).strftime(
        "%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC"
    )


def clock_time(value: float | None) -> str:
    """Epoch seconds as the time of day, `14:05:30 UTC` (a wait of seconds or minutes)."""
    if value is None:
        return "\u2014"
    return datetime.fromtimestamp(value, UTC).strftime("%H:%M:%S UTC")


@functools.lru_cache(maxsize=8192)
def when_html(value: str | float | None, seconds: bool = False) -> Markup:
    """`when`, with its date and its time each kept on one line (a date never breaks at its
    hyphens, "2026-" / "11-26")."""
    day, _, rest = when(value, seconds).partition(" ")
    html = f'<span class="nowrap">{escape(day)}</span>'
    if rest:
        html += f' <span class="nowrap">{escape(rest)}</span>'
    return Markup(html)


def iso_utc(value: float) -> str:
    """Epoch seconds as an ISO 8601 UTC timestamp (`2026-11-25T14:05:09Z`), for `<time>`."""
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(seconds: float | None) -> str:
    """`2700` -> `45 minutes`; short waits in seconds."""
    if seconds is None:
        return ""
    if seconds < 90:
        return f"{max(1, round(seconds))} seconds"
    minutes = round(seconds / 60)
    return f"{minutes} minutes" if minutes < 120 else f"{round(minutes / 60)} hours"


def first_sentence(text: str) -> str:
    """The first sentence of `text` (a list row has room for one, never for half of one)."""
    head, dot, _ = text.partition(". ")
    return head + "." if dot else text


FILTERS = {
    "portal_domain": portal_domain,
    "money": money,
    "when": when,
    "when_html": when_html,
    "clock_time": clock_time,
    "iso_utc": iso_utc,
    "duration": duration,
    "first_sentence": first_sentence,
}
