"""A throwaway Postgres cluster for the test session: Debian's binaries, a temporary directory
outside the work tree, a free loopback port; stopped and deleted when the session ends. (A
session killed before its end leaves its cluster behind: the next session stops and deletes
clusters whose test session is gone.)

`initdb` and `postgres` refuse to run as root, so as root they run as the `postgres` user (the
Debian package creates it). `TEST_POSTGRES_URL` (a server URL whose user may create databases)
uses an existing server instead. Without either, the Postgres tests are skipped, or fail when
`CI=true`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy import make_url

STARTUP_TIMEOUT_SECONDS = 30.0
PREFIX = "onboarding-test-pg-"
#: Settings for a disposable cluster: no durability, few resources.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "32MB",
}


class PostgresUnavailable(Exception):
    """No Postgres binaries (and no TEST_POSTGRES_URL)."""


def _bindir() -> Path | None:
    configured = os.environ.get("PG_BINDIR")
    if configured:
        return Path(configured)
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A server the tests may create databases on; `url(name)` is a database's URL."""

    base_url: str

    def url(self, database: str) -> str:
        return make_url(self.base_url).set(database=database).render_as_string(hide_password=False)

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        conninfo = make_url(self.url("postgres")).render_as_string(hide_password=False)
        return psycopg.connect(conninfo, autocommit=True)

    def create_database(self, prefix: str = "test") -> str:
        """A new, empty database; returns its URL."""
        name = f"{prefix}_{secrets.token_hex(4)}"
        with self._admin() as admin:
            admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        with self._admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]

    def terminate(self, pid: int) -> None:
        """End one server process (a client connection), as a network failure would."""
        with self._admin() as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """An existing server (`TEST_POSTGRES_URL`) or a throwaway cluster, for one test session."""
    existing = os.environ.get("TEST_POSTGRES_URL")
    if existing:
        yield PostgresServer(existing)
        return
    bindir = _bindir()
    if bindir is None or not (bindir / "initdb").exists():
        raise PostgresUnavailable(
            "Postgres binaries not found (install Debian's `postgresql`: ./scripts/install --test,"
            " or set PG_BINDIR or TEST_POSTGRES_URL)"
        )
    _reap_orphans()
    with _cluster(bindir) as server:
        yield server


def _scratch() -> str:
    """Where clusters live: as root, /tmp (the `postgres` user must reach it, whatever TMPDIR
    says); otherwise the usual temporary directory."""
    if os.geteuid() == 0 and os.path.isdir("/tmp"):
        return "/tmp"
    return tempfile.gettempdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap_orphans() -> None:
    """Stop and delete the clusters of test sessions that ended without stopping them."""
    for base in Path(_scratch()).glob(PREFIX + "*"):
        try:
            owner = int((base / "owner.pid").read_text())
        except (OSError, ValueError):
            continue  # not ours, or still being set up
        if _alive(owner):
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            postmaster = int((base / "data" / "postmaster.pid").read_text().split()[0])
            os.kill(postmaster, signal.SIGINT)
            deadline = time.monotonic() + 10
            while _alive(postmaster) and time.monotonic() < deadline:
                time.sleep(0.05)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def _cluster(bindir: Path) -> Iterator[PostgresServer]:
    user = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix=PREFIX, dir=_scratch()))
    process: subprocess.Popen[bytes] | None = None
    try:
        (base / "owner.pid").write_text(str(os.getpid()))
        if user:
            entry = pwd.getpwnam(user)
            os.chown(base, entry.pw_uid, entry.pw_gid)
        as_user = {"user": user, "group": user, "extra_groups": []} if user else {}
        data = base / "data"
        subprocess.run(
            [bindir / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8"]
            + ["--locale=C", "--no-sync", "--no-instructions"],
            cwd=base,
            check=True,
            capture_output=True,
            **as_user,  # type: ignore[arg-type]
        )
        port = _free_port()
        options = [arg for item in SERVER_SETTINGS.items() for arg in ("-c", "=".join(item))]
        log = base / "server.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [bindir / "postgres", "-D", data, "-p", str(port), "-k", base, *options],
                cwd=base,
                stdout=sink,
                stderr=subprocess.STDOUT,
                **as_user,  # type: ignore[arg-type]
            )
        server = PostgresServer(f"postgresql://postgres@127.0.0.1:{port}/postgres")
        _wait_until_ready(server, process, log)
        yield server
    finally:
        if process is not None:
            process.send_signal(signal.SIGINT)  # "fast" shutdown: disconnect clients, stop
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)


def _wait_until_ready(server: PostgresServer, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    conninfo = server.url("postgres")
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited with {process.returncode}:\n{log.read_text()}")
        try:
            psycopg.connect(conninfo, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start:\n{log.read_text()}") from None
            time.sleep(0.05)
