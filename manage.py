"""Operator commands, one entry point: `python manage.py <command> ...` (`--help` lists them).

  migrate               bring the database (DATABASE_URL / DATABASE_PATH) to this code's schema;
                        `--check` only reports, exiting 1 when it is behind
  check                 settings, Waycore reachable, and each scope the key needs
  webhooks register     register this app's receiver URL for its events (prints the secret once)
  webhooks list         the registrations of the configured Waycore (secrets masked)
  webhooks test [ID]    ask Waycore to send a `test` event to a registration
  drafts purge          delete local drafts untouched for DRAFT_TTL_DAYS, and expired sessions
  events list           the host events still pending and those that went dead (`--state`)
  events retry ID...    queue dead host events again, due now (the app sends them)

Each command reads the same settings as the app (`config.load_settings`) and works on the same
store and Waycore the app is configured for. The Waycore commands need `WAYCORE_BASE_URL` (a
Waycore, or a standalone sandbox: `python -m waycore.sandbox`): the embedded sandbox lives inside
the app's process and registers its receiver itself. Exit status: 0 done, 1 a check or call
failed, 2 a usage or configuration error (one line on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from config import ConfigError, Settings, load_settings
from onboarding.operations import WEBHOOK_EVENTS, check_scopes, register_webhook
from store import Store
from store import migrate as store_migrate
from store.engine import create_engine, database_url
from views import WEBHOOK_PATH
from waycore.client import WaycoreClient
from waycore.errors import WaycoreError


@dataclass(frozen=True)
class Context:
    """What a command works with; tests replace the network to Waycore (`waycore_transport`)."""

    settings: Settings
    args: argparse.Namespace
    waycore_transport: httpx.AsyncBaseTransport | None = None


Command = Callable[[Context], Coroutine[Any, Any, int]]


class UsageError(Exception):
    """The command cannot run as asked (exit status 2, one line)."""


def out(line: str) -> None:
    sys.stdout.write(line + "\n")


@asynccontextmanager
async def waycore(ctx: Context) -> AsyncIterator[WaycoreClient]:
    """The configured Waycore's client (never the embedded sandbox: see the module doc)."""
    settings = ctx.settings
    if settings.uses_embedded_sandbox:
        raise UsageError(
            "no WAYCORE_BASE_URL: the app runs its embedded sandbox, which registers the receiver "
            "itself; set WAYCORE_BASE_URL (and WAYCORE_API_KEY) to use this command"
        )
    if settings.waycore_api_key is None:
        raise UsageError("WAYCORE_API_KEY is not set")
    assert settings.waycore_base_url is not None
    client = WaycoreClient.create(
        settings.waycore_base_url,
        str(settings.waycore_api_key),
        timeout=settings.waycore_timeout_seconds,
        transport=ctx.waycore_transport,
    )
    try:
        yield client
    finally:
        await client.aclose()


# ---------------------------------------------------------------------------- migrate


async def migrate(ctx: Context) -> int:
    engine = create_engine(database_url(ctx.settings.database))
    try:
        if ctx.args.check:
            current = await store_migrate.current(engine)
            head = store_migrate.head()
            out(f"database at revision {current or '(none)'}, this code needs {head}")
            return 0 if current == head else 1
        before, after = await store_migrate.upgrade(engine)
    finally:
        await engine.dispose()
    if before == after:
        out(f"database already at revision {after}")
    else:
        out(f"database migrated from revision {before or '(none)'} to {after}")
    return 0


# ---------------------------------------------------------------------------- check


def _settings_lines(settings: Settings) -> list[str]:
    lines = ["ok    SECRET_KEY is set"]
    if settings.uses_embedded_sandbox:
        lines.append("ok    Waycore: the embedded sandbox (no WAYCORE_BASE_URL)")
    else:
        lines.append(f"ok    Waycore: {settings.waycore_base_url}")
    contact = " and ".join(
        value for value in (settings.support_url, settings.support_email) if value
    )
    lines.append(
        f"ok    support contact: {contact}"
        if contact
        else "note  no SUPPORT_URL or SUPPORT_EMAIL: pages show a reference without a contact"
    )
    lines.append(
        "ok    Waycore webhooks: WAYCORE_WEBHOOK_SECRET is set"
        if settings.webhook_secret is not None
        else "note  no WAYCORE_WEBHOOK_SECRET: the receiver is off (polling still works)"
    )
    lines.append(
        f"ok    host events go to {settings.host_events_url} (signed)"
        if settings.host_events_url
        else "note  no HOST_EVENTS_URL: host events are only logged"
    )
    return lines


