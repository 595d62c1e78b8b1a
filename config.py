"""Settings: the one place where configuration is read.

Everything comes from the environment or a local `.env` file (never committed). `load_settings()`
builds a frozen `Settings`; `server.create_app(settings)` and the tests take that object, so
nothing else reads the environment. See README, "Configure", for every variable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from starlette.config import Config
from starlette.datastructures import Secret

ROOT = Path(__file__).resolve().parent

#: The general delegated-user setup page, used whenever Waycore supplied no exact guide URL.
DEFAULT_SETUP_GUIDE_URL = "https://docs.waycore.com/user-setup"
#: The terms the customer accepts on the finish-setup step.
TERMS_OF_USE_URL = "https://docs.waycore.com/legal/terms-of-use"


@dataclass(frozen=True)
class Settings:
    """Everything the app needs to start; built by `load_settings()` or directly in tests."""

    secret_key: Secret
    debug: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    #: The app's SQLite file (drafts, entity map, sessions), used unless `database_url` is set.
    database_path: str = str(ROOT / "var" / "app.sqlite3")
    #: `postgresql://…` (several app instances share it) or `sqlite:///…`; None: `database_path`.
    #: Left out of the repr: it may carry the database password.
    database_url: str | None = field(default=None, repr=False)
    #: Real Waycore (e.g. https://api.waycore.com). None: run the embedded local sandbox.
    waycore_base_url: str | None = None
    #: The Waycore API key. With the embedded sandbox and no key, one is generated per start.
    waycore_api_key: Secret | None = None
    waycore_timeout_seconds: float = 10.0
    #: Embedded sandbox state: a SQLite path, or ":memory:".
    sandbox_database: str = str(ROOT / "var" / "sandbox.sqlite3")
    #: Embedded sandbox: seconds between setupCompletion and activation.
    sandbox_activation_seconds: float = 8.0
    #: Embedded sandbox: seed for generated accounts, balances and transactions.
    sandbox_seed: int = 7
    #: Session cookie `Secure` flag; keep True anywhere served over HTTPS.
    session_https_only: bool = False
    session_max_age_seconds: int = 8 * 60 * 60
    #: Demo mode: a sign-in page listing seeded host customers and users. On by default only
    #: with the embedded sandbox; with a real Waycore only when `DEMO_MODE=true` is explicit.
    demo_mode: bool = True
    #: institutionId -> exact Waycore setup-guide URL supplied to this integration.
    setup_guides: dict[str, str] = field(default_factory=dict)
    #: Days after which an untouched local draft is deleted.
    draft_ttl_days: int = 30
    #: Seconds between activation polls on the activation step, and at most one check of a
    #: connection with Waycore per this many seconds, however many watch it.
    poll_interval_seconds: int = 5
    #: How long a status check may be held waiting for a change (long-poll; 0: not held).
    long_poll_seconds: float = 25.0
    #: Held status checks per process; beyond, a check is answered at once.
    long_poll_max_waiters: int = 1000
    #: Signing secret of the webhook registration pointing at `/webhooks/waycore` (from the
    #: Waycore console). Unset: the receiver answers 404, unless `webhook_url` is set with the
    #: embedded sandbox, which then registers it and keeps the secret in memory.
    webhook_secret: Secret | None = None
    #: This app's public URL of `/webhooks/waycore`, registered with the embedded sandbox.
    webhook_url: str | None = None
    #: The path prefix the app is served at behind a proxy that strips it (e.g. "/banking");
    #: "" at the root. Also the session cookie's path.
    root_path: str = ""
    #: Proxies trusted for `X-Forwarded-Proto`/`-For` (uvicorn's `forwarded_allow_ips`); None:
    #: proxy headers are ignored.
    forwarded_allow_ips: str | None = None
    #: The origins browsers reach the app at (`https://app.example.com`), checked against
    #: `Origin` when a browser sends no `Sec-Fetch-Site`. Empty: compared with the `Host` header.
    public_origins: tuple[str, ...] = ()
    #: Shared secret (HS256) of the host's sign-in handoff tokens; None: `/handoff` is off.
    handoff_secret: Secret | None = None
    #: The host's sign-in page, for signed-out users when demo mode is off (gets `?next=`).
    sign_in_url: str | None = None
    #: A directory of templates searched before the built-in ones.
    template_overrides: str | None = None
    #: Templates are checked for changes on every render (while editing them); off, each is read
    #: once per process.
    template_reload: bool = False
    #: A same-origin stylesheet (a root-relative path) loaded after the app's own.
    host_stylesheet_url: str | None = None
    #: Where customers get help: shown with a copyable reference on every error and every state
    #: that needs attention (either or both; with neither, the reference alone is shown).
    support_url: str | None = None
    support_email: str | None = None
    #: The host's endpoint for this app's signed events (`onboarding.events`); None: the events
    #: are only logged.
    host_events_url: str | None = None
    #: The HMAC key the host events are signed with (required with `host_events_url`).
    host_events_secret: Secret | None = None

    @property
    def database(self) -> str:
        """What the store opens: `DATABASE_URL`, else the SQLite file `DATABASE_PATH`."""
        return self.database_url or self.database_path

    @property
    def uses_embedded_sandbox(self) -> bool:
        return self.waycore_base_url is None


def _load_guides(path: str) -> dict[str, str]:
    if not path:
        return {}
    file = Path(path)
    if not file.is_absolute():
        file = ROOT / file
    data = json.loads(file.read_text(encoding="utf-8"))
    guides = data.get("guides", data)
    if not isinstance(guides, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.startswith("https://")
        for k, v in guides.items()
    ):
        raise ValueError(f"{file}: expected an object of institutionId -> https:// guide URL")
    return dict(guides)


def _root_path(value: str) -> str:
    """`banking/` -> `/banking`; `/` or empty -> `` (served at the root)."""
    path = "/" + value.strip().strip("/")
    if path == "/":
        return ""
    if "//" in path or any(not (c.isalnum() or c in "-._~/") for c in path):
        raise ValueError(f"ROOT_PATH must be a plain path prefix such as /banking, not {value!r}")
    return path


def _origins(value: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            raise ValueError(
                f"PUBLIC_ORIGINS: {origin!r} is not an origin like https://app.example"
            )
    return origins


def _stylesheet(value: str) -> str | None:
    if not value:
        return None
    if not value.startswith("/") or value.startswith("//"):
        raise ValueError("HOST_STYLESHEET_URL must be a same-origin path such as /brand/kit.css")
    return value


def _handoff_secret(value: Secret | None) -> Secret | None:
    if value is None or not str(value):
        return None
    if len(str(value).encode()) < 32:
        raise ValueError("HANDOFF_SECRET must be at least 32 bytes (it signs sign-in tokens)")
    return value


class ConfigError(ValueError):
    """The configuration cannot start the app; the message is one line for the operator."""


_EMAIL = re.compile(r"[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+")


def _http_url(name: str, value: str, *, https_only: bool) -> str | None:
    """`value` when it is an absolute http(s) URL (https only when `https_only`, except on a
    loopback host); None when empty; `ConfigError` otherwise."""
    if not value:
        return None
    parts = urlsplit(value)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    allowed = {"https"} if https_only and not loopback else {"https", "http"}
    if parts.scheme not in allowed or not parts.hostname:
        scheme = "https://" if allowed == {"https"} else "http(s)://"
        raise ConfigError(f"{name} must be an absolute {scheme} URL, got {value!r}")
    return value


def load_settings(env_file: str | Path | None = ROOT / ".env") -> Settings:
    """Read settings from the environment (and `.env` when present); `ConfigError`, with a
    one-line message, when they cannot start the app (e.g. no `SECRET_KEY`)."""
    try:
        return _load(env_file)
    except KeyError as exc:  # starlette's Config: a variable without default is missing
        name = str(exc.args[0]).split("'")[1] if "'" in str(exc.args[0]) else str(exc)
        hint = " (./scripts/install writes one to .env)" if name == "SECRET_KEY" else ""
        raise ConfigError(f"{name} is not set: add it to the environment or .env{hint}") from None
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None


def _load(env_file: str | Path | None) -> Settings:
    config = Config(env_file if env_file and Path(env_file).exists() else None)
    api_key = config("WAYCORE_API_KEY", cast=Secret, default=None)
    base_url = config("WAYCORE_BASE_URL", default="") or None
    demo = config("DEMO_MODE", default="")
    secret_key = config("SECRET_KEY", cast=Secret)
    if not str(secret_key):
        raise KeyError("Config 'SECRET_KEY' is missing, and has no default.")
    host_events_url = _http_url(
        "HOST_EVENTS_URL", config("HOST_EVENTS_URL", default=""), https_only=False
    )
    host_events_secret = config("HOST_EVENTS_SECRET", cast=Secret, default=None) or None
    if host_events_url and not (host_events_secret and str(host_events_secret)):
        raise ConfigError("HOST_EVENTS_URL is set but HOST_EVENTS_SECRET is not: events are signed")
    return Settings(
        secret_key=secret_key,
        debug=config("DEBUG", cast=bool, default=False),
        host=config("HOST", default="127.0.0.1"),
        port=config("PORT", cast=int, default=8000),
        database_path=config("DATABASE_PATH", default=str(ROOT / "var" / "app.sqlite3")),
        database_url=config("DATABASE_URL", default="") or None,
        waycore_base_url=base_url.rstrip("/") if base_url else None,
        waycore_api_key=api_key if api_key and str(api_key) else None,
        waycore_timeout_seconds=config("WAYCORE_TIMEOUT_SECONDS", cast=float, default=10.0),
        sandbox_database=config("SANDBOX_DATABASE", default=str(ROOT / "var" / "sandbox.sqlite3")),
        sandbox_activation_seconds=config("SANDBOX_ACTIVATION_SECONDS", cast=float, default=8.0),
        sandbox_seed=config("SANDBOX_SEED", cast=int, default=7),
        session_https_only=config("SESSION_HTTPS_ONLY", cast=bool, default=False),
        session_max_age_seconds=config("SESSION_MAX_AGE_SECONDS", cast=int, default=8 * 60 * 60),
        # Demo sign-in lets anyone who reaches the app in as any demo user: only by default with
        # the embedded sandbox; against a real Waycore it must be asked for explicitly.
        demo_mode=_truthy(demo) if demo else base_url is None,
        # The bundled guide list goes with the sandbox's catalog ids; against a real Waycore only
        # the guides Waycore supplied to this integration count, so none unless configured.
        setup_guides=_load_guides(
            config("WAYCORE_SETUP_GUIDES", default="" if base_url else "setup_guides.json")
        ),
        draft_ttl_days=config("DRAFT_TTL_DAYS", cast=int, default=30),
        poll_interval_seconds=config("POLL_INTERVAL_SECONDS", cast=int, default=5),
        long_poll_seconds=config("LONG_POLL_SECONDS", cast=float, default=25.0),
        long_poll_max_waiters=config("LONG_POLL_MAX_WAITERS", cast=int, default=1000),
        webhook_secret=config("WAYCORE_WEBHOOK_SECRET", cast=Secret, default=None) or None,
        webhook_url=config("WEBHOOK_URL", default="") or None,
        root_path=_root_path(config("ROOT_PATH", default="")),
        forwarded_allow_ips=config("FORWARDED_ALLOW_IPS", default="") or None,
        public_origins=_origins(config("PUBLIC_ORIGINS", default="")),
        handoff_secret=_handoff_secret(config("HANDOFF_SECRET", cast=Secret, default=None)),
        sign_in_url=config("SIGN_IN_URL", default="") or None,
        template_overrides=config("TEMPLATE_OVERRIDES", default="") or None,
        template_reload=config("TEMPLATE_RELOAD", cast=bool, default=False),
        host_stylesheet_url=_stylesheet(config("HOST_STYLESHEET_URL", default="")),
        support_url=_http_url("SUPPORT_URL", config("SUPPORT_URL", default=""), https_only=True),
        support_email=_email(config("SUPPORT_EMAIL", default="")),
        host_events_url=host_events_url,
        host_events_secret=host_events_secret,
    )


def _truthy(value: str) -> bool:
    """Starlette's boolean spelling: true/1 or false/0 (anything else is an error)."""
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError(f"DEMO_MODE must be true or false, not {value!r}")


def _email(value: str) -> str | None:
    if value and not _EMAIL.fullmatch(value):
        raise ConfigError(f"SUPPORT_EMAIL must be an email address, got {value!r}")
    return value or None
