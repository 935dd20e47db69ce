"""Workflows feed the hub's metrics: started, finished by outcome, each step's duration."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from workflow_fakes import Ledger

from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.observability.metrics import install_metrics, uninstall_metrics
from retailsync.observability.tracecontext import normalise_correlation_id
from retailsync.workflows import steps
from retailsync.workflows.runtime import WorkflowRuntime
from retailsync.workflows.service import process_result, start_process

ORDER = derive_id(EntityKind.ORDER, "test", "obs")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    registry = CollectorRegistry()
    install_metrics(registry=registry)
    yield registry
    uninstall_metrics()


async def test_a_refund_counts_its_start_its_outcome_and_its_steps(
    runtime: WorkflowRuntime, ledger: Ledger, registry: CollectorRegistry
) -> None:
    ledger.add_order(ORDER, "100.00", lines={"MUG-1": (2, "25.00")})
    ledger.add_payment("pi_obs", "100.00")
    body = {
        "order_id": ORDER,
        "payment_ref": "pi_obs",
        "amount": {"amount": "25.00", "currency": "EUR"},
        "lines": [{"sku": "MUG-1", "quantity": 1}],
        "requested_at": "2026-03-05T10:00:00+00:00",
        "correlation_id": normalise_correlation_id(f"00-{TRACE}-00f067aa0ba902b7-01"),
    }
    assert await start_process("refunds", "refund-observed", body)
    result = await process_result("refund-observed")
    assert result["state"] == "completed"
    assert result["correlation_id"] == TRACE

    def value(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    assert value("retailsync_workflows_started_total", workflow="refunds") == 1
    assert value("retailsync_workflows_completed_total", workflow="refunds", outcome="completed")
    assert (
        value("retailsync_workflow_step_duration_seconds_count", step="issue_refund", status="ok")
        == 1
    )
    assert steps.system_of(steps.issue_refund) == "payments"
    assert steps.system_of(steps.read_erp_order) == "erp"
