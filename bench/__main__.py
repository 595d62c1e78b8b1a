"""`python -m bench`: run the measurements and print them (see bench/README.md).

Everything runs in one go, side by side, on this machine: the figures that matter are the
ratios and counts measured in the same run, not the absolute requests per second, which drift
with whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.browser import SetupError
from bench.processes import ROOT, Processes, Upstream, raise_open_file_limit
from bench.report import Report
from bench.scenarios import Options, SandboxControl
from bench.wrk import WrkMissing, wrk_path

GROUPS = ("ratios", "users", "tabs", "webhook")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure the onboarding app side by side with a bare Starlette endpoint.",
    )
    parser.add_argument(
        "--only",
        default=",".join(GROUPS),
        help=f"comma-separated groups to run, of {', '.join(GROUPS)} (default: all)",
    )
    group = parser.add_argument_group("1. ratios to the bare endpoint")
    group.add_argument("--threads", type=int, default=defaults.threads, help="wrk threads")
    group.add_argument("--connections", type=int, default=defaults.connections)
    group.add_argument("--duration", type=float, default=defaults.duration, help="seconds")
    group.add_argument("--warmup", type=float, default=defaults.warmup, help="seconds, not counted")
    group.add_argument(
        "--rounds",
        type=int,
        default=defaults.rounds,
        help="rounds of all targets, each followed by a bare run (ratios: the median)",
    )
    group.add_argument("--search-query", default=defaults.search_query)
    group.add_argument(
        "--drafts", type=int, default=defaults.drafts, help="drafts of the second list (0: none)"
    )
    group.add_argument(
        "--upstream",
        choices=("embedded", "standalone"),
        default=defaults.upstream,
        help="Waycore of groups 1-2: the embedded sandbox (the app's default) or a standalone one",
    )
    group = parser.add_argument_group("2. waiting users")
    group.add_argument(
        "--users",
        type=_ints,
        default=defaults.users,
        help="waiting users, comma-separated for several runs (default 10000)",
    )
    group.add_argument("--users-duration", type=float, default=defaults.users_duration)
    group.add_argument(
        "--waiting-connections",
        type=int,
        default=defaults.waiting_connections,
        help="distinct waiting connections (one session each) the users are spread over",
    )
    group.add_argument("--jitter", type=float, default=defaults.jitter, help="think time +/- share")
    group.add_argument(
        "--connect-grace",
        type=float,
        default=defaults.connect_grace,
        help="seconds for wrk to open every connection before the first polls",
    )
    group.add_argument("--slow-seconds", type=float, default=defaults.slow_seconds)
    group.add_argument(
        "--poll-seconds", type=int, default=defaults.poll_seconds, help="POLL_INTERVAL_SECONDS"
    )
    group.add_argument(
        "--long-poll-seconds",
        type=float,
        default=defaults.long_poll_seconds,
        help="LONG_POLL_SECONDS: how long a poll is held waiting for a change",
    )
    group = parser.add_argument_group("3-4. upstream calls, webhook to page")
    group.add_argument("--tabs", type=_ints, default=defaults.tabs)
    group.add_argument("--tabs-window", type=float, default=defaults.tabs_window)
    group.add_argument("--webhook-trials", type=int, default=defaults.webhook_trials)
    group.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL") or None,
        help="a shared store (e.g. postgresql://...) for two app instances; default "
        "$BENCH_DATABASE_URL; without it, one instance on its own SQLite file",
    )
    group.add_argument(
        "--postgres",
        action="store_true",
        help="start a throwaway Postgres cluster (Debian's postgresql) and run every app"
        " instance on it, two per group in groups 3-4",
    )
    group.add_argument(
        "--shared-sqlite",
        action="store_true",
        help="two app instances on one SQLite file, where no shared database server is at hand",
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument(
        "--keep", action="store_true", help="keep the run's directory (logs, wrk output)"
    )
    return parser.parse_args(argv)


def options_from(args: argparse.Namespace) -> Options:
    return Options(
        threads=args.threads,
        connections=args.connections,
        duration=args.duration,
        warmup=args.warmup,
        rounds=args.rounds,
        search_query=args.search_query,
        drafts=args.drafts,
        upstream=args.upstream,
        users=args.users,
        users_duration=args.users_duration,
        waiting_connections=args.waiting_connections,
        jitter=args.jitter,
        connect_grace=args.connect_grace,
        slow_seconds=args.slow_seconds,
        poll_seconds=args.poll_seconds,
        long_poll_seconds=args.long_poll_seconds,
        tabs=args.tabs,
        tabs_window=args.tabs_window,
        webhook_trials=args.webhook_trials,
        database_url=args.database_url,
        postgres=args.postgres,
        shared_sqlite=args.shared_sqlite,
    )


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return result.stdout.strip() or "?"


def describe_machine() -> dict[str, Any]:
    version = subprocess.run([wrk_path(), "-v"], capture_output=True, text=True, check=False)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "branch": _git("rev-parse", "--abbrev-ref", "HEAD"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "wrk": (version.stdout.splitlines() or ["?"])[0].split(" Copyright")[0],
    }


async def run(groups: set[str], opts: Options, workdir: Path, report: Report) -> dict[str, Any]:
    # A stop request unwinds the run, so every child is stopped (they run in sessions of their
    # own, out of reach of a terminal's Ctrl-C).
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for stop in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(stop, task.cancel)
    results: dict[str, Any] = {"machine": describe_machine(), "options": asdict(opts)}
    report.header(results["machine"], opts)
    if "users" in groups:
        # Before any child starts: the app and wrk each hold one descriptor per user.
        raise_open_file_limit(max(opts.users, default=0) + 1024)
    with Processes(workdir) as procs:
        stores = scenarios.Stores(opts.database_url)
        if opts.postgres:
            stores.postgres = procs.start_postgres()
        report.line(f"app store: {stores.describe()}")
        if groups & {"ratios", "users"}:
            started = len(procs.services)
            app, _ = await scenarios.main_app(procs, opts, stores)
            if "ratios" in groups:
                report.section_ratios_start(opts)
                ratios = await scenarios.ratios(procs, app, opts, workdir)
                results["ratios"] = asdict(ratios)
                report.ratios(ratios)
            if "users" in groups:
                report.section_users_start(opts)
                users = await scenarios.waiting_users(app, opts, workdir, report.line)
                results["users"] = [asdict(row) for row in users]
                report.users(opts, users)
            for service in procs.services[started:]:
                procs.stop(service)
        if groups & {"tabs", "webhook"}:
            _, upstream = procs.start_sandbox()
            control = SandboxControl(upstream)
            try:
                results.update(
                    await _standalone(procs, opts, stores, upstream, control, groups, report)
                )
            finally:
                await control.aclose()
    return results


async def _standalone(
    procs: Processes,
    opts: Options,
    stores: scenarios.Stores,
    upstream: Upstream,
    control: SandboxControl,
    groups: set[str],
    report: Report,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    rows: list[scenarios.TabsRow] = []
    webhook: scenarios.WebhookResult | None = None
    notes: list[str] = []
    for receiver in (False, True) if "tabs" in groups else (True,):
        label = "receiver-on" if receiver else "receiver-off"
        cluster = await scenarios.start_cluster(
            procs, opts, stores, upstream, control, receiver=receiver, label=label
        )
        notes.extend(note for note in cluster.notes if note not in notes)
        try:
            if "tabs" in groups:
                rows.extend(await scenarios.upstream_calls(cluster, control, opts, label))
            if receiver and "webhook" in groups:
                webhook = await scenarios.webhook_to_page(cluster, control, opts)
        finally:
            await cluster.aclose()
            for instance in cluster.instances:
                procs.stop(instance)
    if "tabs" in groups:
        report.tabs(opts, stores.shared, rows, notes)
        results["tabs"] = [asdict(row) for row in rows]
    if webhook is not None:
        report.webhook(webhook)
        results["webhook"] = asdict(webhook) | {"summary": webhook.summary()}
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    groups = {g.strip() for g in args.only.split(",") if g.strip()}
    unknown = groups - set(GROUPS)
    if unknown:
        sys.stderr.write(f"unknown group(s): {', '.join(sorted(unknown))}\n")
        return 2
    opts = options_from(args)
    report = Report(sys.stdout)
    try:
        wrk_path()
    except WrkMissing as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="onboarding-bench-"))
    try:
        results = asyncio.run(run(groups, opts, workdir, report))
    except (SetupError, RuntimeError) as exc:
        sys.stderr.write(f"bench: {exc}\n(logs in {workdir})\n")
        return 1
    except (asyncio.CancelledError, KeyboardInterrupt):
        sys.stderr.write(
            f"bench: interrupted; every process it started is stopped (logs in {workdir})\n"
        )
        return 130
    report.line()
    report.load_average("at the end")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    if args.keep:
        report.line(f"\nLogs and wrk output: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