async def check(ctx: Context) -> int:
    """Settings, then (with a configured Waycore) reachability and each scope of the key."""
    for line in _settings_lines(ctx.settings):
        out(line)
    if ctx.settings.uses_embedded_sandbox:
        out("ok    the embedded sandbox's key has every scope; nothing to reach")
        return 0
    if ctx.settings.waycore_api_key is None:
        out("FAIL  WAYCORE_API_KEY is not set")
        return 1
    async with waycore(ctx) as client:
        checks = await check_scopes(client)
    if all(c.result in ("error",) for c in checks):
        out(f"FAIL  Waycore is not reachable: {checks[0].detail}")
        return 1
    if any(c.result == "unauthorized" for c in checks):
        said = next(c.detail for c in checks if c.result == "unauthorized")
        out(f"FAIL  Waycore refused the API key (401): {said}")
        return 1
    out("ok    Waycore is reachable and accepts the key")
    for c in checks:
        scope = c.probe.scope
        if c.result == "ok":
            out(f"ok    scope {scope}")
        elif c.result == "missing":
            level = "FAIL" if c.probe.required else "note"
            use = "" if c.probe.required else " (only `manage.py webhooks` needs it)"
            out(f"{level}  scope {scope} is missing{use}: Waycore answered {c.detail}")
        else:
            out(f"FAIL  scope {scope} could not be checked: {c.detail}")
    return 0 if all(c.ok for c in checks) else 1


# ---------------------------------------------------------------------------- webhooks


def _receiver_url(ctx: Context) -> str:
    url: str | None = ctx.args.url or ctx.settings.webhook_url
    if not url:
        raise UsageError(
            f"give the receiver's public URL (--url https://…{WEBHOOK_PATH}) or set WEBHOOK_URL"
        )
    return url


async def webhooks_register(ctx: Context) -> int:
    url = _receiver_url(ctx)
    async with waycore(ctx) as client:
        secret = await register_webhook(client, url)
        registered = [w for w in await client.list_webhooks() if w.url == url]
    out(f"registered {registered[0].id if registered else ''} -> {url}")
    out(f"events: {', '.join(WEBHOOK_EVENTS)}")
    # The signing secret is shown by Waycore only now; the app needs it to verify deliveries.
    out(f"WAYCORE_WEBHOOK_SECRET={secret}")
    out("Put that line in the app's environment (or .env) and restart it; it is not shown again.")
    return 0


async def webhooks_list(ctx: Context) -> int:
    async with waycore(ctx) as client:
        hooks = await client.list_webhooks()
    if not hooks:
        out("no webhook registrations")
    for hook in hooks:
        state = "active" if hook.active else "inactive"
        out(f"{hook.id}  {state}  {hook.url}  events: {', '.join(hook.events)}")
    return 0


async def webhooks_test(ctx: Context) -> int:
    async with waycore(ctx) as client:
        webhook_id = ctx.args.webhook_id
        if not webhook_id:
            url = _receiver_url(ctx)
            matching = [w for w in await client.list_webhooks() if w.url == url]
            if not matching:
                raise UsageError(f"no registration for {url}: run `webhooks register` first")
            webhook_id = matching[0].id
        event_id = await client.test_webhook(webhook_id)
    out(f"Waycore queued a test event{f' {event_id}' if event_id else ''} for {webhook_id}")
    return 0


# ---------------------------------------------------------------------------- drafts


async def drafts_purge(ctx: Context) -> int:
    settings = ctx.settings
    store = await Store.open(settings.database, draft_ttl_days=settings.draft_ttl_days)
    try:
        removed = await store.purge_expired()
    finally:
        await store.close()
    out(f"purged {removed} expired draft(s) (older than {settings.draft_ttl_days} days)")
    return 0


# ---------------------------------------------------------------------------- host events

EVENT_STATES = ("pending", "dead", "delivered")


@asynccontextmanager
async def store(ctx: Context) -> AsyncIterator[Store]:
    settings = ctx.settings
    opened = await Store.open(settings.database, draft_ttl_days=settings.draft_ttl_days)
    try:
        yield opened
    finally:
        await opened.close()


def _utc(moment: float | None) -> str:
    if moment is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


