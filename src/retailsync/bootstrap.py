"""The one place that builds the hub from its settings and picks the adapters.

Everything that talks to the outside (database engine, event bus backend, connectors) is
chosen here, so tests swap a component in one line and the rest of the code never decides
which implementation it runs against. :func:`run_hub` runs the hub's background work (event
delivery, deferred-write drainers, ERP change capture, the CSV drop folder) for
``retailsync serve`` and ``retailsync worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.engine import Engine

from retailsync.bus.backend import EventBusBackend, Subscription
from retailsync.bus.runtime import create_bus
from retailsync.config import DeploymentMode, Settings, get_settings
from retailsync.connectors.webhook_protocol import WebhookReceiver
from retailsync.db import create_engine_for, upgrade_database
from retailsync.domain.events import CloudEvent
from retailsync.observability.correlation import CorrelatingPublisher
from retailsync.observability.instrument import (
    flush_trace_store,
    install_observability,
    traced_handler,
)
from retailsync.observability.logging import configure_logging, get_logger
from retailsync.observability.monitor import SlaMonitor
from retailsync.observability.settings import observability_settings
from retailsync.reconcile.live_sources import reconcile_sources
from retailsync.reconcile.schedule import scheduled_reconciliations
from retailsync.resilience import BreakerState, Downstreams
from retailsync.resilience.metrics import register_metrics
from retailsync.workflows.runtime import workflow_lifespan
from retailsync.workflows.steps import WorkflowPorts

_log = get_logger("retailsync.hub")

BackgroundJob = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class ConfigurationError(Exception):
    """The settings describe a hub that cannot run; the message says what to change."""


@dataclass
class Hub:
    """The wired application: settings plus the adapters chosen for them."""

    settings: Settings
    engine: Engine
    downstreams: Downstreams
    bus: EventBusBackend
    adapters: dict[str, Any] = field(default_factory=dict)
    webhook_receivers: dict[str, WebhookReceiver] = field(default_factory=dict)
    background_jobs: dict[str, BackgroundJob] = field(default_factory=dict)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def aclose(self) -> None:
        """Release what the hub holds open (connections, clients, background helpers)."""
        for closer in reversed(self.closers):
            with contextlib.suppress(Exception):
                await closer()
        await self.downstreams.close()
        self.engine.dispose()

    def close(self) -> None:
        self.engine.dispose()


def check_deployment(settings: Settings) -> None:
    """Refuse combinations that would silently break the hub's guarantees."""
    if settings.mode is DeploymentMode.SCALE_OUT and settings.is_sqlite:
        raise ConfigurationError(
            "scale-out mode needs PostgreSQL: SQLite serves one process only, so limits and "
            "work sharing would not hold across workers. Set RETAILSYNC_DATABASE_URL="
            "postgresql+psycopg://user@host/db, or run `retailsync serve` in embedded mode."
        )


def check_worker(settings: Settings) -> None:
    """A separate worker process shares the database with the API: SQLite cannot do that."""
    if settings.is_sqlite:
        raise ConfigurationError(
            "`retailsync worker` needs PostgreSQL: on SQLite the API process already runs the "
            "event delivery and workflows (`retailsync serve`). For scale-out set "
            "RETAILSYNC_MODE=scale-out and RETAILSYNC_DATABASE_URL=postgresql+psycopg://…"
        )


def subscriptions(hub: Hub) -> list[Subscription]:
    """Every subscriber the hub delivers canonical events to."""
    from retailsync.bus.backend import EventFilter
    from retailsync.reconcile.correctors import correction_subscriptions
    from retailsync.reconcile.projection import AvailabilityProjection
    from retailsync.views import order_360_subscription
    from retailsync.workflows.routing import fulfillment_subscriptions

    availability = AvailabilityProjection(hub.settings.availability)
    own = [
        Subscription(
            name=availability.subscription,
            handler=availability.handle,
            filter=EventFilter(types=availability.event_types),
        ),
        order_360_subscription(),
        *correction_subscriptions(hub),
        # Order-to-fulfillment books storefront orders in the ERP: only with an ERP wired.
        *(fulfillment_subscriptions() if "erp" in hub.adapters else []),
        Subscription(
            name="workflows.warehouse-receipts",
            handler=route_warehouse_receipt,
            filter=EventFilter(types=WAREHOUSE_RECEIPT_TYPES),
        ),
    ]
    return [replace(s, handler=traced_handler(s.name, s.handler)) for s in own]


WAREHOUSE_RECEIPT_TYPES = ("retailsync.return.received", "retailsync.return.inspected")


