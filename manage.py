"""Operator commands, one entry point: `python manage.py <command> ...` (`--help` lists them).

  migrate          bring the database (DATABASE_URL / DATABASE_PATH) to this code's schema;
                   `--check` only reports, exiting 1 when it is behind
  drafts purge     delete local drafts untouched for DRAFT_TTL_DAYS, and expired sessions

Each command reads the same settings as the app (`config.load_settings`) and works on the same
store and Waycore the app is configured for.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from config import Settings, load_settings
from store import Store
from store import migrate as store_migrate
from store.engine import create_engine, database_url

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]


async def migrate(settings: Settings, args: argparse.Namespace) -> int:
    engine = create_engine(database_url(settings.database))
    try:
        if args.check:
            current = await store_migrate.current(engine)
            head = store_migrate.head()
            print(f"database at revision {current or '(none)'}, this code needs {head}")  # noqa: T201
            return 0 if current == head else 1
        before, after = await store_migrate.upgrade(engine)
    finally:
        await engine.dispose()
    if before == after:
        print(f"database already at revision {after}")  # noqa: T201
    else:
        print(f"database migrated from revision {before or '(none)'} to {after}")  # noqa: T201
    return 0


async def drafts_purge(settings: Settings, args: argparse.Namespace) -> int:
    store = await Store.open(settings.database, draft_ttl_days=settings.draft_ttl_days)
    try:
        removed = await store.purge_expired()
    finally:
        await store.close()
    print(f"purged {removed} expired draft(s) (older than {settings.draft_ttl_days} days)")  # noqa: T201
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="manage.py", description=__doc__.split("\n")[0])
    commands = top.add_subparsers(dest="command", required=True, metavar="command")

    migrate_command = commands.add_parser("migrate", help="migrate the database to this code")
    migrate_command.add_argument(
        "--check", action="store_true", help="only report; exit 1 if a migration is due"
    )
    migrate_command.set_defaults(run=migrate)

    drafts = commands.add_parser("drafts", help="local drafts").add_subparsers(
        dest="action", required=True, metavar="action"
    )
    drafts.add_parser("purge", help="delete expired drafts and sessions").set_defaults(
        run=drafts_purge
    )
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    run: Command = args.run
    return asyncio.run(run(load_settings(), args))


if __name__ == "__main__":
    sys.exit(main())
