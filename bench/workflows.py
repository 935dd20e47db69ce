"""Return-to-refund throughput and latency, next to the durable engine's floor.

For each backend (SQLite, and PostgreSQL when one answers) this runs ``--returns`` complete
return-to-refund workflows, ``--concurrency`` at a time: start, wait until the warehouse is
expected, deliver the ``return.received`` and ``return.inspected`` events, wait for the refund.
The payment service, the service desk and the warehouse are the Stripe, Zendesk and WMS
sandboxes over real HTTP; the ERP is the file-backed stand-in of the unit tests (the live
Tryton confirms ~1-2 documents/s, which would measure Tryton, not the hub).

Baseline, in the same run: bare DBOS workflows with as many no-op steps as one return-to-refund
checkpoints (the engine's floor on that database). Printed: completions/s, p50/p99 latency and
the ratio return-to-refund / baseline.

    .venv/bin/python bench/workflows.py [--returns 60] [--concurrency 10] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, SetWorkflowID
from pydantic import SecretStr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "unit" / "workflows"))

from workflow_fakes import FakeErp, Ledger  # noqa: E402

from retailsync.config import Settings  # noqa: E402
from retailsync.connectors.stripe import StripePayments, load_stripe_settings  # noqa: E402
from retailsync.connectors.wms.client import WmsClient  # noqa: E402
from retailsync.connectors.wms.config import WmsSettings  # noqa: E402
from retailsync.connectors.wms.outbound import WmsWarehouse  # noqa: E402
from retailsync.connectors.zendesk.client import ZendeskClient  # noqa: E402
from retailsync.connectors.zendesk.config import ZendeskSettings  # noqa: E402
from retailsync.connectors.zendesk.outbound import ZendeskServiceDesk  # noqa: E402
from retailsync.domain.identifiers import EntityKind, derive_id  # noqa: E402
from retailsync.sandbox.server import SandboxServer  # noqa: E402
from retailsync.sandbox.stripe import (  # noqa: E402
    SANDBOX_API_KEY,
    SANDBOX_WEBHOOK_SECRET,
    StripeSandbox,
    create_stripe_sandbox,
)
from retailsync.sandbox.wms import WmsSandbox  # noqa: E402
from retailsync.sandbox.zendesk import ZendeskSandbox  # noqa: E402
from retailsync.workflows import steps  # noqa: E402
from retailsync.workflows.returns import deliver_warehouse_receipt  # noqa: E402
from retailsync.workflows.runtime import (  # noqa: E402
    WorkflowOptions,
    launch_workflows,
    shutdown_workflows,
)
from retailsync.workflows.service import process_result, process_status, start_process  # noqa: E402

NOW = "2026-03-08T10:00:00+00:00"


@DBOS.step(name="bench_noop_step")
async def noop_step(index: int) -> int:
    return index


@DBOS.workflow(name="bench_noop_workflow")
async def noop_workflow(step_count: int) -> int:
    for index in range(step_count):
        await noop_step(index)
    return step_count


def summary(label: str, latencies: list[float], elapsed: float) -> dict[str, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    result = {
        "per_second": len(latencies) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": p99 * 1000,
    }
    print(
        f"  {label:<22} {result['per_second']:8.1f} /s   p50 {result['p50_ms']:7.1f} ms"
        f"   p99 {result['p99_ms']:7.1f} ms   ({len(latencies)} runs)"
    )
    return result


async def run_many(
    count: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> tuple[list[float], float]:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def timed(n: int) -> None:
        async with gate:
            started = time.perf_counter()
            await one(n)
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(timed(n) for n in range(count)))
    return latencies, time.perf_counter() - began


async def one_return(tag: str, n: int, stripe: StripeSandbox, ledger: Ledger) -> None:
    order = derive_id(EntityKind.ORDER, tag, str(n))
    ledger.add_order(order, "100.00", lines={"MUG-1": (4, "25.00")})
    intent = stripe.seed_payment_intent(amount=10000, currency="eur")
    workflow_id = f"bench-{tag}-{n}"
    await start_process(
        "returns",
        workflow_id,
        {
            "order_id": order,
            "payment_ref": intent["id"],
            "lines": [{"sku": "MUG-1", "quantity": 1, "reason": "damaged"}],
            "case_ref": "1001",
            "requested_at": NOW,
        },
    )
    for _ in range(100_000):
        if (await process_status(workflow_id, with_steps=False))["state"] == "awaiting_receipt":
            break
        await asyncio.sleep(0.01)
    rma = steps.derived_return_id(workflow_id)
    await deliver_warehouse_receipt(
        rma,
        {
            "type": "return.inspected",
            "data": {
                "version": 1,
                "lines": [
                    {
                        "sku": "MUG-1",
                        "result": {
                            "outcome": "restock",
                            "accepted_quantity": 1,
                            "inspected_at": NOW,
                        },
                    }
                ],
                "inspected_at": NOW,
            },
        },
    )
    result = await process_result(workflow_id)
    if result["state"] != "completed":
        raise RuntimeError(f"{workflow_id} ended {result['state']}: {result['details']}")


async def checkpoints_of(workflow_id: str) -> int:
    """Steps DBOS recorded for the return and its receipt mailbox."""
    own = await DBOS.list_workflow_steps_async(workflow_id) or []
    mailbox = await DBOS.list_workflow_steps_async(
        f"return-receipt-{steps.derived_return_id(workflow_id)}"
    )
    return len(own) + len(mailbox or [])


async def bench_backend(
    label: str, database_url: str, args: argparse.Namespace, urls: dict[str, str], stripe: Any
) -> None:
    print(f"\n{label}: {database_url.split('@')[-1]}")
    work = Path(tempfile.mkdtemp(prefix="bench-workflows-"))
    ledger = Ledger(work / "erp.sqlite")
    ledger.add_stock("MUG-1", "STO", 1_000_000)
    zendesk_settings = ZendeskSettings.model_validate(
        {
            "base_url": urls["zendesk"],
            "email": "agent@example.com",
            "api_token": SecretStr("sandbox-token"),
            "webhook_secret": SecretStr("zendesk-secret"),
        }
    )
    wms_settings = WmsSettings.model_validate(
        {
            "base_url": urls["wms"],
            "api_key": SecretStr("wms-key"),
            "webhook_secret": SecretStr("wms-secret"),
        }
    )
    stripe_settings = load_stripe_settings(
        {
            "api_key": SANDBOX_API_KEY,
            "webhook_secret": SANDBOX_WEBHOOK_SECRET,
            "base_url": urls["stripe"],
        }
    )
    settings = Settings(database_url=database_url, worker_id=f"bench-{label.lower()}")
    options = WorkflowOptions(erp_rate_limit=100_000, queue_polling_interval_seconds=0.05)
    from retailsync.workflows.steps import WorkflowPorts

    async with (
        StripePayments(stripe_settings) as payments,
        ZendeskClient(zendesk_settings) as zendesk_client,
        WmsClient(wms_settings) as wms_client,
    ):
        ports = WorkflowPorts(
            erp=FakeErp(ledger),
            payments=payments,
            service_desk=ZendeskServiceDesk(zendesk_client, zendesk_settings),
            warehouse=WmsWarehouse(wms_client, wms_settings),
        )
        await launch_workflows(settings, ports, options)
        try:
            tag = uuid.uuid4().hex[:8]
            await one_return(f"{tag}-warm", 0, stripe, ledger)
            step_count = await checkpoints_of(f"bench-{tag}-warm-0")
            latencies, elapsed = await run_many(
                args.returns, args.concurrency, lambda n: one_return(tag, n, stripe, ledger)
            )
            returns = summary("return-to-refund", latencies, elapsed)

            async def one_noop(n: int) -> None:
                with SetWorkflowID(f"noop-{tag}-{n}"):
                    handle = await DBOS.start_workflow_async(noop_workflow, step_count)
                await handle.get_result()

            latencies, elapsed = await run_many(args.returns, args.concurrency, one_noop)
            floor = summary(f"baseline ({step_count} no-op)", latencies, elapsed)
            print(
                f"  ratio return-to-refund / baseline: throughput "
                f"{returns['per_second'] / floor['per_second']:.2f}x, p50 latency "
                f"{returns['p50_ms'] / floor['p50_ms']:.1f}x"
            )
        finally:
            shutdown_workflows()


def fresh_postgres(admin_url: str) -> str | None:
    try:
        engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        name = f"bench_workflows_{uuid.uuid4().hex[:8]}"
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
    except Exception as exc:
        print(f"\nPostgreSQL: skipped ({admin_url.split('@')[-1]} does not answer: {exc})")
        return None
    return str(sa.engine.make_url(admin_url).set(database=name))


async def main(args: argparse.Namespace) -> None:
    stripe = StripeSandbox(burst=1_000_000)
    zendesk = ZendeskSandbox(email="agent@example.com", api_token="sandbox-token")
    zendesk.seed_ticket({"id": 1001, "subject": "Returns"})
    wms = WmsSandbox(api_key="wms-key", webhook_secret="wms-secret")
    with (
        SandboxServer(create_stripe_sandbox(stripe)) as stripe_server,
        SandboxServer(zendesk.app) as zendesk_server,
        SandboxServer(wms.app) as wms_server,
    ):
        urls = {
            "stripe": stripe_server.base_url,
            "zendesk": zendesk_server.base_url,
            "wms": wms_server.base_url,
        }
        print(
            f"return-to-refund: {args.returns} returns, {args.concurrency} at a time; "
            "Stripe/Zendesk/WMS sandboxes over HTTP, ERP stand-in"
        )
        sqlite_dir = Path(tempfile.mkdtemp(prefix="bench-workflows-sqlite-"))
        await bench_backend("SQLite", f"sqlite:///{sqlite_dir / 'hub.sqlite'}", args, urls, stripe)
        postgres = fresh_postgres(args.postgres)
        if postgres is not None:
            await bench_backend("PostgreSQL", postgres, args, urls, stripe)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--returns", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument(
        "--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    asyncio.run(main(parser.parse_args()))
