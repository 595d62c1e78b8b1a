"""Settings: the one place where configuration is read.

Everything comes from the environment or a local `.env` file (never committed). `load_settings()`
builds a frozen `Settings`; `server.create_app(settings)` and the tests take that object, so
nothing else reads the environment. See README, "Configure", for every variable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

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
    #: Demo mode: a sign-in page listing seeded host customers and users.
    demo_mode: bool = True
    #: institutionId -> exact Waycore setup-guide URL supplied to this integration.
    setup_guides: dict[str, str] = field(default_factory=dict)
    #: Days after which an untouched local draft is deleted.
    draft_ttl_days: int = 30
    #: Seconds between activation polls on the activation step.
    poll_interval_seconds: int = 5
    #: Signing secret of the webhook registration pointing at `/webhooks/waycore` (from the
    #: Waycore console). Unset: the receiver answers 404, unless `webhook_url` is set with the
    #: embedded sandbox, which then registers it and keeps the secret in memory.
    webhook_secret: Secret | None = None
    #: This app's public URL of `/webhooks/waycore`, registered with the embedded sandbox.
    webhook_url: str | None = None

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


def load_settings(env_file: str | Path | None = ROOT / ".env") -> Settings:
    """Read settings from the environment (and `.env` when present)."""
    config = Config(env_file if env_file and Path(env_file).exists() else None)
    api_key = config("WAYCORE_API_KEY", cast=Secret, default=None)
    base_url = config("WAYCORE_BASE_URL", default="") or None
    return Settings(
        secret_key=config("SECRET_KEY", cast=Secret),
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
        demo_mode=config("DEMO_MODE", cast=bool, default=True),
        # The bundled guide list goes with the sandbox's catalog ids; against a real Waycore only
        # the guides Waycore supplied to this integration count, so none unless configured.
        setup_guides=_load_guides(
            config("WAYCORE_SETUP_GUIDES", default="" if base_url else "setup_guides.json")
        ),
        draft_ttl_days=config("DRAFT_TTL_DAYS", cast=int, default=30),
        poll_interval_seconds=config("POLL_INTERVAL_SECONDS", cast=int, default=5),
        webhook_secret=config("WAYCORE_WEBHOOK_SECRET", cast=Secret, default=None) or None,
        webhook_url=config("WEBHOOK_URL", default="") or None,
    )
