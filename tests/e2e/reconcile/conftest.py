"""A live Tryton ERP plus the WMS, Shopify and Stripe sandboxes for the reconciliation e2e tests.

The ERP runs on a private copy of the cached template database (one server per test session,
as in tests/e2e/erp); the SaaS sandboxes run in-process on loopback ports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from retailsync.connectors.erp.client import TrytonClient, TrytonConnection
from retailsync.sandbox.erp import ErpSandbox
from retailsync.sandbox.server import SandboxServer
from retailsync.sandbox.shopify import create_shopify_sandbox
from retailsync.sandbox.stripe import create_stripe_sandbox
from retailsync.sandbox.wms import WmsSandbox

pytestmark = pytest.mark.erp


@pytest.fixture(scope="session")
def reconcile_erp_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ErpSandbox]:
    """A running trytond on a private copy of the template database."""
    sandbox = ErpSandbox(tmp_path_factory.mktemp("reconcile-erp-sandbox"))
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture(scope="session")
async def reconcile_erp_client(reconcile_erp_sandbox: ErpSandbox) -> AsyncIterator[TrytonClient]:
    sandbox = reconcile_erp_sandbox
    connection = TrytonConnection(
        base_url=sandbox.base_url,
        database=sandbox.database,
        login=sandbox.login,
        password=sandbox.password,
        timeout_seconds=30.0,
    )
    async with TrytonClient(connection) as client:
        yield client


@pytest.fixture
def wms_server() -> Iterator[tuple[WmsSandbox, SandboxServer]]:
    sandbox = WmsSandbox()
    with SandboxServer(sandbox.app) as server:
        yield sandbox, server


@pytest.fixture
def shopify_server() -> Iterator[SandboxServer]:
    with SandboxServer(create_shopify_sandbox()) as server:
        yield server


@pytest.fixture
def stripe_server() -> Iterator[SandboxServer]:
    with SandboxServer(create_stripe_sandbox()) as server:
        yield server
