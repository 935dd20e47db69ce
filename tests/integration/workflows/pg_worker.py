"""A hub worker process on PostgreSQL for the scale-out tests: the durable runtime, no API.

``python pg_worker.py DATABASE_URL LEDGER EXECUTOR_ID APP_VERSION ERP_RATE_LIMIT`` launches the
workflow runtime with file-backed fakes of the ports (shared through LEDGER), prints ``ready``
and runs the queues (process and ERP lanes) until it gets SIGTERM (or SIGKILL from a test).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "workflows"))

from workflow_fakes import Ledger, fake_ports

from retailsync.config import Settings
from retailsync.domain.policies import RefundPolicy
from retailsync.workflows.runtime import (
    RetrySchedule,
    WorkflowOptions,
    launch_workflows,
    shutdown_workflows,
)

POLICY = RefundPolicy.from_mapping(
    {
        "approval_threshold": {"EUR": "100"},
        "approval_timeout_seconds": 600,
        "escalation_timeout_seconds": 600,
    }
)


async def main(url: str, ledger: str, executor: str, version: str, erp_rate: str) -> None:
    settings = Settings(database_url=url, worker_id=executor)
    options = WorkflowOptions(
        application_version=version,
        erp_rate_limit=int(erp_rate),
        erp_worker_concurrency=10,
        # At most 4 processes per worker, so a dozen refunds must be shared by the workers.
        process_queue_concurrency=4,
        retry=RetrySchedule(attempts=3, first_delay_seconds=0.01),
        refund_policy=POLICY,
        queue_polling_interval_seconds=0.05,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await launch_workflows(settings, fake_ports(Ledger(Path(ledger))), options)
    print("ready", flush=True)
    try:
        await stop.wait()
    finally:
        shutdown_workflows()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