async def events_list(ctx: Context) -> int:
    """The outbox's events in the states asked for (default: pending and dead), newest first."""
    chosen: str | None = ctx.args.state
    states: tuple[str, ...] = (
        ("pending", "dead") if chosen is None else EVENT_STATES if chosen == "all" else (chosen,)
    )
    async with store(ctx) as opened:
        queued = await opened.host_events(states, limit=ctx.args.limit)
    if not queued:
        out(f"no {' or '.join(states)} host events")
    for event in queued:
        due = _utc(event.delivered_at if event.state == "delivered" else event.due_at)
        out(
            f"{event.event_id}  {event.state:<9}  {event.type}  tenant={event.tenant_id or '-'}"
            f"  attempts={event.attempts}  {'delivered' if event.state == 'delivered' else 'due'}"
            f"={due}  last={event.last_error or '-'}"
        )
    return 0


async def events_retry(ctx: Context) -> int:
    """Dead events are pending again, due now: the app's sender (any instance) sends them."""
    failed = 0
    async with store(ctx) as opened:
        for event_id in ctx.args.event_ids:
            if await opened.retry_host_event(event_id, time.time()):
                out(f"{event_id} queued again")
            else:
                failed += 1
                sys.stderr.write(f"manage.py: {event_id} is not a dead host event\n")
    if not ctx.settings.host_events_url:
        out("note  no HOST_EVENTS_URL: the app sends queued events only once it is set")
    return 1 if failed else 0


# ---------------------------------------------------------------------------- entry point


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="manage.py", description=__doc__.split("\n")[0])
    commands = top.add_subparsers(dest="command", required=True, metavar="command")

    migrate_command = commands.add_parser("migrate", help="migrate the database to this code")
    migrate_command.add_argument(
        "--check", action="store_true", help="only report; exit 1 if a migration is due"
    )
    migrate_command.set_defaults(run=migrate)

    commands.add_parser("check", help="settings, Waycore reachable, the key's scopes").set_defaults(
        run=check
    )

    webhooks = commands.add_parser("webhooks", help="Waycore webhook registrations")
    actions = webhooks.add_subparsers(dest="action", required=True, metavar="action")
    register = actions.add_parser("register", help="register the receiver for the app's events")
    register.add_argument("--url", help="the receiver's public URL (default: WEBHOOK_URL)")
    register.set_defaults(run=webhooks_register)
    actions.add_parser("list", help="list registrations").set_defaults(run=webhooks_list)
    test = actions.add_parser("test", help="send a test event (POST /v1/webhooks/{id}/test)")
    test.add_argument("webhook_id", nargs="?", help="default: the registration of --url")
    test.add_argument("--url", help="the receiver's public URL (default: WEBHOOK_URL)")
    test.set_defaults(run=webhooks_test)

    drafts = commands.add_parser("drafts", help="local drafts").add_subparsers(
        dest="action", required=True, metavar="action"
    )
    drafts.add_parser("purge", help="delete expired drafts and sessions").set_defaults(
        run=drafts_purge
    )

    events = commands.add_parser("events", help="host events (HOST_EVENTS_URL) not delivered")
    event_actions = events.add_subparsers(dest="action", required=True, metavar="action")
    listing = event_actions.add_parser("list", help="pending and dead events")
    listing.add_argument(
        "--state",
        choices=[*EVENT_STATES, "all"],
        help="only events in this state (default: pending and dead)",
    )
    listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    listing.set_defaults(run=events_list)
    retry = event_actions.add_parser("retry", help="queue dead events again, due now")
    retry.add_argument("event_ids", nargs="+", metavar="EVENT_ID", help="hev_…")
    retry.set_defaults(run=events_retry)
    return top


async def run(
    argv: Sequence[str],
    settings: Settings,
    *,
    waycore_transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """Run one command (tests call this with their own settings and transport)."""
    args = parser().parse_args(argv)
    command: Command = args.run
    try:
        return await command(Context(settings, args, waycore_transport))
    except UsageError as exc:
        sys.stderr.write(f"manage.py: {exc}\n")
        return 2
    except WaycoreError as exc:
        sys.stderr.write(f"manage.py: Waycore call failed: {exc}\n")
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser().parse_args(args)  # usage errors (and --help) before the settings are read
    try:
        settings = load_settings()
    except ConfigError as exc:
        sys.stderr.write(f"manage.py: configuration error: {exc}\n")
        return 2
    return asyncio.run(run(args, settings))


if __name__ == "__main__":
    sys.exit(main())
