"""The one place that builds the hub from its settings and picks the adapters.

Everything that talks to the outside (database engine, event bus backend, connectors,
sandboxes) is chosen here, so tests swap a component in one line and the rest of the code
never decides which implementation it runs against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from retailsync.config import DeploymentMode, Settings, get_settings
from retailsync.db import create_engine_for, upgrade_database
from retailsync.observability.logging import configure_logging
from retailsync.resilience import Downstreams


class ConfigurationError(Exception):
    """The settings describe a hub that cannot run; the message says what to change."""


@dataclass
class Hub:
    """The wired application: settings plus the adapters chosen for them."""

    settings: Settings
    engine: Engine
    downstreams: Downstreams
    components: dict[str, Any] = field(default_factory=dict)

    async def aclose(self) -> None:
        """Release what the hub holds open (connections, background helpers)."""
        await self.downstreams.close()
        self.engine.dispose()

    def close(self) -> None:
        self.engine.dispose()


def check_deployment(settings: Settings) -> None:
    """Refuse combinations that would silently break the hub's guarantees."""
    if settings.mode is DeploymentMode.SCALE_OUT and settings.is_sqlite:
        raise ConfigurationError(
            "scale-out mode needs PostgreSQL: SQLite serves one process only, so limits and "
            "work sharing would not hold across workers. Set RETAILSYNC_DATABASE_URL="
            "postgresql+psycopg://user@host/db, or run `retailsync serve` in embedded mode."
        )


def bootstrap(
    settings: Settings | None = None, *, migrate: bool = True, configure_logs: bool = True
) -> Hub:
    """Build the hub: check the settings, apply migrations, create the engine."""
    settings = settings or get_settings()
    check_deployment(settings)
    if configure_logs:
        configure_logging(
            settings.log.level, json_output=settings.log.json_output, mask_pii=settings.log.mask_pii
        )
    url = settings.resolved_database_url
    if migrate:
        upgrade_database(url)
    engine = create_engine_for(url)
    return Hub(
        settings=settings,
        engine=engine,
        downstreams=Downstreams(settings.resilience, engine=engine),
    )
