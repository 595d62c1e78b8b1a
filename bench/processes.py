"""The processes a measurement needs: app instances, the bare endpoint, the standalone sandbox.

Each is a child started the way an operator starts it (`python server.py`, `python -m
waycore.sandbox`), configured only through the environment, on a free loopback port, with its own
log file and throwaway databases under the run's temporary directory. `Processes` is a context
manager: leaving it stops every child it started (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import glob
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parent.parent

#: Every variable the app reads (README, "Configure"). The harness sets each one explicitly, so
#: neither the caller's environment nor a local `.env` can point a measurement at a real Waycore
#: or a real database.
APP_VARIABLES = (
    "SECRET_KEY",
    "HOST",
    "PORT",
    "DATABASE_PATH",
    "DATABASE_URL",
    "WAYCORE_BASE_URL",
    "WAYCORE_API_KEY",
    "WAYCORE_TIMEOUT_SECONDS",
    "SANDBOX_DATABASE",
    "SANDBOX_ACTIVATION_SECONDS",
    "SANDBOX_SEED",
    "SESSION_HTTPS_ONLY",
    "SESSION_MAX_AGE_SECONDS",
    "DEMO_MODE",
    "POLL_INTERVAL_SECONDS",
    "WAYCORE_WEBHOOK_SECRET",
    "WEBHOOK_URL",
    "DEBUG",
)

READY_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def raise_open_file_limit(needed: int) -> int:
    """Raise this process's open-file limit to at least `needed` (children inherit it); returns
    the soft limit now in force. Raising the hard limit needs root."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return hard
        return needed
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed


@dataclass
class Upstream:
    """A standalone sandbox the app instances talk to over HTTP."""

    url: str
    root_key: str


@dataclass
class Service:
    """One running child."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    #: SIGTERM for uvicorn (graceful); SIGINT for Postgres (its "fast" shutdown).
    stop_signal: signal.Signals = signal.SIGTERM

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Postgres:
    """A throwaway Postgres cluster: each `create_database` is a fresh, empty database."""

    bindir: Path
    port: int
    user: str | None

    def create_database(self, name: str) -> str:
        """A new database; returns its URL (the app's `DATABASE_URL`)."""
        subprocess.run(
            [str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port)]
            + ["-U", "postgres", name],
            check=True,
            capture_output=True,
        )
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


