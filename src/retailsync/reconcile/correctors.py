"""Bus subscribers that apply reconciliation corrections in the system that owns the value.

A correction is an event from ``urn:retailsync:reconcile`` (see
:mod:`retailsync.reconcile.corrections`); each subscriber below turns one kind into the
effect, only where the owner is clear:

==================================  ==============================================================
``inventory.position_reported``     storefront level: ``CommercePort.set_available`` (Shopify
(``reported_by=reconcile:storefront``)  ``inventory_levels/set``) with the item and location ids
                                    of ``reconcile.sources``; absolute, so a repeat is harmless.
``inventory.adjusted``              ERP stock: ``ErpPort.adjust_inventory`` (a one-line count);
                                    idempotent on the adjustment id the correction carries.
``order.created``                   an order the ERP never received: ``ErpPort.submit_order``
                                    with a customer built from the order; idempotent on the
                                    canonical order id.
``order.status_changed``            the ERP's order status on the storefront:
                                    ``CommercePort.update_order_status`` (Shopify: fulfil, cancel
                                    or close) for the order named by the event's ``subject``,
                                    with the correction id as idempotency key; the port changes
                                    only what the order does not show yet.
==================================  ==============================================================

Events from any other source are ignored, so the same event types from the systems themselves
never trigger a write. The bus delivers each event once per subscriber (inbox), and every
effect is idempotent on its own, so a redelivery or a re-run changes nothing. A correction that
cannot be applied (unknown item, ERP refusal) raises a business error and lands in the
exception queue.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from retailsync.bus.backend import EventFilter, Subscription
from retailsync.domain.catalogue import (
    InventoryAdjusted,
    InventoryPositionReported,
    OrderCreated,
    OrderStatusChanged,
    parse_event,
)
from retailsync.domain.customers import Customer
from retailsync.domain.events import CloudEvent
from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.domain.orders import Order, OrderStatus
from retailsync.ports.commerce import CommercePort
from retailsync.ports.erp import ErpPort
from retailsync.reconcile import wiring
from retailsync.reconcile.corrections import (
    CORRECTION_SOURCE,
    STOREFRONT_LEVEL_REPORTER,
    storefront_order_ref,
)
from retailsync.reconcile.drift import leads_to, storefront_status_blocker
from retailsync.reconcile.policy import LiveSourceSettings
from retailsync.resilience.errors import ConflictRejected, UnknownReference

__all__ = [
    "ErpStockCorrector",
    "OrderResendCorrector",
    "StorefrontLevelCorrector",
    "StorefrontStatusCorrector",
    "bound_to_delivery",
    "correction_subscriptions",
    "customer_for",
    "storefront_statuses",
]


@dataclass
class StorefrontLevelCorrector:
    """Publishes the corrected available-to-sell level on the storefront."""

    commerce: CommercePort
    settings: LiveSourceSettings
    name = "reconcile.correct-storefront-levels"
    types = ("retailsync.inventory.position_reported",)
    downstream = "commerce"

    async def __call__(self, event: CloudEvent, ctx: Any) -> None:
        if event.source != CORRECTION_SOURCE:
            return
        payload = parse_event(event)
        if not isinstance(payload, InventoryPositionReported):
            return
        if payload.reported_by != STOREFRONT_LEVEL_REPORTER:
            return
        position = payload.position
        item = self.settings.storefront_items.get(position.sku)
        location = self.settings.storefront_locations.get(position.location)
        if item is None or location is None:
            raise UnknownReference(
                f"cannot publish {position.on_hand} of {position.sku} at {position.location} on "
                f"the storefront: add the SKU to reconcile.sources.storefront_items and the "
                f"location to reconcile.sources.storefront_locations",
                operation="correct storefront level",
            )
        await self.commerce.set_available(
            inventory_item_ref=item, location_ref=location, available=position.on_hand
        )


class _DeliveryTransaction:
    """An ``Engine`` stand-in whose ``connect()`` / ``begin()`` hand out the delivery's
    transaction, so an adapter's own bookkeeping (the cross-reference links the ERP adapter
    writes) commits with the inbox record instead of waiting on it (SQLite has one writer)."""

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    @contextlib.contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        yield self.connection

    @contextlib.contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        yield self.connection


def bound_to_delivery(adapter: Any, ctx: Any) -> Any:
    """``adapter`` writing its hub-side records in the delivery's transaction, when it keeps
    an ``engine`` (the ERP adapter); otherwise the adapter itself."""
    connection = getattr(ctx, "connection", None)
    if connection is None or not hasattr(adapter, "engine"):
        return adapter
    bound = copy.copy(adapter)
    bound.engine = _DeliveryTransaction(connection)
    return bound


@dataclass
class ErpStockCorrector:
    """Books a cycle-count adjustment in the ERP."""

    erp: ErpPort
    name = "reconcile.correct-erp-stock"
    types = ("retailsync.inventory.adjusted",)
    downstream = "erp"

    async def __call__(self, event: CloudEvent, ctx: Any) -> None:
        if event.source != CORRECTION_SOURCE:
            return
        payload = parse_event(event)
        if isinstance(payload, InventoryAdjusted):
            await bound_to_delivery(self.erp, ctx).adjust_inventory(payload.adjustment)


def customer_for(order: Order) -> Customer:
    """The customer the ERP needs for a storefront order it never received.

    Built from what the order carries (its customer id and addresses); the ERP adapter finds
    the party again by that id when it exists.
    """
    addresses = [a for a in (order.shipping_address, order.billing_address) if a is not None]
    name = next((a.name for a in addresses if a.name), None)
    return Customer(
        id=order.customer_id or derive_id(EntityKind.CUSTOMER, "reconcile", order.id),
        family_name=name or f"{order.channel} customer",
        addresses=addresses,
        created_at=order.placed_at,
    )


@dataclass
class OrderResendCorrector:
    """Sends a storefront order the ERP never received (create and confirm)."""

    erp: ErpPort
    name = "reconcile.resend-orders"
    types = ("retailsync.order.created",)
    downstream = "erp"

    async def __call__(self, event: CloudEvent, ctx: Any) -> None:
        if event.source != CORRECTION_SOURCE:
            return
        payload = parse_event(event)
        if isinstance(payload, OrderCreated):
            erp = bound_to_delivery(self.erp, ctx)
            await erp.submit_order(payload.order, customer_for(payload.order))


_NOTHING_LEFT_TO_FULFIL = frozenset(
    {OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.COMPLETED, OrderStatus.CANCELLED}
)


def storefront_statuses(shown: OrderStatus | None, wanted: OrderStatus) -> list[OrderStatus]:
    """The statuses to tell the storefront, in order, to move an order from ``shown`` to
    ``wanted``: a completed order is fulfilled (``shipped``) before it is closed, unless the
    storefront already shows it shipped."""
    if wanted is OrderStatus.COMPLETED and shown not in _NOTHING_LEFT_TO_FULFIL:
        return [OrderStatus.SHIPPED, OrderStatus.COMPLETED]
    return [wanted]


@dataclass
class StorefrontStatusCorrector:
    """Shows the ERP's status of an order on the storefront (fulfil, cancel or close it).

    Reads the order first: one that already shows the status (or has moved past it) is left
    alone, so a redelivered correction writes nothing; one that has moved elsewhere since the
    run (cancelled meanwhile) is a conflict for a person.
    """

    commerce: CommercePort
    name = "reconcile.correct-storefront-status"
    types = ("retailsync.order.status_changed",)
    downstream = "commerce"

    async def __call__(self, event: CloudEvent, ctx: Any) -> None:
        if event.source != CORRECTION_SOURCE:
            return
        payload = parse_event(event)
        if not isinstance(payload, OrderStatusChanged):
            return
        order_ref = storefront_order_ref(event)
        if order_ref is None:
            raise UnknownReference(
                f"status correction {event.id} for order {payload.order_id} names no storefront "
                f"order (subject storefront-order/<id>); set the order to "
                f"{payload.to_status.value} on the storefront by hand",
                operation="correct storefront order status",
            )
        wanted = payload.to_status
        shown = OrderStatus((await self.commerce.get_order(order_ref)).status)
        if shown is wanted or leads_to(wanted, shown):
            return
        blocker = storefront_status_blocker(shown, wanted)
        if blocker is not None:
            reconciled = payload.from_status.value if payload.from_status else "unknown"
            raise ConflictRejected(
                f"storefront order {order_ref} shows {shown.value} (it showed {reconciled} "
                f"when reconciled): {blocker}",
                downstream="commerce",
                operation="correct storefront order status",
            )
        for status in storefront_statuses(shown, wanted):
            await self.commerce.update_order_status(
                order_ref, status.value, idempotency_key=f"{event.id}:{status.value}"
            )


Corrector = (
    StorefrontLevelCorrector | StorefrontStatusCorrector | ErpStockCorrector | OrderResendCorrector
)


def subscription_of(corrector: Corrector) -> Subscription:
    return Subscription(
        name=corrector.name,
        handler=corrector,
        filter=EventFilter(types=corrector.types),
        downstream=corrector.downstream,
        start_from="latest",
    )


def correctors(
    *,
    erp: ErpPort | None,
    commerce: CommercePort | None,
    settings: LiveSourceSettings,
) -> list[Corrector]:
    """The correctors whose target system is wired."""
    found: list[Corrector] = []
    if commerce is not None:
        found.extend(
            [StorefrontLevelCorrector(commerce, settings), StorefrontStatusCorrector(commerce)]
        )
    if erp is not None:
        found.extend([ErpStockCorrector(erp), OrderResendCorrector(erp)])
    return found


def correction_subscriptions(hub: Any) -> Sequence[Subscription]:
    """The bus subscriptions that apply corrections, for the systems wired on ``hub``."""
    adapters = wiring.wired(hub)
    return [
        subscription_of(corrector)
        for corrector in correctors(
            erp=adapters.get("erp"),
            commerce=adapters.get("commerce"),
            settings=wiring.policy(hub).sources,
        )
    ]
