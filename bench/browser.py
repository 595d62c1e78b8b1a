"""The harness's HTTP side: a signed-in demo user who sets up state through the app's own routes,
and a browser tab that polls a region the way htmx does.

`Browser` signs in (`GET /signin` for the CSRF token, `POST /signin`), chooses banks, continues
and finishes setup with plain form posts (the no-JavaScript path), so the state a measurement
needs is made exactly as a customer makes it, on whatever store and Waycore the app runs on.

`Tab` opens a page, finds the polled region (`hx-get` + `hx-trigger="load delay:Ns"`), and then
does what htmx does with it: wait the delay, GET the region with `HX-Request`/`HX-Target`, swap
in the answer and follow its trigger again, until the answer navigates (`HX-Location` /
`HX-Redirect`), stops polling (no trigger, or 286), or the tab is closed. Whatever the app does
(a fixed delay, an immediate re-poll of a held request, a retry after an error) is followed from
the markup it returns, not assumed here.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser

import httpx

SESSION_COOKIE = "onboarding_session"
CSRF_PATTERN = re.compile(r'name="csrf_token" value="([^"]+)"')
CONNECTION_PATTERN = re.compile(r"/connections/(conn_[A-Za-z0-9]+)")
DRAFT_PATTERN = re.compile(r"/connections/drafts/([A-Za-z0-9_-]+)")
TRIGGER_DELAY = re.compile(r"delay:(\d+(?:\.\d+)?)(ms|s)?")
TRIGGER_EVERY = re.compile(r"every\s+(\d+(?:\.\d+)?)(ms|s)?")
#: htmx's "stop polling" status.
STOP_POLLING = 286
#: Generous: a long-poll may hold a request for tens of seconds.
TIMEOUT = httpx.Timeout(120.0, connect=10.0)


class SetupError(RuntimeError):
    """The app did not answer a setup step the way the journey expects."""


class _Region(HTMLParser):
    """The attributes of the first element with a given id."""

    def __init__(self, element_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.element_id = element_id
        self.attrs: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.attrs is None and dict(attrs).get("id") == self.element_id:
            self.attrs = {k: v or "" for k, v in attrs}


def region_attrs(html: str, element_id: str) -> dict[str, str] | None:
    """The attributes of the element `id=element_id` in `html`, or None."""
    parser = _Region(element_id)
    parser.feed(html)
    return parser.attrs


def _seconds(value: str, unit: str | None) -> float:
    return float(value) / 1000 if unit == "ms" else float(value)


def trigger_delay(trigger: str) -> float | None:
    """When htmx fires `hx-trigger` again on a swapped-in element: `load delay:5s` -> 5,
    `load` -> 0, `every 5s` -> 5; None for a trigger that is not a timed poll."""
    for pattern in (TRIGGER_DELAY, TRIGGER_EVERY):
        match = pattern.search(trigger)
        if match:
            return _seconds(match.group(1), match.group(2))
    if re.search(r"\bload\b", trigger):
        return 0.0
    return None


def navigation(response: httpx.Response) -> str | None:
    """Where an answer sends the browser (303 Location, HX-Location or HX-Redirect), if
    anywhere."""
    for header in ("hx-location", "hx-redirect"):
        value: str | None = response.headers.get(header)
        if value:
            return value
    return response.headers.get("location") if response.is_redirect else None


class Browser:
    """One browser of a demo user: its own cookie jar, the CSRF token of its session."""

    def __init__(self, base_url: str, cookies: httpx.Cookies | None = None, csrf: str = "") -> None:
        self.base_url = base_url
        self.http = httpx.AsyncClient(base_url=base_url, cookies=cookies, timeout=TIMEOUT)
        self.csrf = csrf

    async def aclose(self) -> None:
        await self.http.aclose()

    def on(self, base_url: str) -> Browser:
        """The same signed-in browser talking to another app instance."""
        return Browser(base_url, httpx.Cookies(self.http.cookies), self.csrf)

    @property
    def cookie_header(self) -> str:
        value = self.http.cookies.get(SESSION_COOKIE)
        if not value:
            raise SetupError("not signed in: no session cookie")
        return f"{SESSION_COOKIE}={value}"

    def _remember_csrf(self, response: httpx.Response) -> None:
        match = CSRF_PATTERN.search(response.text)
        if match:
            self.csrf = match.group(1)

    async def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        response = await self.http.get(path, headers=headers)
        self._remember_csrf(response)
        return response

    async def post_form(self, path: str, data: dict[str, str]) -> httpx.Response:
        return await self.http.post(path, data={**data, "csrf_token": self.csrf})

    async def sign_in(self, user_id: str) -> None:
        await self.get("/signin")
        response = await self.post_form("/signin", {"user_id": user_id})
        if response.status_code != 303:
            raise SetupError(f"sign-in as {user_id} answered {response.status_code}")
        await self.get(response.headers["location"])  # the new session's CSRF token

    async def _post_expecting_redirect(self, path: str, data: dict[str, str]) -> str:
        """POST a form and return where it redirected; retries while the tenant's Waycore
        entity is still being resolved in the background (503)."""
        for _ in range(20):
            response = await self.post_form(path, data)
            if response.status_code == 303:
                return response.headers["location"]
            if response.status_code != 503:
                break
            await asyncio.sleep(0.25)
        raise SetupError(f"POST {path} answered {response.status_code}: {response.text[:300]}")

    async def choose_bank(self, institution_id: str) -> str:
        """Pick a listed bank, starting a new local draft; returns the draft id."""
        location = await self._post_expecting_redirect(
            "/connections/drafts", {"institution_id": institution_id}
        )
        match = DRAFT_PATTERN.search(location)
        if not match:
            raise SetupError(f"choosing {institution_id} went to {location}")
        return match.group(1)

    async def start_listed(self, institution_id: str) -> str:
        """Choose a listed bank and continue; returns the Waycore connection id."""
        draft_id = await self.choose_bank(institution_id)
        location = await self._post_expecting_redirect(
            "/connections/continue", {"draft_id": draft_id, "mode": "listed"}
        )
        return _connection_id(location)

    async def start_unlisted(self, bank_name: str, portal_url: str) -> str:
        location = await self._post_expecting_redirect(
            "/connections/continue",
            {"mode": "unlisted", "bank_name": bank_name, "portal_url": portal_url},
        )
        return _connection_id(location)

    async def finish(self, connection_id: str) -> str:
        """Finish setup (no bank credentials); returns where the app sent the browser."""
        return await self._post_expecting_redirect(
            f"/connections/{connection_id}/finish", {"confirm_active": "yes", "accept_terms": "yes"}
        )

    async def activating_connection(self, portal_url: str | None = None) -> str:
        """A connection left waiting on the activation screen: the slow-activation scenario
        bank (listed), or an unlisted bank on one of its portal URLs (each URL its own
        connection)."""
        if portal_url is None:
            connection_id = await self.start_listed("scenario_slow")
        else:
            connection_id = await self.start_unlisted("Bench Slow Bank", portal_url)
        await self.finish(connection_id)
        return connection_id

    async def ready_connection(self, institution_id: str, timeout: float = 60.0) -> str:
        """A connection that has activated, and whose first sync has ended."""
        connection_id = await self.start_listed(institution_id)
        await self.finish(connection_id)
        headers = {"HX-Request": "true", "HX-Target": "activation-status"}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = await self.get(f"/connections/{connection_id}/activation/status", headers)
            if navigation(response):
                break
            await asyncio.sleep(0.5)
        else:
            raise SetupError(f"{connection_id} did not activate within {timeout:g}s")
        while time.monotonic() < deadline:  # the first sync polls the page's sync panel
            page = await self.get(f"/connections/{connection_id}")
            if page.status_code == 200 and "after=sync" not in page.text:
                return connection_id
            await asyncio.sleep(0.5)
        return connection_id


def _connection_id(location: str) -> str:
    match = CONNECTION_PATTERN.search(location)
    if not match:
        raise SetupError(f"no connection id in {location!r}")
    return match.group(1)


@dataclass
class Answer:
    """One answer to a tab's poll."""

    sent: float
    received: float
    status: int
    navigated: str | None
    data_status: str | None