def postgres_bindir() -> Path | None:
    """Debian's Postgres binaries (the newest installed major version), if any."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(p) if (p := Path(path).parts[-3]).isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


class Processes:
    """Starts children in `workdir` and stops all of them on exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.services: list[Service] = []
        self._directories: list[Path] = []
        #: Signs every app instance's session cookie, so instances on a shared store accept
        #: each other's sessions (as they would behind a load balancer).
        self.secret_key = secrets.token_urlsafe(48)

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in APP_VARIABLES}
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _spawn(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        url: str,
        user: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> Service:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv,
                cwd=ROOT if user is None else "/",
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal reaches the harness only
                user=user,
                group=user,
                extra_groups=[] if user else None,
            )
        service = Service(name, url, process, log, env, stop_signal)
        self.services.append(service)
        return service

    def _wait_ready(self, service: Service, path: str, headers: dict[str, str]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        with httpx.Client(base_url=service.url, timeout=2.0) as http:
            while time.monotonic() < deadline:
                if service.process.poll() is not None:
                    raise RuntimeError(
                        f"{service.name} exited with {service.process.returncode}:\n"
                        + service.log_tail()
                    )
                try:
                    if http.get(path, headers=headers).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"{service.name} not ready after {READY_TIMEOUT_SECONDS:g}s")

    def app_env(
        self,
        port: int,
        *,
        name: str,
        poll_seconds: int,
        long_poll_seconds: float = 25.0,
        upstream: Upstream | None = None,
        webhook_secret: str | None = None,
        database_url: str | None = None,
        database_path: str | None = None,
    ) -> dict[str, str]:
        """The environment of one app instance: throwaway SQLite files in the run's directory,
        the embedded sandbox (activation in 1 s) unless `upstream` is given."""
        env = self._base_env()
        env.update(
            SECRET_KEY=self.secret_key,
            HOST="127.0.0.1",
            PORT=str(port),
            DATABASE_PATH=database_path or str(self.workdir / f"{name}.sqlite3"),
            DATABASE_URL=database_url or "",
            WAYCORE_BASE_URL=upstream.url if upstream else "",
            WAYCORE_API_KEY=upstream.root_key if upstream else "",
            SANDBOX_DATABASE=str(self.workdir / f"{name}-sandbox.sqlite3"),
            SANDBOX_ACTIVATION_SECONDS="1",
            SANDBOX_SEED="7",
            SESSION_HTTPS_ONLY="false",
            DEMO_MODE="true",
            POLL_INTERVAL_SECONDS=str(poll_seconds),
            LONG_POLL_SECONDS=str(long_poll_seconds),
            WAYCORE_WEBHOOK_SECRET=webhook_secret or "",
            WEBHOOK_URL=f"http://127.0.0.1:{port}/webhooks/waycore" if webhook_secret else "",
            DEBUG="false",
        )
        return env

    def start_app(self, name: str, env: dict[str, str], module: str | None = None) -> Service:
        """`python server.py`, exactly as the README runs it (or `python -m module`, a variant
        of it such as `bench.stack`), ready when `/healthz` answers."""
        url = f"http://127.0.0.1:{env['PORT']}"
        argv = [sys.executable, "-m", module] if module else [sys.executable, "server.py"]
        service = self._spawn(name, argv, env, url)
        self._wait_ready(service, "/healthz", {})
        return service

    def start_bare(self, name: str = "bare", *, access_log: bool = False) -> Service:
        """The bare Starlette endpoint on the app's own uvicorn settings (`bench.bare`); with
        `access_log`, writing uvicorn's own access line too."""
        port = free_port()
        env = self._base_env()
        env.update(SECRET_KEY=self.secret_key, HOST="127.0.0.1", PORT=str(port))
        env["BENCH_BARE_ACCESS_LOG"] = "1" if access_log else ""
        env.update({k: "" for k in ("WAYCORE_BASE_URL", "WAYCORE_API_KEY", "WEBHOOK_URL")})
        url = f"http://127.0.0.1:{port}"
        service = self._spawn(name, [sys.executable, "-m", "bench.bare"], env, url)
        self._wait_ready(service, "/", {})
        return service

    def start_sandbox(self, name: str = "sandbox") -> tuple[Service, Upstream]:
        """`python -m waycore.sandbox` with a fresh root key (docs/sandbox.md)."""
        port = free_port()
        key = "way_test_bench_" + secrets.token_urlsafe(24)
        env = self._base_env()
        env["WAYCORE_API_KEY"] = key
        argv = [sys.executable, "-m", "waycore.sandbox", "--port", str(port)]
        argv += ["--database", ":memory:", "--activation-seconds", "1"]
        url = f"http://127.0.0.1:{port}"
        service = self._spawn(name, argv, env, url)
        self._wait_ready(service, "/_sandbox/clock", {"Authorization": f"Bearer {key}"})
        return service, Upstream(url, key)

    def start_postgres(self) -> Postgres:
        """A throwaway Postgres cluster (Debian's `postgresql`) on a free loopback port, in its
        own temporary directory, deleted when the run ends. `initdb` and `postgres` refuse to
        run as root: as root they run as the `postgres` user the Debian package creates. Server
        settings are Postgres' defaults (durable commits), but for the address and
        `max_connections`."""
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError("--postgres needs Debian's postgresql: apt-get install postgresql")
        user = "postgres" if os.geteuid() == 0 else None
        base = Path(tempfile.mkdtemp(prefix="onboarding-bench-pg-"))
        self._directories.append(base)
        if user:
            shutil.chown(base, user, user)
        data = base / "data"
        env = {"PATH": "/usr/bin:/bin", "HOME": str(base), "LC_ALL": "C.UTF-8"}
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
        init = self._spawn("postgres-initdb", [*initdb, "--no-sync", "-E", "UTF8"], env, "", user)
        if init.process.wait() != 0:
            raise RuntimeError("initdb failed:\n" + init.log_tail())
        self.services.remove(init)
        port = free_port()
        argv = [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(base)]
        argv += ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"]
        url = f"postgresql://127.0.0.1:{port}"
        server = self._spawn("postgres", argv, env, url, user, stop_signal=signal.SIGINT)
        ready = [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while subprocess.run(ready, check=False).returncode != 0:
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Postgres did not start:\n" + server.log_tail())
            time.sleep(0.1)
        return Postgres(bindir, port, user)

    def stop(self, service: Service) -> None:
        process = service.process
        if process.poll() is None:
            process.send_signal(service.stop_signal)
            try:
                process.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if service in self.services:
            self.services.remove(service)

    def stop_all(self) -> None:
        for service in reversed(list(self.services)):
            self.stop(service)
        for directory in self._directories:
            shutil.rmtree(directory, ignore_errors=True)
        self._directories.clear()
