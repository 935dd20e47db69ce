"""A whole hub for the console tests: SQLite, the governed API with the console mounted, the SQL
event bus delivering to an ERP-bound subscriber that fails on demand, and the durable workflow
runtime on file-backed port fakes (the same ones the workflow tests use)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from retailsync.api.app import create_app
from retailsync.api.clients import create_api_client
from retailsync.api.scopes import Scope
from retailsync.bootstrap import Hub, bootstrap
from retailsync.bus.backend import (
    BackendConfig,
    BusOptions,
    DeliveryContext,
    EventBusBackend,
    EventFilter,
    RetryPolicy,
    Subscription,
)
from retailsync.bus.backends.sql import create_backend
from retailsync.config import Settings
from retailsync.console.routes import router as console_router
from retailsync.domain.events import CloudEvent
from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.resilience.errors import UnknownReference

FAKES_DIR = Path(__file__).resolve().parents[2] / "unit" / "workflows"
if str(FAKES_DIR) not in sys.path:
    sys.path.insert(0, str(FAKES_DIR))

SUBSCRIBER = "erp-order-sync"
ORDER = derive_id(EntityKind.ORDER, "console", "1001")
PAYMENT = "pi_console_1"


@dataclass
class ErpOrderSync:
    """Pushes order events to the ERP; refuses orders whose customer the ERP does not know
    until that reference data is fixed (``unknown_customers``)."""

    unknown_customers: set[str] = field(default_factory=set)
    applied: list[str] = field(default_factory=list)

    async def __call__(self, event: CloudEvent, ctx: DeliveryContext) -> None:
        order = (event.data or {}).get("order") or {}
        customer = order.get("customer_id")
        if customer in self.unknown_customers:
            raise UnknownReference(
                f"the ERP has no customer {customer}; create it in the ERP, then retry",
                downstream="erp",
                operation="create_order",
            )
        self.applied.append(event.id)


def order_event(
    order_id: str, *, customer: str, total: str = "200.00", correlation_id: str | None = None
) -> CloudEvent:
    lines = [
        {
            "line_no": 1,
            "sku": "MUG-1",
            "description": "Mug",
            "quantity": 4,
            "unit_price": {"amount": "25.00", "currency": "EUR"},
            "line_total": {"amount": "100.00", "currency": "EUR"},
            "tax": {"amount": "0.00", "currency": "EUR"},
        },
        {
            "line_no": 2,
            "sku": "TEE-2",
            "description": "T-shirt",
            "quantity": 2,
            "unit_price": {"amount": "50.00", "currency": "EUR"},
            "line_total": {"amount": "100.00", "currency": "EUR"},
            "tax": {"amount": "0.00", "currency": "EUR"},
        },
    ]
    money = {"amount": total, "currency": "EUR"}
    return CloudEvent.new(
        type="retailsync.order.created",
        source="/retailsync/connectors/shopify",
        subject=order_id,
        data={
            "order": {
                "id": order_id,
                "version": 1,
                "customer_id": customer,
                "channel": "web",
                "status": "confirmed",
                "currency": "EUR",
                "lines": lines,
                "subtotal": money,
                "shipping_total": {"amount": "0.00", "currency": "EUR"},
                "tax_total": {"amount": "0.00", "currency": "EUR"},
                "grand_total": money,
                "placed_at": (datetime.now(UTC) - timedelta(days=2)).isoformat(),
            },
            "payment_ref": PAYMENT,
        },
        correlationid=correlation_id,
    )


@dataclass
class ConsoleHub:
    hub: Hub
    app: FastAPI
    bus: EventBusBackend
    erp_sync: ErpOrderSync
    ledger: Any
    loop: asyncio.AbstractEventLoop | None = None

    def issue_key(self, name: str, scopes: Iterable[Scope | str]) -> str:
        pepper = self.app.state.governance.pepper
        with self.hub.engine.begin() as connection:
            issued = create_api_client(
                connection,
                name=name,
                scopes=[Scope(s) for s in scopes],
                pepper=pepper,
                actor="test",
                correlation_id=None,
            )
        return issued.key

    def run(self, coroutine: Any, timeout: float = 30.0) -> Any:
        """Run ``coroutine`` on the server's event loop (from the test thread)."""
        assert self.loop is not None, "the app is not serving"
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


def build_console_hub(
    tmp_path: Path, *, with_workflows: bool = True, approval_threshold: str = "100"
) -> ConsoleHub:
    """The hub app; the bus and the workflow runtime start with the app's lifespan."""
    from workflow_fakes import Ledger, fake_ports

    from retailsync.domain.policies import RefundPolicy
    from retailsync.workflows.runtime import (
        RetrySchedule,
        WorkflowOptions,
        launch_workflows,
        shutdown_workflows,
    )

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'hub.sqlite'}", worker_id="console")
    hub = bootstrap(settings, configure_logs=False)
    app = create_app(hub)
    app.include_router(console_router)
    erp_sync = ErpOrderSync()
    options = BusOptions(poll_interval=0.02, lease_ttl=2.0, auto_retry_interval=3600.0)
    bus = create_backend(
        BackendConfig(
            database_url=settings.resolved_database_url, worker_id="console", options=options
        )
    )
    bus.subscribe(
        Subscription(
            name=SUBSCRIBER,
            handler=erp_sync,
            filter=EventFilter(types=("retailsync.order.*",)),
            retry=RetryPolicy(max_attempts=1, business_max_attempts=1, initial_backoff=0.01),
            downstream="erp",
        )
    )
    app.state.bus = bus
    ledger = Ledger(tmp_path / "world.sqlite")
    ledger.add_order(ORDER, "200.00", lines={"MUG-1": (4, "25.00"), "TEE-2": (2, "50.00")})
    ledger.add_payment(PAYMENT, "200.00")
    console_hub = ConsoleHub(hub=hub, app=app, bus=bus, erp_sync=erp_sync, ledger=ledger)
    policy = RefundPolicy.from_mapping({"approval_threshold": {"EUR": approval_threshold}})

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        console_hub.loop = asyncio.get_running_loop()
        await bus.start()
        stop = asyncio.Event()
        delivery = asyncio.create_task(bus.run_delivery(stop))
        if with_workflows:
            await launch_workflows(
                settings,
                fake_ports(ledger),
                WorkflowOptions(
                    retry=RetrySchedule(attempts=2, first_delay_seconds=0.01),
                    refund_policy=policy,
                    queue_polling_interval_seconds=0.05,
                ),
            )
        try:
            yield
        finally:
            if with_workflows:
                shutdown_workflows()
            stop.set()
            try:
                await asyncio.wait_for(delivery, timeout=10)
            finally:
                await bus.close()

    app.router.lifespan_context = lifespan
    return console_hub


__all__ = [
    "ORDER",
    "PAYMENT",
    "SUBSCRIBER",
    "ConsoleHub",
    "build_console_hub",
    "order_event",
]