@dataclass
class Tab:
    """A browser tab holding a page with a polled region (default: the activation status)."""

    browser: Browser
    page_path: str
    region_id: str = "activation-status"
    answers: list[Answer] = field(default_factory=list)
    #: Why polling ended: "navigated", "stopped", "error ...", or None while it runs.
    ended: str | None = None
    first_status: str | None = None
    _url: str | None = None
    _delay: float | None = None

    async def open(self) -> None:
        """Load the page (a full page, as a browser does) and find the polled region."""
        response = await self.browser.get(self.page_path)
        if response.status_code != 200:
            raise SetupError(f"GET {self.page_path} answered {response.status_code}")
        attrs = region_attrs(response.text, self.region_id)
        if attrs is None or "hx-get" not in attrs:
            raise SetupError(f"{self.page_path} has no polling #{self.region_id}")
        self.first_status = attrs.get("data-status")
        self._follow(attrs)

    def _follow(self, attrs: dict[str, str] | None) -> None:
        if attrs is None or "hx-get" not in attrs:
            self._url, self._delay = None, None
            return
        self._url = attrs["hx-get"]
        self._delay = trigger_delay(attrs.get("hx-trigger", ""))

    async def run(self) -> None:
        """Poll until the region navigates or stops (cancel the task to close the tab)."""
        if self._url is None:
            await self.open()
        while self._url is not None and self._delay is not None:
            await asyncio.sleep(self._delay)
            try:
                await self.poll_once()
            except httpx.HTTPError as exc:
                self.ended = f"error {type(exc).__name__}"
                return
        self.ended = self.ended or "stopped"

    async def poll_once(self) -> Answer:
        """Send the region's request now and swap its answer in (what htmx does when the
        trigger fires)."""
        if self._url is None:
            raise SetupError("the region does not poll (any more)")
        headers = {
            "HX-Request": "true",
            "HX-Target": self.region_id,
            "HX-Trigger": self.region_id,
            "HX-Current-URL": self.browser.base_url + self.page_path,
        }
        sent = time.perf_counter()
        response = await self.browser.http.get(self._url, headers=headers)
        attrs = region_attrs(response.text, self.region_id)
        answer = Answer(
            sent,
            time.perf_counter(),
            response.status_code,
            navigation(response),
            attrs.get("data-status") if attrs else None,
        )
        self.answers.append(answer)
        if answer.navigated:
            self.ended = "navigated"
            self._follow(None)
        elif response.status_code == STOP_POLLING:
            self.ended = "stopped"
            self._follow(None)
        else:
            self._follow(attrs)
        return answer

    def first_change_after(self, moment: float) -> Answer | None:
        """The first answer received after `moment` that shows a state other than the one the
        page opened with (it navigated, or the region's `data-status` changed)."""
        for answer in self.answers:
            if answer.received < moment:
                continue
            if answer.navigated or (
                answer.data_status is not None and answer.data_status != self.first_status
            ):
                return answer
        return None
