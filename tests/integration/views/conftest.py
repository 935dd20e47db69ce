"""Fixtures for the order 360 and System API tests: a hub on SQLite, the app with the views
routes mounted as the hub mounts them, and API keys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from views_support import IssueKey

from retailsync.api.app import create_app
from retailsync.api.clients import api_key_pepper, create_api_client
from retailsync.api.governance import Governance
from retailsync.api.scopes import Scope
from retailsync.api.settings import GovernanceSettings, RateLimitSettings, governance_settings
from retailsync.bootstrap import Hub, bootstrap
from retailsync.config import Settings
from retailsync.db import create_engine_for, upgrade_database


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    """The hub's database (SQLite, migrated), without a hub around it."""
    upgrade_database(sqlite_url)
    engine = create_engine_for(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
def hub(sqlite_url: str) -> Iterator[Hub]:
    hub = bootstrap(Settings(database_url=sqlite_url), configure_logs=False)
    yield hub
    hub.close()


def views_app(hub: Hub) -> FastAPI:
    """The API as ``retailsync serve`` builds it, rate limits off (tests send bursts)."""
    settings = governance_settings(hub.settings)
    governance = Governance.build(
        GovernanceSettings(
            auth=settings.auth,
            rate_limits=RateLimitSettings(enabled=False),
            idempotency=settings.idempotency,
        ),
        hub.engine,
        hub.settings.secret_key,
    )
    app = create_app(hub, governance=governance)
    return app


@pytest.fixture
def app(hub: Hub) -> FastAPI:
    return views_app(hub)


@pytest.fixture
def issue_key(hub: Hub) -> IssueKey:
    def issue(*scopes: str, name: str = "test client") -> str:
        with hub.engine.begin() as connection:
            issued = create_api_client(
                connection,
                name=name,
                scopes=[Scope(scope) for scope in scopes],
                pepper=api_key_pepper(hub.settings.secret_key),
                actor="test:setup",
                correlation_id=None,
            )
        return issued.key

    return issue