async def route_warehouse_receipt(event: CloudEvent, ctx: object) -> None:
    """Hand a warehouse receipt to the return workflow waiting for it.

    A receipt no workflow waits for is a business exception (a person checks the RMA).
    """
    from retailsync.resilience.errors import UnknownReference
    from retailsync.workflows.errors import InvalidWarehouseReceipt, NoReturnAwaitingReceipt
    from retailsync.workflows.returns import deliver_warehouse_receipt

    rma_id = event.data.get("rma_id") or event.subject
    if not rma_id:
        raise UnknownReference(f"warehouse receipt {event.id} names no return (rma_id)")
    try:
        await deliver_warehouse_receipt(str(rma_id), event.model_dump(mode="json"))
    except (NoReturnAwaitingReceipt, InvalidWarehouseReceipt) as exc:
        raise UnknownReference(str(exc), operation="deliver_warehouse_receipt") from exc


def workflow_ports(hub: Hub) -> WorkflowPorts:
    """The adapters the durable workflows' steps call, as wired for this hub."""
    return WorkflowPorts(
        erp=hub.adapters.get("erp"),
        payments=hub.adapters.get("payments"),
        service_desk=hub.adapters.get("service_desk"),
        warehouse=hub.adapters.get("warehouse"),
        commerce=hub.adapters.get("commerce"),
        publisher=hub.bus,
        audit_engine=hub.engine,
    )


def _breaker_probe(downstreams: Downstreams) -> Callable[[str], Awaitable[bool]]:
    async def downstream_is_healthy(name: str) -> bool:
        if name not in downstreams.names():
            return True
        return downstreams[name].breaker.state is BreakerState.CLOSED

    return downstream_is_healthy


