"""A live Tryton ERP for the end-to-end ERP tests: one server per test session.

The server runs on a copy of the cached template database (built on first use, ~30-80 s; then
a 5 ms copy), so every session starts from the same seed data. Tests create their own orders
with fresh canonical ids, so they do not depend on each other's records.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import sqlalchemy as sa
from erp_e2e_support import SqlRecordingPublisher, connection_for
from sqlalchemy.engine import Engine

from retailsync.connectors.erp.adapter import TrytonErpAdapter
from retailsync.connectors.erp.client import TrytonClient
from retailsync.db import create_engine_for, upgrade_database
from retailsync.sandbox.erp import ErpSandbox

pytestmark = pytest.mark.erp


@pytest.fixture(scope="session")
def erp_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ErpSandbox]:
    """A running trytond on a private copy of the template database."""
    sandbox = ErpSandbox(tmp_path_factory.mktemp("erp-sandbox"))
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture(scope="session")
async def erp_client(erp_sandbox: ErpSandbox) -> AsyncIterator[TrytonClient]:
    async with TrytonClient(connection_for(erp_sandbox)) as client:
        yield client


@pytest.fixture(scope="session")
def erp_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The hub's database (SQLite) with the cross-reference and ERP change-capture tables."""
    url = f"sqlite:///{tmp_path_factory.mktemp('hub-db') / 'hub.sqlite'}"
    upgrade_database(url, "erp_0001")
    engine = create_engine_for(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE recorded_events (event_id TEXT PRIMARY KEY, type TEXT NOT NULL,"
                " subject TEXT, data TEXT NOT NULL)"
            )
        )
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def erp_adapter(erp_client: TrytonClient, erp_engine: Engine) -> TrytonErpAdapter:
    return TrytonErpAdapter(erp_client, erp_engine)


@pytest.fixture(scope="session")
def recording_publisher(erp_engine: Engine) -> SqlRecordingPublisher:
    return SqlRecordingPublisher(erp_engine)
