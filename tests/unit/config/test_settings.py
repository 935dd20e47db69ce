from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from retailsync.bootstrap import ConfigurationError, check_deployment
from retailsync.config import DeploymentMode, Settings


def test_defaults_to_sqlite_under_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.resolved_database_url == "sqlite:///var/retailsync.sqlite"
    assert settings.is_sqlite


def test_environment_variables_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETAILSYNC_DATABASE_URL", "postgresql://app@db.internal/hub")
    monkeypatch.setenv("RETAILSYNC_API__PORT", "9100")
    settings = Settings()
    assert settings.resolved_database_url == "postgresql+psycopg://app@db.internal/hub"
    assert settings.api.port == 9100


def test_toml_file_is_read_and_env_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('environment = "staging"\n[api]\nport = 8200\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("RETAILSYNC_CONFIG_FILE", str(config))
    monkeypatch.setenv("RETAILSYNC_API__PORT", "8300")
    settings = Settings()
    assert settings.environment == "staging"
    assert settings.api.host == "0.0.0.0"
    assert settings.api.port == 8300


def test_missing_named_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETAILSYNC_CONFIG_FILE", "/nonexistent/hub.toml")
    with pytest.raises(FileNotFoundError, match=r"/nonexistent/hub\.toml"):
        Settings()


def test_secrets_never_appear_in_repr_or_errors() -> None:
    settings = Settings(secret_key="s3cr3t-value")
    assert "s3cr3t-value" not in repr(settings)
    assert "s3cr3t-value" not in str(settings.model_dump())
    assert settings.secret_key.get_secret_value() == "s3cr3t-value"


def test_unknown_setting_and_bad_url_are_named() -> None:
    with pytest.raises(ValidationError, match="databse_url"):
        Settings(databse_url="sqlite:///x")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="unsupported database URL scheme in 'mysql'"):
        Settings(database_url="mysql://root@localhost/hub")


def test_scale_out_on_sqlite_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ConfigurationError, match="scale-out mode needs PostgreSQL"):
        check_deployment(Settings(mode=DeploymentMode.SCALE_OUT))
    check_deployment(Settings(mode=DeploymentMode.SCALE_OUT, database_url="postgresql://u@h/db"))
