"""Printing the figures as they come: one section per measurement, plain-text tables."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, TextIO

from bench.scenarios import (
    LOGGED_BARE_TARGET,
    Options,
    RatiosResult,
    TabsRow,
    UsersRow,
    WebhookResult,
)


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _size(count: int) -> str:
    return f"{count / 1024:,.1f} KiB" if count >= 1024 else f"{count} B"


class Report:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> None:
        """Columns sized to fit; the first `left` columns left-aligned, the rest right."""
        widths = [
            max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)
        ]
        for row in [header, *rows]:
            cells = [
                str(cell).ljust(width) if i < left else str(cell).rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            ]
            self.line("  " + "  ".join(cells).rstrip())

    def header(self, machine: dict[str, Any], opts: Options) -> None:
        self.line(
            f"Onboarding app benchmark, {machine['date']}, {machine['branch']} @ "
            f"{machine['commit']}, {machine['cpus']} CPUs, Python {machine['python']},"
            f" {machine['wrk']}"
        )
        self.load_average("at the start")

    def load_average(self, when: str) -> None:
        """Other work on the machine shows here: figures taken under a high load drift."""
        one, five, fifteen = os.getloadavg()
        self.line(f"load average {when}: {one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min)")

    def section_ratios_start(self, opts: Options) -> None:
        self.line()
        self.line(
            "1. Requests per second over a bare Starlette plain-text endpoint (same uvicorn"
            " settings)"
        )
        self.line(
            f"   wrk: {opts.threads} thread(s), {opts.connections} connections,"
            f" {opts.duration:g} s per target after {opts.warmup:g} s of warm-up;"
            f" Waycore: {opts.upstream} sandbox"
        )

    def ratios(self, result: RatiosResult) -> None:
        several = result.settings["rounds"] > 1
        rows = []
        for row in result.rows:
            spread = ""
            if several and row.ratios:
                spread = f"{min(row.ratios):.3f}-{max(row.ratios):.3f}"
            elif several:
                spread = " ".join(_n(rps) for rps in row.rps_runs)
            rows.append(
                [
                    row.name,
                    _n(row.rps),
                    "" if row.ratio is None else f"{row.ratio:.3f}",
                    *([spread] if several else []),
                    _n(row.p50_ms, 1),
                    _n(row.p99_ms, 1),
                    _size(row.body_bytes),
                    str(row.non_2xx + row.socket_errors),
                    row.note,
                ]
            )
        header = ["target", "req/s", "ratio", *(["rounds"] if several else [])]
        header += ["p50 ms", "p99 ms", "body", "errors", ""]
        self.table(header, rows)
        bare = " and ".join(_n(rps) for rps in result.rows[0].rps_runs)
        self.line(
            f"   ratio: req/s over the mean of the bare runs just before and after ({bare} req/s)"
            + ("; medians over the rounds" if several else "")
        )
        logged = next((r for r in result.rows if r.name == LOGGED_BARE_TARGET), None)
        if logged is not None and logged.ratio:
            over = [
                f"{row.name} {row.ratio / logged.ratio:.2f}"
                for row in result.rows
                if row.ratio is not None and row is not logged
            ]
            self.line(f"   over the {LOGGED_BARE_TARGET} instead: " + "; ".join(over))

    def section_users_start(self, opts: Options) -> None:
        self.line()
        self.line(
            f"2. Waiting users, each polling the activation fragment every {opts.poll_seconds} s"
            f" (+/- {opts.jitter:.0%}); the first polls spread over one interval after"
            f" {opts.connect_grace:g} s in which every connection is opened"
        )
        self.line(
            f"   spread over {opts.waiting_connections} waiting connections (one session each);"
            f" {opts.users_duration:g} s per run; wrk {opts.threads} thread(s)"
        )

    def users(self, opts: Options, rows: Sequence[UsersRow]) -> None:
        slow_seconds, wrk_timeout = opts.slow_seconds, opts.wrk_timeout
        table = []
        for row in rows:
            non_200 = sum(count for status, count in row.statuses.items() if status != 200)
            socket = row.errors["connect"] + row.errors["read"] + row.errors["write"]
            table.append(
                [
                    _n(row.users),
                    _n(row.offered_rps),
                    _n(row.served_rps),
                    _n(row.latency_ms["p50"], 1),
                    _n(row.latency_ms["p99"], 1),
                    _n(row.latency_ms["max"], 0),
                    _n(row.slow),
                    _n(row.unanswered),
                    _n(row.errors["timeout"]),
                    _n(non_200),
                    _n(socket),
                ]
            )
        header = ["users", "offered/s", "served/s", "p50 ms", "p99 ms", "max ms"]
        header += [f"> {slow_seconds:g} s", "unanswered", "timeouts", "non-200", "socket errs"]
        self.table(header, table)
        self.line(
            f"   > {slow_seconds:g} s: answered later than that; unanswered: still waiting when"
            f" the run ended; timeouts: no answer within {wrk_timeout:g} s (wrk's timeout)"
        )

    def tabs(
        self, opts: Options, shared: bool, rows: Sequence[TabsRow], notes: Sequence[str]
    ) -> None:
        self.line()
        self.line(
            f"3. Upstream GET /v1/connections/{{id}} per connection per {opts.poll_seconds} s"
            " poll interval, with tabs polling the activation screen of one connection"
        )
        instances = max((row.instances for row in rows), default=1)
        if instances > 1:
            where = "two app instances on a shared store, tabs alternating between them"
        elif shared or opts.shared_sqlite:
            where = "one app instance"
        else:
            where = (
                "one app instance: no shared store given (--database-url or --postgres; the"
                " SQLite store is per instance), so the two-instance figure is not measured"
            )
        window = rows[0].window_seconds if rows else opts.tabs_window
        self.line(f"   standalone sandbox, {window:g} s window; {where}")
        for note in notes:
            self.line(f"   {note}")
        table = [
            [
                "on, right after a webhook" if row.receiver else "off (polling only)",
                str(row.instances),
                str(row.tabs),
                f"{row.calls_per_period:.2f}",
                " ".join(str(n) for n in row.per_period),
                ", ".join(row.tabs_ended),
            ]
            for row in rows
        ]
        header = ["webhook receiver", "instances", "tabs", "calls/interval", "per interval"]
        self.table([*header, "tabs at the end"], table)

    def webhook(self, result: WebhookResult) -> None:
        self.line()
        self.line(
            "4. Webhook to page: the status set to active through the sandbox control API"
            " (which delivers the signed webhook), to the tab's first answer showing it"
        )
        where = (
            "the tab on instance B, the webhook delivered to A"
            if result.instances > 1
            else "one instance"
        )
        self.line(f"   {result.trials} trials, {where}; {result.seen} saw the change")
        summary = result.summary()
        if summary:
            self.line(
                "   ms: "
                + ", ".join(f"{name} {value:,.0f}" for name, value in summary.items())
                + "   (each: "
                + " ".join(f"{v:,.0f}" for v in sorted(result.latencies_ms))
                + ")"
            )
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(result.deliveries.items()))
        self.line(f"   webhook delivery attempts by outcome: {outcomes or 'none'}")
