"""The runtime's configuration: system database, serializer, version, executor id."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from retailsync.config import Settings
from retailsync.workflows.runtime import (
    APPLICATION_VERSION,
    WorkflowRuntime,
    dbos_config,
    system_database_url,
)


def test_sqlite_hub_gets_a_sibling_dbos_file(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'hub.sqlite'}")
    assert system_database_url(settings) == f"sqlite:///{tmp_path / 'hub.dbos.sqlite'}"


def test_postgres_hub_shares_its_database() -> None:
    settings = Settings(database_url="postgresql://app@db.example/retail")
    assert system_database_url(settings) == "postgresql+psycopg://app@db.example/retail"


def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(ValueError, match="SQLite file"):
        system_database_url(Settings(database_url="sqlite:///:memory:"))


def test_config_is_explicit_about_version_identity_and_json(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'h.sqlite'}", worker_id="worker-7")
    config = dbos_config(settings)
    assert config["application_version"] == APPLICATION_VERSION
    assert config["executor_id"] == "worker-7"
    assert config["serializer"].name() == "portable_json"


async def test_inputs_and_outputs_are_stored_as_readable_json(
    runtime: WorkflowRuntime, tmp_path: Path
) -> None:
    from dbos import DBOS, SetWorkflowID

    from retailsync.workflows.process import workflow_id_for
    from retailsync.workflows.refund import service_refund

    wid = workflow_id_for("refunds", "client", "json-check")
    with SetWorkflowID(wid):
        handle = await DBOS.start_workflow_async(
            service_refund,
            {
                "order_id": "ord_missing",
                "payment_ref": "pi_1",
                "lines": [{"sku": "A", "quantity": 1}],
                "amount": {"amount": "5.00", "currency": "EUR"},
                "requested_at": "2026-03-02T10:00:00+00:00",
            },
        )
    result = await handle.get_result()
    assert result["state"] == "rejected"
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'hub.dbos.sqlite'}")
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT i.inputs, o.output, s.serialization FROM workflow_status s "
                "JOIN workflow_input i USING (workflow_uuid) "
                "JOIN workflow_output o USING (workflow_uuid) WHERE s.workflow_uuid = :w"
            ),
            {"w": wid},
        ).one()
    engine.dispose()
    assert row.serialization == "portable_json"
    assert '"order_id":"ord_missing"' in row.inputs
    assert '"state":"rejected"' in row.output
