"""Operator commands, one entry point: `python manage.py <command> ...` (`--help` lists them).

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

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]


async def drafts_purge(settings: Settings, args: argparse.Namespace) -> int:
    store = await Store.open(settings.database_path, draft_ttl_days=settings.draft_ttl_days)
    try:
        removed = await store.purge_expired()
    finally:
        await store.close()
    print(f"purged {removed} expired draft(s) (older than {settings.draft_ttl_days} days)")  # noqa: T201
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="manage.py", description=__doc__.split("\n")[0])
    commands = top.add_subparsers(dest="command", required=True, metavar="command")

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
