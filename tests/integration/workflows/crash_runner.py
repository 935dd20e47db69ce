"""Runs one service refund in its own process, for the crash-recovery test.

``python crash_runner.py HUB_DB LEDGER WORKFLOW_ID ORDER_ID PAYMENT_REF`` launches the runtime
(executor ``crash-worker``), starts the workflow unless it exists (a restart finds it pending
and DBOS recovers it), waits for its result and prints it as JSON. The test sets
``RETAILSYNC_WORKFLOW_CRASH_AFTER_STEPS`` to make the process kill itself at a step boundary.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "workflows"))

from workflow_fakes import Ledger, fake_ports

from retailsync.config import Settings
from retailsync.workflows.runtime import (
    RetrySchedule,
    WorkflowOptions,
    launch_workflows,
    shutdown_workflows,
)
from retailsync.workflows.service import process_result, start_process


async def main(hub_db: str, ledger_path: str, workflow_id: str, order: str, payment: str) -> None:
    settings = Settings(database_url=f"sqlite:///{hub_db}", worker_id="crash-worker")
    options = WorkflowOptions(retry=RetrySchedule(attempts=3, first_delay_seconds=0.01))
    await launch_workflows(settings, fake_ports(Ledger(Path(ledger_path))), options)
    try:
        await start_process(
            "refunds",
            workflow_id,
            {
                "order_id": order,
                "payment_ref": payment,
                "amount": {"amount": "25.00", "currency": "EUR"},
                "lines": [{"sku": "MUG-1", "quantity": 1}],
                "case_ref": "ZD-1",
                "requested_by": "agent-bob",
                "requested_at": "2026-03-05T10:00:00+00:00",
            },
        )
        result = await asyncio.wait_for(process_result(workflow_id), timeout=60)
        print(json.dumps({"state": result["state"], "details": result["details"]}))
    finally:
        shutdown_workflows()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
