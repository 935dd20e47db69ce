"""A live Tryton ERP for the order 360 end-to-end tests, and a hub wired to it the way
``bootstrap`` wires the ERP connector (every ERP request through the ERP's resilience guard)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from retailsync.bootstrap import Hub, bootstrap
from retailsync.config import Settings
from retailsync.connectors.erp.adapter import TrytonErpAdapter
from retailsync.connectors.erp.client import TrytonClient, TrytonConnection
from retailsync.resilience.config import (
    DEFAULT_POLICIES,
    BreakerPolicy,
    ResilienceSettings,
    RetryPolicy,
)
from retailsync.sandbox.erp import ErpSandbox
from retailsync.views import FreshnessPolicy

pytestmark = pytest.mark.erp


@pytest.fixture(scope="session")
def erp_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ErpSandbox]:
    """A running trytond on a private copy of the template database."""
    sandbox = ErpSandbox(tmp_path_factory.mktemp("views-erp-sandbox"))
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def live_hub(sqlite_url: str, erp_sandbox: ErpSandbox) -> Iterator[Hub]:
    """A hub whose ERP is the sandbox; the ERP circuit half-opens after half a second."""
    erp_policy = DEFAULT_POLICIES["erp"].model_copy(
        update={
            "breaker": BreakerPolicy(consecutive_failures=2, open_seconds=0.5),
            "retry": RetryPolicy(max_attempts=1),
        }
    )
    settings = Settings(
        database_url=sqlite_url,
        resilience=ResilienceSettings(downstreams={**DEFAULT_POLICIES, "erp": erp_policy}),
    )
    hub = bootstrap(settings, configure_logs=False)
    connection = TrytonConnection(
        base_url=erp_sandbox.base_url,
        database=erp_sandbox.database,
        login=erp_sandbox.login,
        password=erp_sandbox.password,
        timeout_seconds=10.0,
    )
    hub.adapters["erp"] = TrytonErpAdapter(
        TrytonClient(connection, guard=hub.downstreams.erp), hub.engine
    )
    hub.adapters["order360_freshness"] = FreshnessPolicy(
        fresh_within_seconds=0.0,
        refresh_in_background_within_seconds=0.0,
        check_timeout_seconds=3.0,
        recheck_after_failure_seconds=0.0,
    )
    yield hub
    hub.close()
