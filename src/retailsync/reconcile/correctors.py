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
==================================  ==============================================================

``order.status_changed`` corrections (tell the storefront the ERP's status) are not applied
here: the commerce port has no status write; they stay in the report and on the bus. Events
from any other source are ignored, so the same event types from the systems themselves never
trigger a write. The bus delivers each event once per subscriber (inbox), and every effect is
idempotent on its own, so a redelivery or a re-run changes nothing. A correction that cannot be
applied (unknown item, ERP refusal) raises a business error and lands in the exception queue.
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
    parse_event,
)
from retailsync.domain.customers import Customer
from retailsync.domain.events import CloudEvent
from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.domain.orders import Order
from retailsync.ports.commerce import CommercePort
from retailsync.ports.erp import ErpPort
from retailsync.reconcile import wiring
from retailsync.reconcile.corrections import CORRECTION_SOURCE, STOREFRONT_LEVEL_REPORTER
from retailsync.reconcile.policy import LiveSourceSettings
from retailsync.resilience.errors import UnknownReference

__all__ = [
    "ErpStockCorrector",
    "OrderResendCorrector",
    "StorefrontLevelCorrector",
    "bound_to_delivery",
    "correction_subscriptions",
    "customer_for",
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


Corrector = StorefrontLevelCorrector | ErpStockCorrector | OrderResendCorrector


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
        found.append(StorefrontLevelCorrector(commerce, settings))
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
