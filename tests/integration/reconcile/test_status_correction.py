"""Order-status corrections, from the orders reconciliation to the storefront and back.

Storefront orders come from the Shopify sandbox through the live source; the ERP's sales are
figures (the live ERP is covered in tests/e2e/reconcile). The corrections travel over the real
SQL event bus on SQLite to the status corrector, which fulfils, cancels and closes the
sandbox's orders; a redelivered correction and a second run change nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from retailsync.bus import tables as bus_tables
from retailsync.bus.backend import BackendConfig, PublishStatus
from retailsync.bus.backends.sql import create_backend
from retailsync.connectors.shopify.client import ShopifyApi
from retailsync.connectors.shopify.config import ShopifySettings
from retailsync.connectors.shopify.mapping import canonical_order_id
from retailsync.connectors.shopify.outbound import ShopifyCommerce
from retailsync.db import create_engine_for, upgrade_database
from retailsync.domain.catalogue import OrderStatusChanged, build_event
from retailsync.domain.money import Money
from retailsync.domain.orders import OrderStatus
from retailsync.reconcile import wiring
from retailsync.reconcile.corrections import CORRECTION_SOURCE, STOREFRONT_ORDER_SUBJECT
from retailsync.reconcile.correctors import StorefrontStatusCorrector, correction_subscriptions
from retailsync.reconcile.engine import run_reconciliation
from retailsync.reconcile.live_sources import LiveSources
from retailsync.reconcile.merge import pages_of
from retailsync.reconcile.policy import LiveSourceSettings, ReconcilePolicy
from retailsync.reconcile.records import OrderFigure
from retailsync.reconcile.sources import sorted_by_key
from retailsync.reconcile.store import DriftRow, ReportStore, RunSummary
from retailsync.resilience.errors import ConflictRejected, UnknownReference
from retailsync.sandbox.shopify import (
    SANDBOX_ACCESS_TOKEN,
    SANDBOX_SHOP_DOMAIN,
    SANDBOX_WEBHOOK_SECRET,
    ShopifySandbox,
    create_shopify_sandbox,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def hub(sqlite_url: str) -> AsyncIterator[SimpleNamespace]:
    upgrade_database(sqlite_url)
    engine = create_engine_for(sqlite_url)
    sandbox = ShopifySandbox()
    settings = ShopifySettings(
        shop_domain=SANDBOX_SHOP_DOMAIN,
        access_token=SANDBOX_ACCESS_TOKEN,
        webhook_secret=SANDBOX_WEBHOOK_SECRET,
        base_url="http://shop.test",
    )
    transport = httpx.ASGITransport(app=create_shopify_sandbox(sandbox))
    commerce = ShopifyCommerce(settings, api=ShopifyApi(settings, transport=transport))
    bus = create_backend(BackendConfig(database_url=sqlite_url, worker_id="status-corrections"))
    policy = ReconcilePolicy(sources=LiveSourceSettings())
    hub = SimpleNamespace(
        engine=engine,
        bus=bus,
        adapters={"commerce": commerce, "reconcile_policy": policy},
        shop=sandbox,
        erp_sales={},
    )
    for subscription in correction_subscriptions(hub):
        bus.subscribe(subscription)
    await bus.start()
    try:
        yield hub
    finally:
        await bus.close()
        await commerce.aclose()
        engine.dispose()


def orders_sources(hub: SimpleNamespace) -> dict[str, Any]:
    """Storefront orders from the sandbox (live source), ERP sales from ``hub.erp_sales``."""
    live = LiveSources(
        engine=hub.engine,
        settings=wiring.policy(hub).sources,
        commerce=hub.adapters["commerce"],
    )
    sales = [hub.erp_sales[key] for key in sorted(hub.erp_sales)]
    return {"storefront": sorted_by_key(live.storefront_orders()), "erp": pages_of(sales)}


async def reconcile_orders(hub: SimpleNamespace) -> tuple[RunSummary, list[DriftRow]]:
    store = ReportStore(hub.engine)
    summary = await run_reconciliation(
        "orders",
        orders_sources(hub),
        store=store,
        publisher=wiring.publisher(hub),
        open_exception=wiring.tickets(hub),
        policy=wiring.policy(hub),
    )
    await hub.bus.deliver_until_idle()
    assert summary.status == "completed", summary.error
    return summary, list(store.iter_drifts(summary.id))


def events_stored(hub: SimpleNamespace) -> int:
    with hub.engine.connect() as connection:
        return int(
            connection.execute(sa.select(sa.func.count()).select_from(bus_tables.events)).scalar()
        )


def shop_orders(hub: SimpleNamespace) -> dict[int, tuple[Any, ...]]:
    """What a change to a sandbox order would move: its change time and its status fields."""
    return {
        order_id: (
            order["updated_at"],
            order["fulfillment_status"],
            len(order["fulfillments"]),
            order["cancelled_at"],
            order["closed_at"],
            order["tags"],
        )
        for order_id, order in hub.shop.orders.items()
    }


async def test_the_storefront_is_told_the_erp_status_once(hub: SimpleNamespace) -> None:
    shop: ShopifySandbox = hub.shop
    placed = {
        name: shop.create_order(lines=[{"sku": "RS-CAP", "quantity": 1, "price": "15.00"}])
        for name in ("to_ship", "to_cancel", "to_complete", "shipped_here", "agreeing")
    }
    shop.change_order(placed["shipped_here"]["id"], fulfillment_status="fulfilled")
    erp_status = {
        "to_ship": OrderStatus.SHIPPED,
        "to_cancel": OrderStatus.CANCELLED,
        "to_complete": OrderStatus.COMPLETED,
        "shipped_here": OrderStatus.PROCESSING,
        "agreeing": OrderStatus.PROCESSING,
    }
    key = {name: canonical_order_id(raw["id"]) for name, raw in placed.items()}
    for name, status in erp_status.items():
        hub.erp_sales[key[name]] = OrderFigure(
            key=key[name], reference=f"SO{name}", status=status, total=Money.of("15.00", "EUR")
        )

    summary, drifts = await reconcile_orders(hub)
    assert {(row.kind, row.key, row.action) for row in drifts} == {
        ("order.status_mismatch", key["to_ship"], "correct"),
        ("order.status_mismatch", key["to_cancel"], "correct"),
        ("order.status_mismatch", key["to_complete"], "correct"),
        ("order.status_mismatch", key["shipped_here"], "exception"),
    }
    assert (summary.corrections, summary.exceptions) == (3, 1)
    (backwards,) = [row for row in drifts if row.action == "exception"]
    assert "cannot be set to processing" in backwards.detail

    shipped, cancelled, completed = (
        shop.orders[placed[name]["id"]] for name in ("to_ship", "to_cancel", "to_complete")
    )
    assert shipped["fulfillment_status"] == "fulfilled" and len(shipped["fulfillments"]) == 1
    assert shipped["tags"] == "retailsync:shipped" and shipped["cancelled_at"] is None
    assert cancelled["cancelled_at"] is not None and cancelled["fulfillments"] == []
    assert completed["fulfillment_status"] == "fulfilled" and completed["closed_at"] is not None
    assert completed["tags"] == "retailsync:completed"
    untouched = shop.orders[placed["agreeing"]["id"]]
    assert (untouched["fulfillment_status"], untouched["tags"]) == (None, "")

    # A correction delivered again (lost acknowledgement) or published again writes nothing.
    after_first = shop_orders(hub)
    correction_ids = [row.correction_event_id for row in drifts if row.correction_event_id]
    stored = [await hub.bus.get_event(CORRECTION_SOURCE, id) for id in correction_ids]
    events = [found.event for found in stored if found is not None]
    assert len(events) == 3
    corrector = StorefrontStatusCorrector(hub.adapters["commerce"])
    for event in events:
        await corrector(event, None)
    assert shop_orders(hub) == after_first
    outcomes = await hub.bus.publish(events)
    assert {outcome.status for outcome in outcomes} == {PublishStatus.DUPLICATE}
    assert await hub.bus.deliver_until_idle() == 0

    # The second run: only what a person must decide, nothing published, nothing changed.
    before = events_stored(hub)
    summary, drifts = await reconcile_orders(hub)
    assert {(row.kind, row.key, row.action) for row in drifts} == {
        ("order.status_mismatch", key["shipped_here"], "exception")
    }
    assert (summary.corrections, summary.exceptions) == (0, 1)
    assert events_stored(hub) == before
    assert shop_orders(hub) == after_first


def status_correction(order_ref: int | None, to_status: OrderStatus) -> Any:
    return build_event(
        OrderStatusChanged(
            order_id=canonical_order_id(order_ref or 1),
            version=1,
            from_status=OrderStatus.CONFIRMED,
            to_status=to_status,
            changed_at=datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
        ),
        source=CORRECTION_SOURCE,
        subject=None if order_ref is None else f"{STOREFRONT_ORDER_SUBJECT}{order_ref}",
    )


async def test_a_status_correction_that_cannot_be_applied_goes_to_a_person(
    hub: SimpleNamespace,
) -> None:
    corrector = StorefrontStatusCorrector(hub.adapters["commerce"])
    with pytest.raises(UnknownReference, match="names no storefront order"):
        await corrector(status_correction(None, OrderStatus.SHIPPED), None)
    assert hub.shop.requests_seen == 0

    # Cancelled on the storefront after the run that asked to ship it: not fulfilled.
    raw = hub.shop.create_order(lines=[{"sku": "RS-CAP", "quantity": 1, "price": "15.00"}])
    hub.shop.cancel_order(raw["id"], {"reason": "customer"})
    before = shop_orders(hub)
    with pytest.raises(ConflictRejected, match="cannot go back from cancelled to shipped"):
        await corrector(status_correction(raw["id"], OrderStatus.SHIPPED), None)
    assert shop_orders(hub) == before