def _wire_erp(hub: Hub) -> None:
    erp_settings = hub.settings.connectors.erp
    if erp_settings is None:
        return
    from retailsync.connectors.erp.adapter import TrytonErpAdapter
    from retailsync.connectors.erp.client import TrytonClient
    from retailsync.connectors.erp.poller import ErpChangePoller
    from retailsync.connectors.erp.queries import TrytonErpQueries

    client = TrytonClient(erp_settings.connection(), guard=hub.downstreams["erp"])
    adapter = TrytonErpAdapter(client, hub.engine)
    hub.adapters["erp"] = adapter
    hub.adapters["erp_queries"] = TrytonErpQueries(adapter)
    hub.closers.append(client.aclose)
    # Changes the ERP reports join the trace of the order they are about.
    poller = ErpChangePoller(adapter, hub.engine, CorrelatingPublisher(hub.bus))

    async def capture_erp_changes(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await poller.poll_once()
            except Exception as exc:  # the poller resumes from its cursor next time
                _log.warning("erp change capture failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=erp_settings.poll_interval_seconds)

    hub.background_jobs["erp-change-capture"] = capture_erp_changes


def _wire_service_desk(hub: Hub) -> None:
    zendesk = hub.settings.connectors.zendesk
    if zendesk is None:
        return
    from retailsync.connectors.zendesk.client import ZendeskClient
    from retailsync.connectors.zendesk.inbound import ZendeskWebhookReceiver
    from retailsync.connectors.zendesk.outbound import ZendeskServiceDesk

    client = ZendeskClient(zendesk, downstream=hub.downstreams["service_desk"])
    hub.adapters["service_desk"] = ZendeskServiceDesk(client, zendesk, engine=hub.engine)
    hub.closers.append(client.aclose)
    receiver = ZendeskWebhookReceiver(zendesk, engine=hub.engine)
    hub.webhook_receivers[receiver.name] = receiver


def _wire_warehouse(hub: Hub) -> None:
    wms = hub.settings.connectors.wms
    if wms is None:
        return
    from retailsync.connectors.wms.client import WmsClient
    from retailsync.connectors.wms.inbound import WmsWebhookReceiver
    from retailsync.connectors.wms.outbound import WmsWarehouse

    client = WmsClient(wms, downstream=hub.downstreams["wms"])
    hub.adapters["warehouse"] = WmsWarehouse(client, wms)
    hub.closers.append(client.aclose)
    receiver = WmsWebhookReceiver(wms)
    hub.webhook_receivers[receiver.name] = receiver


def _wire_payments(hub: Hub) -> None:
    stripe = hub.settings.connectors.stripe
    if stripe is None:
        return
    from retailsync.connectors.stripe.inbound import StripeWebhookReceiver
    from retailsync.connectors.stripe.outbound import StripePayments

    payments = StripePayments(stripe, downstream=hub.downstreams["payments"])
    hub.adapters["payments"] = payments
    hub.closers.append(payments.aclose)
    receiver = StripeWebhookReceiver(stripe)
    hub.webhook_receivers[receiver.name] = receiver


def _wire_commerce(hub: Hub) -> None:
    shopify = hub.settings.connectors.shopify
    if shopify is None:
        return
    from retailsync.connectors.shopify.inbound import ShopifyWebhookReceiver
    from retailsync.connectors.shopify.outbound import ShopifyCommerce

    commerce = ShopifyCommerce(shopify, downstream=hub.downstreams["commerce"])
    hub.adapters["commerce"] = commerce
    hub.closers.append(commerce.aclose)
    receiver = ShopifyWebhookReceiver(shopify)
    hub.webhook_receivers[receiver.name] = receiver


def _wire_batch(hub: Hub) -> None:
    batch = hub.settings.connectors.batch
    if batch is None:
        return
    from retailsync.bus.intake import record_intake_failure
    from retailsync.connectors.batch.watcher import DropFolderWatcher

    engine = hub.engine

    def on_row_error(*args: Any, **kwargs: Any) -> None:
        record_intake_failure(engine, "batch", *args, **kwargs)

    watcher = DropFolderWatcher(
        batch, engine=engine, publisher=CorrelatingPublisher(hub.bus), on_row_error=on_row_error
    )
    hub.background_jobs["csv-drop-folder"] = watcher.run


def bootstrap(
    settings: Settings | None = None, *, migrate: bool = True, configure_logs: bool = True
) -> Hub:
    """Build the hub: check the settings, apply migrations, pick and wire the adapters."""
    settings = settings or get_settings()
    check_deployment(settings)
    if configure_logs:
        configure_logging(
            settings.log.level, json_output=settings.log.json_output, mask_pii=settings.log.mask_pii
        )
    url = settings.resolved_database_url
    if migrate:
        upgrade_database(url)
    engine = create_engine_for(url)
    downstreams = Downstreams(settings.resilience, engine=engine)
    metrics = install_observability(engine, settings)
    if metrics is not None:
        register_metrics(downstreams, metrics.registry)
    hub = Hub(
        settings=settings,
        engine=engine,
        downstreams=downstreams,
        # Subscriptions registered through retailsync.bus.runtime.register (extensions) first,
        # then the hub's own below.
        bus=create_bus(settings, health_probe=_breaker_probe(downstreams)),
    )
    hub.closers.append(flush_trace_store)  # closers run last first: this one after the rest
    _wire_erp(hub)
    _wire_service_desk(hub)
    _wire_warehouse(hub)
    _wire_payments(hub)
    _wire_commerce(hub)
    _wire_batch(hub)
    hub.background_jobs["sla-monitor"] = SlaMonitor(engine, observability_settings(settings)).run
    hub.adapters["reconcile_policy"] = settings.reconcile
    if hub.adapters.keys() & {"erp", "warehouse", "commerce", "payments"}:
        # Something to compare: reconcile it on demand and on schedule.
        hub.adapters["reconcile_sources"] = reconcile_sources(hub)
        hub.background_jobs["reconcile-schedule"] = scheduled_reconciliations(hub)
    hub.adapters["availability_settings"] = settings.availability
    for subscription in subscriptions(hub):
        hub.bus.subscribe(subscription)
    return hub


@contextlib.asynccontextmanager
async def run_hub(
    hub: Hub, *, deliver_events: bool = True, run_workflows: bool = True
) -> AsyncIterator[asyncio.Event]:
    """Start the bus, the durable workflows and the background work; stop it all on exit.

    Yields the stop event (set it to stop early). ``deliver_events`` runs event delivery in
    this process: always in embedded mode, in scale-out mode only in workers.
    """
    try:
        async with contextlib.AsyncExitStack() as stack:
            if run_workflows:
                await stack.enter_async_context(
                    workflow_lifespan(hub.settings, workflow_ports(hub))
                )
            async with _run_background(hub, deliver_events) as stop:
                yield stop
    finally:
        await hub.aclose()


@contextlib.asynccontextmanager
async def _run_background(hub: Hub, deliver_events: bool) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    await hub.bus.start()
    jobs: dict[str, BackgroundJob] = dict(hub.background_jobs)
    jobs["deferred-writes"] = hub.downstreams.run_drainers
    if deliver_events:
        jobs["event-delivery"] = hub.bus.run_delivery
    tasks: dict[asyncio.Task[None], str] = {
        asyncio.create_task(job(stop), name=name): name for name, job in jobs.items()
    }
    _log.info("hub started", background=sorted(jobs), mode=str(hub.settings.mode))
    try:
        yield stop
    finally:
        stop.set()
        done, pending = await asyncio.wait(tasks, timeout=10)
        for task in pending:
            task.cancel()
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                _log.error("background job failed", job=tasks[task], error=str(task.exception()))
        await hub.bus.close()
