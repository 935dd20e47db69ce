"""Settings from the environment (``RETAILSYNC_*``) and an optional TOML file.

Precedence, highest first: keyword arguments, environment variables, the TOML file named by
``RETAILSYNC_CONFIG_FILE`` (default ``./retailsync.toml`` when it exists), the defaults below.
Secrets are ``SecretStr`` so they never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import os
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from retailsync.api.settings import AuthSettings, IdempotencySettings, RateLimitSettings
from retailsync.connectors.settings import ConnectorsSettings
from retailsync.db import normalise_database_url
from retailsync.observability.settings import ObservabilitySettings
from retailsync.reconcile.availability import AvailabilitySettings
from retailsync.reconcile.policy import ReconcilePolicy
from retailsync.resilience.config import ResilienceSettings

DEFAULT_DATA_DIR = Path("var")


class DeploymentMode(StrEnum):
    """How the hub is deployed: one process, or API + N workers sharing PostgreSQL."""

    EMBEDDED = "embedded"
    SCALE_OUT = "scale-out"


class BusBackend(StrEnum):
    """Where canonical events are stored and delivered from."""

    SQL = "sql"
    NATS = "nats"


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=1_048_576, gt=0)


class LogSettings(BaseModel):
    level: str = "INFO"
    json_output: bool = True
    mask_pii: bool = True


class NatsSettings(BaseModel):
    url: str = "nats://127.0.0.1:4222"
    stream_prefix: str = "RETAILSYNC"


class Settings(BaseSettings):
    """Every setting the hub reads, with its default."""

    model_config = SettingsConfigDict(
        env_prefix="RETAILSYNC_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    environment: str = "development"
    mode: DeploymentMode = DeploymentMode.EMBEDDED
    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str = ""
    bus_backend: BusBackend = BusBackend.SQL
    worker_id: str = "local"
    secret_key: SecretStr = SecretStr("change-me-in-production")
    api: ApiSettings = ApiSettings()
    log: LogSettings = LogSettings()
    nats: NatsSettings = NatsSettings()
    resilience: ResilienceSettings = ResilienceSettings()
    auth: AuthSettings = AuthSettings()
    rate_limits: RateLimitSettings = RateLimitSettings()
    idempotency: IdempotencySettings = IdempotencySettings()
    connectors: ConnectorsSettings = ConnectorsSettings()
    reconcile: ReconcilePolicy = ReconcilePolicy()
    availability: AvailabilitySettings = AvailabilitySettings()
    observability: ObservabilitySettings = ObservabilitySettings()

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError(
                f"unsupported database URL scheme in {value.split(':', 1)[0]!r}: "
                "use sqlite:///path/to/file.sqlite or postgresql+psycopg://user@host/db"
            )
        return value

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file under ``data_dir``."""
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite:///{(self.data_dir / 'retailsync.sqlite').as_posix()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("RETAILSYNC_CONFIG_FILE", "retailsync.toml")
        if Path(config_file).is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        elif "RETAILSYNC_CONFIG_FILE" in os.environ:
            raise FileNotFoundError(
                f"RETAILSYNC_CONFIG_FILE names {config_file!r}, which does not exist"
            )
        return tuple(sources)


@lru_cache(maxsize=1)
def get_settings(**overrides: Any) -> Settings:
    """The process-wide settings (cached); tests build ``Settings(...)`` directly."""
    return Settings(**overrides)
