"""Settings are read in one place; the bundled guide list only goes with the sandbox."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from config import ConfigError, load_settings


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    # os.environ directly: starlette's `environ` refuses changes to keys already read.
    monkeypatch.setenv("SECRET_KEY", "s" * 40)
    for name in (
        "WAYCORE_BASE_URL",
        "WAYCORE_API_KEY",
        "WAYCORE_SETUP_GUIDES",
        "DATABASE_URL",
        "DATABASE_PATH",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_embedded_defaults(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = load_settings(env_file=tmp_path / "missing.env")
    assert settings.uses_embedded_sandbox
    assert settings.port == 8000 and settings.host == "127.0.0.1"
    assert settings.poll_interval_seconds == 5 and settings.draft_ttl_days == 30
    assert settings.setup_guides["customers_bank"] == (
        "https://docs.waycore.com/user-setup/customers_bank"
    )
    assert "way_" not in repr(settings)
    assert settings.database_url is None
    assert settings.database == str(Path(__file__).resolve().parents[1] / "var" / "app.sqlite3")


def test_a_postgres_url_selects_postgres_and_stays_out_of_the_repr(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("DATABASE_URL", "postgresql://app:pg-s3cret@db.internal/onboarding")
    settings = load_settings(env_file=tmp_path / "missing.env")
    assert settings.database == "postgresql://app:pg-s3cret@db.internal/onboarding"
    assert "pg-s3cret" not in repr(settings)


def test_a_real_waycore_gets_only_configured_guides(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("WAYCORE_BASE_URL", "https://api.waycore.com/")
    env.setenv("WAYCORE_API_KEY", "way_live_abc_def")
    settings = load_settings(env_file=tmp_path / "missing.env")
    assert settings.waycore_base_url == "https://api.waycore.com"
    assert settings.setup_guides == {}
    assert "way_live_abc_def" not in repr(settings)
    guides = tmp_path / "guides.json"
    guides.write_text('{"guides": {"bank_x": "https://docs.waycore.com/user-setup/bank_x"}}')
    env.setenv("WAYCORE_SETUP_GUIDES", str(guides))
    assert load_settings(env_file=tmp_path / "missing.env").setup_guides == {
        "bank_x": "https://docs.waycore.com/user-setup/bank_x"
    }


def test_a_guide_list_with_a_non_https_url_is_refused(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    guides = tmp_path / "guides.json"
    guides.write_text('{"guides": {"bank_x": "http://example.com/guide"}}')
    env.setenv("WAYCORE_SETUP_GUIDES", str(guides))
    with pytest.raises(ValueError):
        load_settings(env_file=tmp_path / "missing.env")


@pytest.mark.parametrize("value", [None, ""])
def test_secret_key_is_required(env: pytest.MonkeyPatch, tmp_path: Path, value: str | None) -> None:
    if value is None:
        env.delenv("SECRET_KEY")
    else:
        env.setenv("SECRET_KEY", value)
    with pytest.raises(ConfigError, match="^SECRET_KEY is not set"):
        load_settings(env_file=tmp_path / "missing.env")


def test_support_and_host_event_settings(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("SUPPORT_URL", "https://help.example/banks")
    env.setenv("SUPPORT_EMAIL", "help@example.com")
    env.setenv("HOST_EVENTS_URL", "https://host.example/events")
    env.setenv("HOST_EVENTS_SECRET", "host-secret-value")
    settings = load_settings(env_file=tmp_path / "missing.env")
    assert settings.support_url == "https://help.example/banks"
    assert settings.support_email == "help@example.com"
    assert settings.host_events_url == "https://host.example/events"
    assert "host-secret-value" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SUPPORT_URL", "http://help.example/", "SUPPORT_URL must be an absolute https://"),
        ("SUPPORT_URL", "help.example", "SUPPORT_URL must be an absolute https://"),
        ("SUPPORT_EMAIL", "not an address", "SUPPORT_EMAIL must be an email address"),
        ("HOST_EVENTS_URL", "ftp://host.example/", "HOST_EVENTS_URL must be an absolute"),
        ("HOST_EVENTS_URL", "https://host.example/", "HOST_EVENTS_SECRET is not"),
        ("PORT", "eighty", "PORT' has value 'eighty'"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(
    env: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str, message: str
) -> None:
    env.delenv("HOST_EVENTS_SECRET", raising=False)
    env.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings(env_file=tmp_path / "missing.env")
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_every_setting_is_in_the_readme_and_the_example_env() -> None:
    root = Path(__file__).resolve().parents[1]
    read = set(re.findall(r'config\(\s*"([A-Z_]+)"', (root / "config.py").read_text()))
    assert {"SECRET_KEY", "SUPPORT_URL", "HOST_EVENTS_SECRET"} <= read
    readme = (root / "README.md").read_text()
    example = (root / ".env.example").read_text()
    for name in sorted(read):
        assert f"`{name}`" in readme, f"{name} is not in the README's Configure table"
        assert re.search(rf"^#? ?{name}=", example, re.M), f"{name} is not in .env.example"
