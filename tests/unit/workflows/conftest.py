"""A launched workflow runtime on a fresh SQLite file per test, with file-backed fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from workflow_fakes import Ledger, fake_ports

from retailsync.config import Settings
from retailsync.domain.policies import RefundPolicy
from retailsync.workflows.runtime import (
    RetrySchedule,
    WorkflowOptions,
    WorkflowRuntime,
    launch_workflows,
    shutdown_workflows,
)

FAST_RETRY = RetrySchedule(attempts=3, first_delay_seconds=0.01, max_delay_seconds=0.05)
TEST_POLICY = RefundPolicy.from_mapping(
    {
        "refund_window_days": 30,
        "max_amount": {"EUR": "1000"},
        "approval_threshold": {"EUR": "100"},
        "approval_timeout_seconds": 1,
        "escalation_timeout_seconds": 1,
    }
)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "outside-world.sqlite")


@pytest.fixture
async def runtime(tmp_path: Path, ledger: Ledger) -> AsyncIterator[WorkflowRuntime]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'hub.sqlite'}", worker_id="test")
    options = WorkflowOptions(retry=FAST_RETRY, refund_policy=TEST_POLICY)
    runtime = await launch_workflows(settings, fake_ports(ledger), options)
    yield runtime
    shutdown_workflows()
