"""The four measurements, each setting up its own state through the app's routes.

1. `ratios`: requests per second of four app routes, each over the bare endpoint's (measured
   before and after them, in the same run, on the same uvicorn settings), and of the poll's
   answer given by the app's stack with no work behind it (`bench.stack`).
2. `waiting_users`: N users, each polling the activation fragment every poll interval (+/-
   jitter), spread over K waiting connections with one session each: latency, offered vs served
   requests per second, slow answers, unanswered requests and errors.
3. `upstream_calls`: `GET /v1/connections/{id}` calls reaching Waycore (a standalone sandbox's
   request record) per connection per poll interval, with 1, 5 and 50 tabs watching it, with the
   webhook receiver off and on, on one or two app instances.
4. `webhook_to_page`: a tab holds the activation screen; the connection's status is changed
   through the sandbox's control API (which delivers the signed webhook to the app); the time
   until the tab's answer shows it.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from bench import wrk
from bench.browser import Browser, SetupError, Tab, navigation
from bench.processes import (
    ROOT,
    Postgres,
    Processes,
    Service,
    Upstream,
    free_port,
    raise_open_file_limit,
)

T = TypeVar("T")

#: Demo users (host.py): an Acme admin for connections, a Globex admin for the drafts list.
ACME_USER = "u-alice"
GLOBEX_USER = "u-dana"
#: Listed banks whose connections activate normally.
READY_BANK = "chase"
DRAFT_BANKS = ("chase", "hsbc_uk", "barclays", "wells_fargo", "bank_of_america", "natwest")
#: Portal-only connections on this host take the slow-activation scenario (docs/sandbox.md); a
#: distinct path is a distinct connection.
SLOW_PORTAL = "https://slow.scenario.test/bench/{}"
HTMX_POLL = {"HX-Request": "true", "HX-Target": "activation-status"}
HTMX_SEARCH = {"HX-Request": "true", "HX-Target": "institution-results"}
WEBHOOK_EVENTS = ["connection.status_changed", "transactions.sync_available"]


@dataclass(frozen=True)
class Options:
    threads: int = 1
    connections: int = 50
    duration: float = 5.0
    warmup: float = 1.0
    rounds: int = 3
    search_query: str = "bank"
    drafts: int = 1000
    upstream: str = "embedded"
    users: tuple[int, ...] = (10_000,)
    users_duration: float = 60.0
    waiting_connections: int = 100
    jitter: float = 0.1
    connect_grace: float = 3.0
    slow_seconds: float = 2.0
    wrk_timeout: float = 30.0
    poll_seconds: int = 5
    #: How long the app holds a poll that asks to wait for a change (the app's default).
    long_poll_seconds: float = 25.0
    tabs: tuple[int, ...] = (1, 5, 50)
    tabs_window: float = 30.0
    webhook_trials: int = 10
    database_url: str | None = None
    #: A throwaway Postgres cluster, a fresh database for each group's app instances.
    postgres: bool = False
    #: Two instances on one SQLite file (WAL), where no shared database server is at hand.
    shared_sqlite: bool = False


@dataclass
class Stores:
    """Where app instances keep their state: by default a SQLite file of their own; with a
    given `DATABASE_URL`, that shared database; with a throwaway Postgres cluster, a fresh
    database for each group's instances."""

    database_url: str | None = None
    postgres: Postgres | None = None

    @property
    def shared(self) -> bool:
        return bool(self.database_url or self.postgres)

    def url_for(self, label: str) -> str | None:
        if self.postgres is not None:
            return self.postgres.create_database(label.replace("-", "_"))
        return self.database_url

    def describe(self) -> str:
        if self.postgres is not None:
            return "Postgres (a throwaway cluster; a fresh database per group)"
        if self.database_url:
            return "the given DATABASE_URL"
        return "a SQLite file per app instance"


async def gather_limited(limit: int, jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run `jobs` with at most `limit` at a time, results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(one(job) for job in jobs)))


# --- 1. ratios -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    base_url: str
    path: str
    headers: dict[str, str]
    #: A fragment of HTML a correct answer contains.
    marker: str


