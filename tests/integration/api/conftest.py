"""Fixtures for the governed API: a hub on SQLite, API keys, a local token issuer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from governed_api_support import GovernanceFactory, IssueKey, ManualClock, TokenIssuer

from retailsync.api.app import create_app
from retailsync.api.clients import api_key_pepper, create_api_client
from retailsync.api.governance import Governance
from retailsync.api.scopes import Scope
from retailsync.api.settings import (
    AuthSettings,
    GovernanceSettings,
    IdempotencySettings,
    RateLimitSettings,
)
from retailsync.bootstrap import Hub, bootstrap
from retailsync.config import Settings


@pytest.fixture(scope="session")
def issuer() -> TokenIssuer:
    return TokenIssuer()


@pytest.fixture
def hub(sqlite_url: str) -> Iterator[Hub]:
    hub = bootstrap(Settings(database_url=sqlite_url))
    yield hub
    hub.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def build_governance(hub: Hub, clock: ManualClock) -> GovernanceFactory:
    """Governance for ``hub`` with a manual clock; keyword arguments replace settings."""

    def build(
        *,
        auth: AuthSettings | None = None,
        rate_limits: RateLimitSettings | None = None,
        idempotency: IdempotencySettings | None = None,
        **kwargs: Any,
    ) -> Governance:
        settings = GovernanceSettings(
            auth=auth or AuthSettings(),
            rate_limits=rate_limits or RateLimitSettings(),
            idempotency=idempotency or IdempotencySettings(),
        )
        return Governance.build(
            settings, hub.engine, hub.settings.secret_key, monotonic=clock, **kwargs
        )

    return build


@pytest.fixture
def app(hub: Hub, build_governance: GovernanceFactory) -> FastAPI:
    return create_app(hub, governance=build_governance())


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def issue_key(hub: Hub) -> IssueKey:
    """``issue_key("admin", "system:read")`` -> a fresh API key holding those scopes."""

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


@pytest.fixture
def admin_key(issue_key: IssueKey) -> str:
    return issue_key("admin", name="test admin")
