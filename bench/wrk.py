"""Running wrk (Debian's `wrk`, a compiled HTTP load generator) and reading its figures.

Every run uses `bench/wrk.lua` with a small generated settings file: the requests (path and
headers, e.g. a session cookie and the htmx headers), an optional think time per request, the
"slow answer" threshold. The script prints one `BENCH-JSON` line from wrk's own latency
histogram and counters, parsed into `WrkResult`.

Latency is wrk's: from writing a request to reading its answer, think time excluded. wrk 4
adjusts its histogram for coordinated omission (answers slower than twice the mean interval
between a connection's requests add synthetic samples), which only shows in latencies, never in
requests per second.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "wrk.lua"
MARKER = "BENCH-JSON "
ERROR_KINDS = ("connect", "read", "write", "status", "timeout")


class WrkMissing(RuntimeError):
    """wrk is not installed: run bench/setup."""


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing("wrk is not installed: run bench/setup (Debian's wrk, through apt)")
    return path


@dataclass(frozen=True)
class Load:
    """What wrk sends: `requests` taken in turn; with `period_seconds`, each connection waits
    that long (+/- `jitter`) before each request, the first one spread over one period after
    `grace_seconds` (while wrk opens its connections, all at once)."""

    requests: list[tuple[str, dict[str, str]]]
    threads: int
    connections: int
    duration_seconds: float
    period_seconds: float | None = None
    jitter: float = 0.1
    grace_seconds: float = 0.0
    timeout_seconds: float = 30.0
    slow_seconds: float = 2.0
    count_statuses: bool = False


@dataclass(frozen=True)
class WrkResult:
    duration_seconds: float
    requests: int
    sent: int
    bytes: int
    errors: dict[str, int]
    latency_ms: dict[str, float]
    slow: int
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_seconds if self.duration_seconds else 0.0

    @property
    def unanswered(self) -> int:
        """Requests still waiting for an answer when the run ended."""
        return max(0, self.sent - self.requests)

    @property
    def socket_errors(self) -> int:
        return sum(self.errors[k] for k in ("connect", "read", "write"))


def _lua_string(value: str) -> str:
    escaped = []
    for char in value:
        if char in '\\"':
            escaped.append("\\" + char)
        elif 32 <= ord(char) < 127:
            escaped.append(char)
        else:
            escaped.extend(f"\\{byte:03d}" for byte in char.encode("utf-8"))
    return '"' + "".join(escaped) + '"'


def lua_settings(load: Load) -> str:
    """The settings file `wrk.lua` reads (a Lua chunk returning a table)."""
    lines = ["return {", "  requests = {"]
    for path, headers in load.requests:
        pairs = ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items())
        lines.append(f"    {{ path = {_lua_string(path)}, headers = {{ {pairs} }} }},")
    lines.append("  },")
    if load.period_seconds is not None:
        lines.append(f"  period_ms = {load.period_seconds * 1000:.0f},")
        lines.append(f"  jitter = {load.jitter},")
        lines.append(f"  grace_ms = {load.grace_seconds * 1000:.0f},")
    lines.append(f"  connections_per_thread = {load.connections // load.threads},")
    lines.append(f"  count_statuses = {'true' if load.count_statuses else 'false'},")
    lines.append(f"  slow_us = {load.slow_seconds * 1_000_000:.0f},")
    lines.append("}")
    return "\n".join(lines) + "\n"


def parse_output(stdout: str) -> WrkResult:
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            break
    else:
        raise RuntimeError("wrk printed no result:\n" + stdout[-2000:])
    latency = {
        name: data[f"{key}_us"] / 1000
        for name, key in (
            ("min", "latency_min"),
            ("mean", "latency_mean"),
            ("p50", "p50"),
            ("p90", "p90"),
            ("p99", "p99"),
            ("p99.9", "p99_9"),
            ("max", "latency_max"),
        )
    }
    return WrkResult(
        duration_seconds=data["duration_us"] / 1_000_000,
        requests=int(data["requests"]),
        sent=int(data["sent"]),
        bytes=int(data["bytes"]),
        errors={
            k: int(data[f"errors_{k}"]) for k in ("connect", "read", "write", "status", "timeout")
        },
        latency_ms=latency,
        slow=int(data["slow"]),
        statuses={int(k): int(v) for k, v in data["statuses"].items()},
    )


async def run(base_url: str, load: Load, workdir: Path, name: str) -> WrkResult:
    """Run wrk against `base_url` with `load`; its full output is kept in `workdir/name.wrk`.
    Cancelling the call kills wrk."""
    settings = workdir / f"{name}.wrk-settings.lua"
    settings.write_text(lua_settings(load), encoding="utf-8")
    argv = [
        wrk_path(),
        "--threads",
        str(load.threads),
        "--connections",
        str(load.connections),
        "--duration",
        f"{max(1, round(load.duration_seconds))}s",
        "--timeout",
        f"{max(1, round(load.timeout_seconds))}s",
        "--script",
        str(SCRIPT),
        base_url + load.requests[0][0],
    ]
    process = await asyncio.create_subprocess_exec(
        *argv,
        env={"BENCH_WRK_CONFIG": str(settings), "PATH": "/usr/bin:/bin"},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        limit = load.duration_seconds + load.timeout_seconds + 120
        out, err = await asyncio.wait_for(process.communicate(), limit)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    (workdir / f"{name}.wrk").write_text(stdout + stderr, encoding="utf-8")
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {stderr[-2000:]}")
    return parse_output(stdout)