@dataclass
class RatioRow:
    name: str
    path: str
    rps: float
    ratio: float | None
    ratios: list[float]
    rps_runs: list[float]
    p50_ms: float
    p99_ms: float
    body_bytes: int
    non_2xx: int
    socket_errors: int
    note: str = ""


@dataclass
class RatiosResult:
    settings: dict[str, Any]
    rows: list[RatioRow]
    bare_rps: float


async def _check(target: Target) -> tuple[int, str]:
    """One request as wrk will send it: it must answer 200 with the expected content."""
    async with httpx.AsyncClient(base_url=target.base_url, timeout=30.0) as http:
        response = await http.get(target.path, headers=target.headers)
    if response.status_code != 200 or navigation(response) or target.marker not in response.text:
        raise SetupError(
            f"{target.name}: GET {target.path} answered {response.status_code}"
            f" {navigation(response) or ''} {response.text[:300]!r}"
        )
    return len(response.content), response.text


async def _wrk(base_url: str, load: wrk.Load, workdir: Path, name: str) -> wrk.WrkResult:
    return await wrk.run(base_url, load, workdir, name)


async def _measure_target(
    target: Target, opts: Options, workdir: Path, name: str
) -> tuple[wrk.WrkResult, int, str]:
    size, text = await _check(target)
    request = [(target.path, target.headers)]
    if opts.warmup > 0:
        warm = wrk.Load(request, opts.threads, opts.connections, opts.warmup)
        await drain(await _wrk(target.base_url, warm, workdir, name + "-warmup"))
    load = wrk.Load(request, opts.threads, opts.connections, opts.duration)
    result = await _wrk(target.base_url, load, workdir, name)
    await drain(result)
    return result, size, text


async def drain(result: wrk.WrkResult, cap: float = 60.0) -> None:
    """Wait for the requests wrk left in flight: the server finishes them after wrk has gone
    (a handler is not cancelled when its client disconnects), and the next run must not pay
    for them."""
    if result.unanswered:
        await asyncio.sleep(min(cap, 0.2 + result.unanswered / max(result.rps, 1.0)))


def start_app(
    procs: Processes,
    opts: Options,
    name: str,
    *,
    upstream: Upstream | None = None,
    webhook_secret: str | None = None,
    port: int | None = None,
    database_url: str | None = None,
    database_path: str | None = None,
) -> Service:
    env = procs.app_env(
        port or free_port(),
        name=name,
        poll_seconds=opts.poll_seconds,
        long_poll_seconds=opts.long_poll_seconds,
        upstream=upstream,
        webhook_secret=webhook_secret,
        database_url=database_url,
        database_path=database_path,
    )
    if database_url:
        migrate(env)
    return procs.start_app(name, env)


