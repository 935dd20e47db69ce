"""One phase of an order's journey through a hub process, run as its own process.

``python hub_journey.py PHASE DATABASE_URL VENDOR_URL STATE_JSON``

- ``sell``: the storefront's order arrives (``POST /v1/events`` with a ``traceparent``), the
  ERP subscriber submits it to the ERP and the ERP's dispatch comes back as an event.
- ``return``: the return request arrives in the same trace, the return-to-refund steps
  authorize it in the ERP, book the goods in and pay the refund out.

Every outbound call goes through the resilience guard to a local vendor stand-in that records
the ``traceparent`` it receives. Hops are recorded by the observability helpers the hub wires
into its bus subscriptions, workflow steps and guard.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from retailsync.api.middleware import TraceContextMiddleware
from retailsync.bootstrap import bootstrap
from retailsync.bus.api import router as bus_router
from retailsync.bus.backend import BackendConfig, BusOptions, EventFilter, Subscription
from retailsync.bus.backends.sql import create_backend
from retailsync.config import Settings
from retailsync.domain.events import CloudEvent
from retailsync.observability.instrument import (
    install_observability,
    observe_outbound,
    observe_workflow_step,
    traced_handler,
)
from retailsync.observability.otel import inject_traceparent
from retailsync.observability.testkit import RetailJourney
from retailsync.observability.tracecontext import lineage
from retailsync.observability.traces import HopKind, record_hop
from retailsync.resilience import Downstreams


def _journey(state: dict[str, Any]) -> RetailJourney:
    return RetailJourney(
        order_id=state["order_id"],
        rma_id=state["rma_id"],
        refund_id=state["refund_id"],
        correlation_id=state["trace_id"],
    )


def _with_lineage(event: CloudEvent) -> CloudEvent:
    """The event stamped with the current correlation and causation."""
    return event.model_copy(update=lineage())


async def run(phase: str, database_url: str, vendor_url: str, state: dict[str, Any]) -> None:
    hub = bootstrap(Settings(database_url=database_url), configure_logs=False)
    install_observability(hub.engine, hub.settings)
    downstreams = Downstreams(engine=hub.engine)
    journey = _journey(state)
    base = datetime.fromisoformat(state["t0"])
    vendor = httpx.AsyncClient(base_url=vendor_url, timeout=10)
    bus = create_backend(
        BackendConfig(
            database_url=database_url,
            worker_id=f"hub-{phase}",
            options=BusOptions(poll_interval=0.01, shards=4),
        )
    )

    async def call_vendor(system: str, operation: str) -> None:
        async def request() -> None:
            response = await vendor.post(f"/{system}/{operation}", headers=inject_traceparent({}))
            response.raise_for_status()

        async with observe_outbound(system, operation, order_id=journey.order_id):
            await downstreams[system].call(operation, request)

    # Events a handler emits are published after its delivery commits (on SQLite the
    # delivery holds the write lock while the handler runs).
    outbox: list[CloudEvent] = []

    async def erp_orders(event: CloudEvent, ctx: Any) -> None:
        if event.type == "retailsync.order.created":
            await call_vendor("erp", "submit_order")
            outbox.append(_with_lineage(journey.shipment_dispatched(base + timedelta(hours=2))))
        elif event.type == "retailsync.shipment.dispatched":
            await call_vendor("commerce", "fulfil_order")

    async def return_to_refund(event: CloudEvent, ctx: Any) -> None:
        workflow_id = f"return-{journey.rma_id}"
        steps: list[tuple[str, str, str, CloudEvent]] = [
            (
                "authorize_return_in_erp",
                "erp",
                "create_return",
                journey.return_authorized(base + timedelta(days=3, minutes=4)),
            ),
            (
                "receive_return_in_erp",
                "erp",
                "receive_return",
                journey.return_received(base + timedelta(days=5)),
            ),
            (
                "issue_refund",
                "payments",
                "refund",
                journey.refund_completed(base + timedelta(days=5, hours=2)),
            ),
        ]
        outbox.append(_with_lineage(journey.refund_requested(base + timedelta(days=3))))
        for step, system, operation, emitted in steps:
            async with observe_workflow_step(
                "return_to_refund",
                step,
                workflow_id=workflow_id,
                correlation_id=event.correlationid,
                order_id=journey.order_id,
                system=system,
            ) as observed:
                await call_vendor(system, operation)
                observed.outcome({"ok": True, "value": None})
            outbox.append(_with_lineage(emitted))

    bus.subscribe(
        Subscription(
            name="erp-orders",
            handler=traced_handler("erp-orders", erp_orders),
            filter=EventFilter(
                types=("retailsync.order.created", "retailsync.shipment.dispatched")
            ),
        )
    )
    bus.subscribe(
        Subscription(
            name="returns",
            handler=traced_handler("returns", return_to_refund),
            filter=EventFilter(types=("retailsync.return.requested",)),
        )
    )
    await bus.start()
    app = FastAPI()
    app.include_router(bus_router)
    app.state.bus = bus
    app.add_middleware(TraceContextMiddleware)
    inbound = {"traceparent": f"00-{state['trace_id']}-{state['span_id']}-01"}
    try:
        if phase == "sell":
            first = journey.order_created(base)
            system, operation = "shopify", "orders/create"
        else:
            first = journey.return_requested(base + timedelta(days=3))
            system, operation = "zendesk", "ticket.return_requested"
        record_hop(
            hub.engine,
            kind=HopKind.INBOUND,
            system=system,
            operation=operation,
            status="accepted",
            correlation_id=state["trace_id"],
            order_id=journey.order_id,
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            answer = await client.post(
                "/v1/events", json=[first.model_dump(mode="json")], headers=inbound
            )
        assert answer.status_code == 202, answer.text
        assert answer.headers["traceparent"].split("-")[1] == state["trace_id"]
        await bus.deliver_until_idle(timeout=30)
        while outbox:
            emitted, outbox[:] = list(outbox), []
            for event in emitted:
                await bus.publish([event])
            await bus.deliver_until_idle(timeout=30)
    finally:
        await bus.close()
        await vendor.aclose()
        await downstreams.close()
        hub.close()


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])))
    print(json.dumps({"phase": sys.argv[1], "finished_at": datetime.now(UTC).isoformat()}))
