"""Canonical events that start or feed workflows, as bus subscriptions.

``order.created`` from a storefront starts an order-to-fulfilment (one workflow per order, so
a redelivered event finds the first); ``shipment.dispatched`` from the ERP's change capture is
handed to the fulfilment waiting for that order. ``fulfillment_subscriptions()`` returns both
as :class:`~retailsync.bus.backend.Subscription` objects for ``bootstrap.subscriptions``.
"""

from __future__ import annotations

import re
from typing import Any

from retailsync.bus.backend import EventFilter, Subscription
from retailsync.domain.events import CloudEvent
from retailsync.resilience.errors import DownstreamUnavailable, UnknownReference
from retailsync.workflows.errors import InvalidOrderEvent, InvalidShipmentConfirmation
from retailsync.workflows.process import ProcessKind

ORDER_CREATED = "retailsync.order.created"
SHIPMENT_DISPATCHED = "retailsync.shipment.dispatched"
NOT_FROM_A_STOREFRONT = ("urn:retailsync:erp:", "/retailsync/workflows")
"""Sources of ``order.created`` events that are not storefront orders (the ERP's change
capture reports orders the hub itself put there; workflows create replacement orders)."""
_STOREFRONT_EVENT_ID = re.compile(r"^(?P<system>[a-z0-9_-]+):order:(?P<ref>[^:]+):created$")


def storefront_reference(event: CloudEvent) -> tuple[str, str] | None:
    """``(system, storefront order id)`` an ``order.created`` event came from, when it says.

    Storefront connectors name their events ``<system>:order:<their id>:created`` (the
    Shopify connector does); ``data.storefront_order_ref`` wins when present.
    """
    ref = event.data.get("storefront_order_ref")
    if isinstance(ref, str) and ref:
        return str(event.data.get("storefront_system") or "shopify"), ref
    match = _STOREFRONT_EVENT_ID.match(event.id)
    return (match["system"], match["ref"]) if match else None


async def start_fulfillment_from_event(event: CloudEvent, ctx: Any = None) -> bool:
    """Start the order-to-fulfilment of an ``order.created`` event; True when this started it.

    Events from the ERP or from the workflows themselves are not storefront orders and are
    ignored. A hub whose workflows are not running answers a transient error (the bus retries).
    """
    from retailsync.workflows.fulfillment import fulfillment_workflow_id, order_created_request
    from retailsync.workflows.runtime import is_launched
    from retailsync.workflows.service import start_process

    if event.type != ORDER_CREATED or event.source.startswith(NOT_FROM_A_STOREFRONT):
        return False
    if not is_launched():
        raise DownstreamUnavailable(
            "the workflow runtime is not running in this process; the order waits on the bus",
            downstream="workflows",
            operation="start_fulfillment",
        )
    extra: dict[str, Any] = {"correlation_id": event.correlationid or event.id}
    reference = storefront_reference(event)
    if reference is not None:
        extra["storefront_system"], extra["storefront_order_ref"] = reference
    try:
        request = order_created_request(event.data, **extra)
    except InvalidOrderEvent as exc:
        raise UnknownReference(str(exc), operation="start_fulfillment") from exc
    order_id = request["order"]["id"]
    return await start_process(ProcessKind.FULFILLMENT, fulfillment_workflow_id(order_id), request)


async def route_shipment_dispatched(event: CloudEvent, ctx: Any = None) -> bool:
    """Hand a ``shipment.dispatched`` event to the fulfilment waiting for its order.

    True when delivered. A dispatch of an order no fulfilment waits for (placed outside the
    hub, or already complete) is not an error: it is acknowledged and False is returned.
    """
    from retailsync.workflows.errors import NoOrderAwaitingShipment
    from retailsync.workflows.fulfillment import deliver_shipment_confirmation

    shipment = event.data.get("shipment")
    order_id = shipment.get("order_id") if isinstance(shipment, dict) else None
    if not order_id:
        raise UnknownReference(f"shipment event {event.id} names no order (shipment.order_id)")
    try:
        return await deliver_shipment_confirmation(str(order_id), event.model_dump(mode="json"))
    except NoOrderAwaitingShipment:
        return False
    except InvalidShipmentConfirmation as exc:
        raise UnknownReference(str(exc), operation="deliver_shipment_confirmation") from exc


async def _start_handler(event: CloudEvent, ctx: Any) -> None:
    await start_fulfillment_from_event(event, ctx)


async def _shipment_handler(event: CloudEvent, ctx: Any) -> None:
    await route_shipment_dispatched(event, ctx)


def fulfillment_subscriptions() -> list[Subscription]:
    """The bus subscriptions that drive order-to-fulfilment."""
    return [
        Subscription(
            name="workflows.order-fulfilment",
            handler=_start_handler,
            filter=EventFilter(types=(ORDER_CREATED,)),
        ),
        Subscription(
            name="workflows.shipment-confirmations",
            handler=_shipment_handler,
            filter=EventFilter(types=(SHIPMENT_DISPATCHED,)),
        ),
    ]
