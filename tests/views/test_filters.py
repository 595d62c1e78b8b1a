"""Template filters: money, times in UTC, durations, portal domains."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup

from views.filters import duration, money, portal_domain, when


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        ("1234.5", "USD", "1,234.50 USD"),
        ("-1172.57", "EUR", "\u22121,172.57 EUR"),
        ("0", None, "0.00"),
        (None, "USD", "\u2014"),
        ("n/a", "USD", "n/a USD"),
        ("<b>1</b>", "USD", "<b>1</b> USD"),
        ("-5", "<i>X</i>", "\u22125.00 <i>X</i>"),
    ],
)
def test_money_reads_as_shown_and_is_safe_html(
    amount: str | None, currency: str | None, shown: str
) -> None:
    html = money(amount, currency)
    assert html.isascii()  # the page stays narrow text (see `money`)
    assert BeautifulSoup(html, "html.parser").get_text() == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("2026-11-25T14:05:09Z", "2026-11-25 14:05 UTC"),
        ("2026-11-25T15:05:00+01:00", "2026-11-25 14:05 UTC"),
        (1764079500.0, "2025-11-25 14:05 UTC"),
        (None, "\u2014"),
        ("yesterday", "yesterday"),
    ],
)
def test_when_is_always_utc(value: str | float | None, shown: str) -> None:
    assert when(value) == shown


def test_duration() -> None:
    assert duration(5) == "5 seconds"
    assert duration(2700) == "45 minutes"
    assert duration(4 * 3600) == "4 hours"


def test_portal_domain() -> None:
    assert portal_domain("https://secure.chase.com/web/auth?x=1") == "secure.chase.com"
    assert portal_domain(None) == ""
    assert portal_domain("http://[::1") == "http://[::1"  # unparseable: shown as given, no 500