def migrate(env: dict[str, str]) -> None:
    """Run the store's migrations when the operator CLI has a `migrate` command (a shared
    Postgres store is migrated by an operator step, not at start-up)."""
    manage = [sys.executable, "manage.py"]
    listed = subprocess.run(
        [*manage, "--help"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if "migrate" in listed.stdout:
        subprocess.run([*manage, "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)


async def main_app(
    procs: Processes, opts: Options, stores: Stores
) -> tuple[Service, Upstream | None]:
    """The app measured by groups 1 and 2: the embedded sandbox (the default), or a
    standalone one over HTTP."""
    upstream = None
    if opts.upstream == "standalone":
        _, upstream = procs.start_sandbox("sandbox-main")
    url = stores.url_for("bench-main")
    return start_app(procs, opts, "app-main", upstream=upstream, database_url=url), upstream


async def seed_drafts(browser: Browser, count: int) -> None:
    banks = DRAFT_BANKS

    def job(i: int) -> Callable[[], Awaitable[str]]:
        return lambda: browser.choose_bank(banks[i % len(banks)])

    await gather_limited(4, [job(i) for i in range(count)])


#: The row of the poll answered by the app's stack alone (`bench.stack`).
STACK_TARGET = "activation poll, the app's stack alone"


def start_stack(procs: Processes, app: Service, answer: str, workdir: Path) -> Service:
    """A second instance of the app on the same database (the same sessions and connections),
    its activation status view answering `answer` with no work (`bench.stack`)."""
    body = workdir / "stack-answer.html"
    body.write_text(answer, encoding="utf-8")
    env = dict(app.env)
    env.update(
        PORT=str(free_port()),
        BENCH_STACK_BODY=str(body),
        SANDBOX_DATABASE=str(workdir / "app-stack-sandbox.sqlite3"),
        WEBHOOK_URL="",
        WAYCORE_WEBHOOK_SECRET="",
    )
    return procs.start_app("app-stack", env, module="bench.stack")


#: The row of the bare endpoint writing uvicorn's access line (`BENCH_BARE_ACCESS_LOG`).
LOGGED_BARE_TARGET = "bare endpoint with uvicorn's access line"


async def ratios(procs: Processes, app: Service, opts: Options, workdir: Path) -> RatiosResult:
    bare = procs.start_bare()
    logged_bare = procs.start_bare("bare-logged", access_log=True)
    stack: Service | None = None
    alice = Browser(app.url)
    dana = Browser(app.url)
    try:
        await alice.sign_in(ACME_USER)
        slow_id = await alice.activating_connection()
        ready_id = await alice.ready_connection(READY_BANK)
        cookie = {"Cookie": alice.cookie_header}
        poll_path = f"/connections/{slow_id}/activation/status"
        targets = [
            Target("activation poll fragment", app.url, poll_path, cookie | HTMX_POLL, "hx-get"),
            Target("connections list page", app.url, "/connections", cookie, "<html"),
            Target(
                "bank-search fragment",
                app.url,
                f"/connections/institutions?q={opts.search_query}",
                cookie | HTMX_SEARCH,
                'id="institution-results"',
            ),
            Target("ready connection page", app.url, f"/connections/{ready_id}", cookie, "<html"),
        ]
        if opts.drafts:
            await dana.sign_in(GLOBEX_USER)
            await seed_drafts(dana, opts.drafts)
            targets.append(
                Target(
                    f"connections list page, {opts.drafts:,} drafts",
                    app.url,
                    "/connections",
                    {"Cookie": dana.cookie_header},
                    "<html",
                )
            )
        # The poll's own answer, answered by the app's stack with no work behind it.
        stack = start_stack(procs, app, (await _check(targets[0]))[1], workdir)
        targets.insert(
            1,
            Target(STACK_TARGET, stack.url, poll_path, cookie | HTMX_POLL, "hx-get"),
        )
        targets.append(Target(LOGGED_BARE_TARGET, logged_bare.url, "/", {}, "Hello"))
        bare_target = Target("bare endpoint", bare.url, "/", {}, "Hello")
        bare_runs = [await _measure_target(bare_target, opts, workdir, "ratio-bare-0")]
        rounds: list[list[tuple[wrk.WrkResult, int, str]]] = []
        for r in range(opts.rounds):
            rounds.append(
                [
                    await _measure_target(target, opts, workdir, f"ratio-{r}-{i}")
                    for i, target in enumerate(targets)
                ]
            )
            name = f"ratio-bare-{r + 1}"
            bare_runs.append(await _measure_target(bare_target, opts, workdir, name))
        # The slow scenario activates after 10 minutes: the poll must still have been waiting.
        await _check(targets[0])
    finally:
        await alice.aclose()
        await dana.aclose()
        procs.stop(bare)
        procs.stop(logged_bare)
        if stack is not None:
            procs.stop(stack)
    bare_rps = [result.rps for result, _, _ in bare_runs]
    rows = [_ratio_row(bare_target, [result for result, _, _ in bare_runs], None, bare_runs[0][1])]
    for i, target in enumerate(targets):
        results = [measured[i][0] for measured in rounds]
        # Each round's figure over the mean of the bare runs just before and after it.
        ratios = [
            result.rps / statistics.mean(bare_rps[r : r + 2]) for r, result in enumerate(results)
        ]
        row = _ratio_row(target, results, ratios, rounds[0][i][1])
        if target.name.startswith("connections list page,"):
            row.note = f"{rounds[0][i][2].count('/connections/drafts/'):,} draft links on the page"
        if target.name == STACK_TARGET:
            row.note = "the poll's answer, no work behind it: the most the poll could reach"
        if target.name == LOGGED_BARE_TARGET:
            row.note = "as `python server.py` served before the app wrote its own line"
        rows.append(row)
    settings = {
        "threads": opts.threads,
        "connections": opts.connections,
        "duration_seconds": opts.duration,
        "warmup_seconds": opts.warmup,
        "rounds": opts.rounds,
        "upstream": opts.upstream,
    }
    return RatiosResult(settings, rows, statistics.mean(bare_rps))


def _ratio_row(
    target: Target, results: list[wrk.WrkResult], ratios: list[float] | None, size: int
) -> RatioRow:
    """Medians over the rounds; every round's ratio kept."""
    return RatioRow(
        name=target.name,
        path=target.path,
        rps=statistics.median(r.rps for r in results),
        ratio=statistics.median(ratios) if ratios else None,
        ratios=ratios or [],
        rps_runs=[r.rps for r in results],
        p50_ms=statistics.median(r.latency_ms["p50"] for r in results),
        p99_ms=statistics.median(r.latency_ms["p99"] for r in results),
        body_bytes=size,
        non_2xx=sum(r.errors["status"] for r in results),
        socket_errors=sum(r.socket_errors for r in results),
    )


# --- 2. waiting users ------------------------------------------------------------------------


@dataclass
class UsersRow:
    users: int
    waiting_connections: int
    period_seconds: float
    duration_seconds: float
    offered_rps: float
    served_rps: float
    latency_ms: dict[str, float]
    slow: int
    unanswered: int
    errors: dict[str, int]
    statuses: dict[int, int]
    open_file_limit: int


async def _waiting_pair(app: Service, index: int) -> tuple[str, str]:
    """A fresh session and a connection of its own left waiting on activation."""
    browser = Browser(app.url)
    try:
        await browser.sign_in(ACME_USER)
        connection_id = await browser.activating_connection(SLOW_PORTAL.format(f"w{index}"))
        return connection_id, browser.cookie_header
    finally:
        await browser.aclose()


async def waiting_users(
    app: Service, opts: Options, workdir: Path, progress: Callable[[str], None]
) -> list[UsersRow]:
    def pair(i: int) -> Callable[[], Awaitable[tuple[str, str]]]:
        return lambda: _waiting_pair(app, i)

    pairs = await gather_limited(4, [pair(i) for i in range(opts.waiting_connections)])
    requests = [
        (f"/connections/{cid}/activation/status", {"Cookie": cookie} | HTMX_POLL)
        for cid, cookie in pairs
    ]
    first = requests[0]
    await _check(Target("activation poll fragment", app.url, first[0], first[1], "hx-get"))
    rows = []
    for users in opts.users:
        limit = raise_open_file_limit(users + 1024)
        progress(f"  {users:,} users: {opts.users_duration:g} s of wrk...")
        load = wrk.Load(
            requests,
            opts.threads,
            users,
            opts.users_duration,
            period_seconds=opts.poll_seconds,
            jitter=opts.jitter,
            grace_seconds=opts.connect_grace,
            timeout_seconds=opts.wrk_timeout,
            slow_seconds=opts.slow_seconds,
            count_statuses=True,
        )
        result = await _wrk(app.url, load, workdir, f"users-{users}")
        rows.append(
            UsersRow(
                users=users,
                waiting_connections=len(pairs),
                period_seconds=opts.poll_seconds,
                duration_seconds=result.duration_seconds,
                offered_rps=users / opts.poll_seconds,
                # Over the time the users poll: the connect grace has no requests.
                served_rps=result.requests / max(1.0, result.duration_seconds - opts.connect_grace),
                latency_ms=result.latency_ms,
                slow=result.slow,
                unanswered=result.unanswered,
                errors=result.errors,
                statuses=result.statuses,
                open_file_limit=limit,
            )
        )
        if users != opts.users[-1]:
            await drain(result)
    return rows


# --- 3 and 4. upstream calls and webhook to page ---------------------------------------------


class SandboxControl:
    """The standalone sandbox's control API and request record (root key)."""

    def __init__(self, upstream: Upstream) -> None:
        self.http = httpx.AsyncClient(
            base_url=upstream.url,
            headers={"Authorization": f"Bearer {upstream.root_key}"},
            timeout=30.0,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def register_webhook(self, url: str) -> str:
        """What an operator does in the Waycore console: register the receiver; the signing
        secret goes into the app's `WAYCORE_WEBHOOK_SECRET`."""
        response = await self.http.post("/v1/webhooks", json={"url": url, "events": WEBHOOK_EVENTS})
        response.raise_for_status()
        secret: str = response.json()["webhook"]["secret"]
        return secret

    async def clear_requests(self) -> None:
        (await self.http.delete("/_sandbox/requests")).raise_for_status()

    async def connection_reads(self, connection_ids: Sequence[str]) -> dict[str, int]:
        """How many `GET /v1/connections/{id}` the record holds, per connection."""
        response = await self.http.get("/_sandbox/requests")
        response.raise_for_status()
        wanted = {f"/v1/connections/{cid}": cid for cid in connection_ids}
        counts = dict.fromkeys(connection_ids, 0)
        for entry in response.json()["data"]:
            cid = wanted.get(entry["path"])
            if cid is not None and entry["method"] == "GET":
                counts[cid] += 1
        return counts

    async def set_status(self, connection_id: str, status: str) -> None:
        response = await self.http.put(
            f"/_sandbox/connections/{connection_id}/status", json={"status": status}
        )
        response.raise_for_status()

    async def deliveries(self) -> dict[str, int]:
        """Webhook delivery attempts by outcome (HTTP status or error)."""
        response = await self.http.get("/_sandbox/deliveries")
        response.raise_for_status()
        outcomes: dict[str, int] = {}
        for row in response.json()["data"]:
            key = str(row.get("status") or row.get("error") or row.get("state"))
            outcomes[key] = outcomes.get(key, 0) + 1
        return outcomes


@dataclass
class Cluster:
    """One or two app instances on a standalone sandbox, and a signed-in browser on each."""

    instances: list[Service]
    browsers: list[Browser]
    receiver: bool
    notes: list[str] = field(default_factory=list)

    def browser_for(self, tab_index: int) -> Browser:
        return self.browsers[tab_index % len(self.browsers)]

    async def aclose(self) -> None:
        for browser in self.browsers:
            await browser.aclose()


async def start_cluster(
    procs: Processes,
    opts: Options,
    stores: Stores,
    upstream: Upstream,
    control: SandboxControl,
    *,
    receiver: bool,
    label: str,
) -> Cluster:
    """App instance A (and B, on a shared store), all on the standalone sandbox. With
    `receiver`, the sandbox delivers webhooks to A only; B must learn of them through the
    shared store. An instance B that does not accept A's session (no shared store) is dropped,
    with a note."""
    two = stores.shared or opts.shared_sqlite
    database_url = stores.url_for(f"bench-{label}")
    ports = [free_port() for _ in range(2 if two else 1)]
    secret = None
    if receiver:
        secret = await control.register_webhook(f"http://127.0.0.1:{ports[0]}/webhooks/waycore")
    shared = str(procs.workdir / f"{label}-shared.sqlite3") if opts.shared_sqlite else None
    instances = [
        start_app(procs, opts, f"{label}-{chr(ord('a') + i)}", upstream=upstream,
                  webhook_secret=secret, port=port, database_url=database_url,
                  database_path=shared)
        for i, port in enumerate(ports)
    ]  # fmt: skip
    signed_in = Browser(instances[0].url)
    await signed_in.sign_in(ACME_USER)
    cluster = Cluster(instances[:1], [signed_in], receiver)
    for other in instances[1:]:
        browser = signed_in.on(other.url)
        answer = await browser.get("/connections")
        if answer.status_code == 200:
            cluster.instances.append(other)
            cluster.browsers.append(browser)
        else:
            await browser.aclose()
            procs.stop(other)
            cluster.notes.append(
                f"instance B answered {answer.status_code} to a session signed in on A: the"
                " store is not shared, so only one instance was measured"
            )
    return cluster


@dataclass
class TabsRow:
    receiver: bool
    instances: int
    tabs: int
    window_seconds: float
    calls: int
    calls_per_period: float
    per_period: list[int]
    tabs_ended: list[str]


async def _open_tabs(cluster: Cluster, connection_id: str, count: int) -> list[Tab]:
    browsers = [cluster.browser_for(i) for i in range(count)]
    tabs = [Tab(browser.on(browser.base_url), page_path(connection_id)) for browser in browsers]
    await asyncio.gather(*(tab.open() for tab in tabs))
    return tabs


def page_path(connection_id: str) -> str:
    return f"/connections/{connection_id}/activation"


async def _close_tabs(tabs: Sequence[Tab], tasks: Sequence[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for tab in tabs:
        await tab.browser.aclose()


async def upstream_calls(
    cluster: Cluster, control: SandboxControl, opts: Options, tag: str
) -> list[TabsRow]:
    """1, 5 and 50 tabs, each set on its own fresh waiting connection, all at once; counts the
    upstream reads of each connection over the window, per poll interval."""
    setter = cluster.browsers[0]
    ids = [
        await setter.activating_connection(SLOW_PORTAL.format(f"{tag}-{n}-tabs")) for n in opts.tabs
    ]
    groups = [await _open_tabs(cluster, cid, n) for cid, n in zip(ids, opts.tabs, strict=True)]
    await control.clear_requests()
    tasks = [asyncio.create_task(tab.run()) for group in groups for tab in group]
    buckets: list[dict[str, int]] = []
    previous = dict.fromkeys(ids, 0)
    periods = max(1, round(opts.tabs_window / opts.poll_seconds))
    try:
        for _ in range(periods):
            await asyncio.sleep(opts.poll_seconds)
            counts = await control.connection_reads(ids)
            buckets.append({cid: counts[cid] - previous[cid] for cid in ids})
            previous = counts
    finally:
        await _close_tabs([tab for group in groups for tab in group], tasks)
    rows = []
    for cid, n, group in zip(ids, opts.tabs, groups, strict=True):
        per_period = [bucket[cid] for bucket in buckets]
        rows.append(
            TabsRow(
                receiver=cluster.receiver,
                instances=len(cluster.instances),
                tabs=n,
                window_seconds=periods * opts.poll_seconds,
                calls=sum(per_period),
                calls_per_period=sum(per_period) / periods,
                per_period=per_period,
                tabs_ended=sorted({tab.ended or "polling" for tab in group}),
            )
        )
    return rows


@dataclass
class WebhookResult:
    instances: int
    trials: int
    seen: int
    latencies_ms: list[float]
    deliveries: dict[str, int]

    def summary(self) -> dict[str, float]:
        values = sorted(self.latencies_ms)
        if not values:
            return {}
        return {
            "min": values[0],
            "median": statistics.median(values),
            "p90": values[math.ceil(len(values) * 0.9) - 1],  # nearest rank
            "max": values[-1],
        }


async def webhook_to_page(
    cluster: Cluster, control: SandboxControl, opts: Options
) -> WebhookResult:
    """Each trial: a fresh waiting connection, one tab on it (on the instance the webhook does
    not reach, when there are two), the status set to `active` through the control API at a
    random moment of the tab's poll cycle; the time until the tab's answer shows it."""
    setter = cluster.browsers[0]
    ids = [
        await setter.activating_connection(SLOW_PORTAL.format(f"webhook-{i}"))
        for i in range(opts.webhook_trials)
    ]
    holder = cluster.browsers[-1]
    tabs = [Tab(holder.on(holder.base_url), page_path(cid)) for cid in ids]
    await asyncio.gather(*(tab.open() for tab in tabs))
    tasks = [asyncio.create_task(tab.run()) for tab in tabs]
    period = opts.poll_seconds

    async def trial(tab: Tab, connection_id: str) -> float | None:
        await asyncio.sleep(random.uniform(period, 2 * period))
        changed_at = time.perf_counter()
        await control.set_status(connection_id, "active")
        deadline = changed_at + 3 * period + 30
        while time.perf_counter() < deadline and tab.ended is None:
            await asyncio.sleep(0.02)
        answer = tab.first_change_after(changed_at)
        return None if answer is None else (answer.received - changed_at) * 1000

    try:
        results = await asyncio.gather(*(trial(t, c) for t, c in zip(tabs, ids, strict=True)))
    finally:
        await _close_tabs(tabs, tasks)
    latencies = [r for r in results if r is not None]
    deliveries = await control.deliveries()
    return WebhookResult(
        instances=len(cluster.instances),
        trials=len(ids),
        seen=len(latencies),
        latencies_ms=latencies,
        deliveries=deliveries,
    )
