"""The seeded drift scenario against the live Tryton ERP and the WMS, Shopify and Stripe sandboxes.

Stock differs for some SKUs, one storefront order never reached the ERP, one order shipped in
the ERP still shows as open on the storefront, one refund was paid but has no credit note. The
inventory, order and refund reconciliations find exactly those, the correctors apply what the
hub owns (ERP stock within the auto limit, storefront levels, the missing order, the order's
status on the storefront) through the real SQL event bus, the rest opens exceptions in the bus
exception queue; a second run finds no drift of a corrected kind, publishes nothing and
changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from retailsync.bus import tables as bus_tables
from retailsync.bus.backend import BackendConfig
from retailsync.bus.backends.sql import create_backend
from retailsync.connectors.erp.adapter import TrytonErpAdapter
from retailsync.connectors.erp.client import TrytonClient
from retailsync.connectors.erp.reconcile_queries import TrytonReconcileQueries
from retailsync.connectors.shopify.config import ShopifySettings
from retailsync.connectors.shopify.mapping import canonical_order
from retailsync.connectors.shopify.outbound import ShopifyCommerce
from retailsync.connectors.stripe.config import StripeSettings
from retailsync.connectors.stripe.outbound import StripePayments
from retailsync.connectors.wms.client import WmsClient
from retailsync.connectors.wms.config import WmsSettings
from retailsync.connectors.wms.outbound import WmsWarehouse
from retailsync.db import create_engine_for, upgrade_database
from retailsync.domain.catalogue import RefundApproved, RefundRequested, build_event
from retailsync.domain.customers import Customer
from retailsync.domain.identifiers import EntityKind, new_id
from retailsync.domain.money import Money
from retailsync.domain.orders import Order, OrderStatus
from retailsync.domain.refunds import Refund
from retailsync.domain.returns import ReturnAuthorization, ReturnLine, ReturnReason, ReturnStatus
from retailsync.reconcile import wiring
from retailsync.reconcile.correctors import correction_subscriptions
from retailsync.reconcile.engine import run_reconciliation
from retailsync.reconcile.live_sources import reconcile_sources
from retailsync.reconcile.policy import LiveSourceSettings, ReconcilePolicy
from retailsync.reconcile.store import DriftRow, ReportStore, RunSummary
from retailsync.sandbox.erp.seed import PRODUCTS
from retailsync.sandbox.server import SandboxServer
from retailsync.sandbox.shopify import (
    SANDBOX_ACCESS_TOKEN,
    SANDBOX_SHOP_DOMAIN,
    SANDBOX_WEBHOOK_SECRET,
)
from retailsync.sandbox.stripe import SANDBOX_API_KEY
from retailsync.sandbox.stripe import SANDBOX_WEBHOOK_SECRET as STRIPE_WEBHOOK_SECRET
from retailsync.sandbox.wms import WmsSandbox
from retailsync.views.projection import order_360_subscription

pytestmark = [pytest.mark.erp, pytest.mark.slow, pytest.mark.timeout(240)]

LOCATION_REF = "65000001"
ITEM_REFS = {product.sku: str(80_000_001 + n) for n, product in enumerate(PRODUCTS)}
DECIDED = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)


@pytest.fixture
async def hub(
    reconcile_erp_client: TrytonClient,
    wms_server: tuple[WmsSandbox, SandboxServer],
    shopify_server: SandboxServer,
    stripe_server: SandboxServer,
    tmp_path: Any,
) -> AsyncIterator[SimpleNamespace]:
    """A hub on SQLite with the real SQL bus, wired to the live ERP and the sandboxes."""
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    upgrade_database(url)
    engine = create_engine_for(url)
    bus = create_backend(BackendConfig(database_url=url, worker_id="reconcile-e2e"))
    wms_settings = WmsSettings(
        base_url=wms_server[1].base_url,
        api_key=wms_server[0].api_key,
        webhook_secret=wms_server[0].webhook_secret,
    )
    wms_client = WmsClient(wms_settings)
    shop_settings = ShopifySettings(
        shop_domain=SANDBOX_SHOP_DOMAIN,
        access_token=SANDBOX_ACCESS_TOKEN,
        webhook_secret=SANDBOX_WEBHOOK_SECRET,
        base_url=shopify_server.base_url,
    )
    commerce = ShopifyCommerce(shop_settings)
    payments = StripePayments(
        StripeSettings(
            api_key=SANDBOX_API_KEY,
            webhook_secret=STRIPE_WEBHOOK_SECRET,
            base_url=stripe_server.base_url,
        )
    )
    policy = ReconcilePolicy(
        sources=LiveSourceSettings(
            erp_locations=("STO",),
            storefront_locations={"STO": LOCATION_REF},
            storefront_items=ITEM_REFS,
        )
    )
    hub = SimpleNamespace(
        engine=engine,
        bus=bus,
        adapters={
            "erp": TrytonErpAdapter(reconcile_erp_client, engine),
            "warehouse": WmsWarehouse(wms_client, wms_settings),
            "commerce": commerce,
            "payments": payments,
            "reconcile_policy": policy,
        },
        wms=wms_server[0],
        shop=shopify_server.app.state.sandbox,
        stripe=stripe_server.app.state.sandbox,
        shop_settings=shop_settings,
    )
    hub.adapters["reconcile_sources"] = reconcile_sources(hub)
    for subscription in correction_subscriptions(hub):
        bus.subscribe(subscription)
    bus.subscribe(order_360_subscription())
    await bus.start()
    try:
        yield hub
    finally:
        await bus.close()
        await commerce.aclose()
        await payments.aclose()
        await wms_client.aclose()
        engine.dispose()


async def reconcile(hub: SimpleNamespace, job: str) -> tuple[RunSummary, list[DriftRow]]:
    """One run with the hub's wiring, then deliver the corrections it published."""
    store = ReportStore(hub.engine)
    summary = await run_reconciliation(
        job,
        wiring.sources_factory(hub)(job),
        store=store,
        publisher=wiring.publisher(hub),
        open_exception=wiring.tickets(hub),
        policy=wiring.policy(hub),
    )
    await hub.bus.deliver_until_idle()
    assert summary.status == "completed", summary.error
    return summary, list(store.iter_drifts(summary.id))


def found(drifts: list[DriftRow]) -> set[tuple[str, str, str]]:
    return {(row.kind, row.key, row.action) for row in drifts}


def queue_entries(hub: SimpleNamespace) -> list[tuple[str, str]]:
    exceptions = bus_tables.exceptions
    with hub.engine.connect() as connection:
        rows = connection.execute(
            sa.select(exceptions.c.event_id, exceptions.c.error_message)
            .where(exceptions.c.system == "reconcile")
            .order_by(exceptions.c.event_id)
        ).all()
    return [(row.event_id, row.error_message) for row in rows]


def events_stored(hub: SimpleNamespace) -> int:
    with hub.engine.connect() as connection:
        return int(
            connection.execute(sa.select(sa.func.count()).select_from(bus_tables.events)).scalar()
        )


def shop_levels(hub: SimpleNamespace) -> dict[str, int]:
    skus = {int(item): sku for sku, item in ITEM_REFS.items()}
    return {
        skus[item]: level["available"] for (item, _), level in hub.shop.inventory_levels.items()
    }


async def erp_stock(hub: SimpleNamespace) -> dict[str, tuple[int, int]]:
    """SKU -> (on hand, reserved) at STO, read live."""
    queries = TrytonReconcileQueries(hub.adapters["erp"].client)
    return {
        p.sku: (p.on_hand, p.reserved)
        async for page in queries.stock_by_location("STO")
        for p in page
    }


def customer_of(order: Order) -> Customer:
    return Customer(
        id=order.customer_id or new_id(EntityKind.CUSTOMER),
        email="sam@example.com",
        given_name="Sam",
        family_name="Doe",
        created_at=order.placed_at,
    )


def shop_order(hub: SimpleNamespace, raw: dict[str, Any]) -> tuple[Any, ...]:
    """The sandbox order's change time and status fields, as the storefront shows them."""
    order = hub.shop.orders[raw["id"]]
    return (
        order["updated_at"],
        order["fulfillment_status"],
        len(order["fulfillments"]),
        order["cancelled_at"],
        order["tags"],
    )


async def test_seeded_drift_is_found_corrected_and_stays_corrected(
    hub: SimpleNamespace,
) -> None:
    erp: TrytonErpAdapter = hub.adapters["erp"]
    currency = "EUR"

    # --- orders: A reached the ERP, B never did, C shipped but the storefront shows it open -
    raw_a = hub.shop.create_order(lines=[{"sku": "RS-TSHIRT-L", "quantity": 1, "price": "19.90"}])
    raw_b = hub.shop.create_order(lines=[{"sku": "RS-CAP", "quantity": 2, "price": "15.00"}])
    raw_c = hub.shop.create_order(lines=[{"sku": "RS-TSHIRT-L", "quantity": 1, "price": "19.90"}])
    order_a, order_b, order_c = (
        canonical_order(raw, hub.shop_settings) for raw in (raw_a, raw_b, raw_c)
    )
    await erp.submit_order(order_a, customer_of(order_a))
    await erp.submit_order(order_c, customer_of(order_c))
    assert (await erp.record_dispatch(order_c.id)).status is OrderStatus.SHIPPED
    assert order_c.status is OrderStatus.CONFIRMED  # paid, not fulfilled on the storefront

    summary, drifts = await reconcile(hub, "orders")
    assert found(drifts) == {
        ("order.missing_in_erp", order_b.id, "correct"),
        ("order.status_mismatch", order_c.id, "correct"),
    }
    assert (summary.corrections, summary.exceptions) == (2, 0)
    resent = await erp.get_order(order_b.id)  # the corrector sent it to the ERP
    assert resent.total == Money.of("30.00", currency)
    shipped = hub.shop.orders[raw_c["id"]]  # the corrector fulfilled it on the storefront
    assert (shipped["fulfillment_status"], len(shipped["fulfillments"])) == ("fulfilled", 1)
    assert canonical_order(shipped, hub.shop_settings).status is OrderStatus.SHIPPED
    assert hub.shop.orders[raw_a["id"]]["fulfillment_status"] is None
    storefront_c = shop_order(hub, raw_c)

    before = events_stored(hub)
    summary, drifts = await reconcile(hub, "orders")
    assert (summary.drift_count, summary.corrections, drifts) == (0, 0, [])
    assert events_stored(hub) == before
    assert (await erp.get_order(order_b.id)).erp_id == resent.erp_id
    assert shop_order(hub, raw_c) == storefront_c

    # --- refunds: A decided, credited and paid; B decided and paid, no credit note ----------
    rma_a = new_id(EntityKind.RETURN)
    await erp.create_return(
        ReturnAuthorization(
            id=rma_a,
            order_id=order_a.id,
            status=ReturnStatus.AUTHORIZED,
            lines=[ReturnLine(sku="RS-TSHIRT-L", quantity=1, reason=ReturnReason.DAMAGED)],
            requested_at=DECIDED,
        )
    )
    assert (await erp.post_credit_note(rma_a)).credited
    refund_a, refund_b = new_id(EntityKind.REFUND), new_id(EntityKind.REFUND)
    for refund_id, amount, rma_id, order_id in (
        (refund_a, "19.90", rma_a, order_a.id),
        (refund_b, "30.00", None, order_b.id),
    ):
        money = Money.of(amount, currency)
        refund = Refund(
            id=refund_id,
            amount=money,
            reason="damaged",
            order_id=order_id,
            rma_id=rma_id,
            requested_at=DECIDED,
        )
        await hub.bus.publish(
            [
                build_event(RefundRequested(refund=refund), source="urn:retailsync:workflows"),
                build_event(
                    RefundApproved(
                        refund_id=refund_id,
                        version=2,
                        amount=money,
                        approved_by="policy",
                        approved_at=DECIDED,
                    ),
                    source="urn:retailsync:workflows",
                ),
            ]
        )
        intent = hub.stripe.seed_payment_intent(amount=int(money.amount * 100), currency="eur")
        await hub.adapters["payments"].issue_refund(
            payment_ref=intent["id"],
            idempotency_key=f"{refund_id}:issue_refund",
            amount=money,
            refund_id=refund_id,
        )
    await hub.bus.deliver_until_idle()

    summary, drifts = await reconcile(hub, "refunds")
    assert found(drifts) == {("refund.credit_note_missing", refund_b, "exception")}
    assert summary.keys_compared == 2
    assert (summary.corrections, summary.exceptions) == (0, 1)

    # --- inventory: the warehouse and the storefront differ for some SKUs -------------------
    stock = await erp_stock(hub)
    assert set(stock) == set(ITEM_REFS)
    on_hand_m, reserved_m = stock["RS-TSHIRT-M"]
    for sku, (on_hand, reserved) in stock.items():
        counted = (
            on_hand + 2
            if sku == "RS-TSHIRT-M"
            else on_hand - 9
            if sku == "RS-HOODIE-M"
            else on_hand
        )
        hub.wms.seed_inventory(sku, "STO", counted)
        published = max(0, on_hand - reserved) + (7 if sku == "RS-CAP" else 0)
        hub.shop.seed_level(int(ITEM_REFS[sku]), int(LOCATION_REF), published)

    summary, drifts = await reconcile(hub, "inventory")
    assert found(drifts) == {
        ("stock.on_hand_mismatch", "RS-TSHIRT-M@STO", "correct"),
        ("stock.storefront_level_mismatch", "RS-TSHIRT-M@STO", "correct"),
        ("stock.storefront_level_mismatch", "RS-CAP@STO", "correct"),
        ("stock.on_hand_mismatch", "RS-HOODIE-M@STO", "exception"),
    }
    assert (summary.corrections, summary.exceptions) == (3, 1)
    corrected = await erp_stock(hub)
    assert corrected["RS-TSHIRT-M"][0] == on_hand_m + 2  # booked in the ERP
    assert corrected["RS-HOODIE-M"] == stock["RS-HOODIE-M"]  # 9 units: left to a person
    levels = shop_levels(hub)
    assert levels["RS-TSHIRT-M"] == on_hand_m + 2 - reserved_m
    cap_on_hand, cap_reserved = stock["RS-CAP"]
    assert levels["RS-CAP"] == max(0, cap_on_hand - cap_reserved)

    # --- people see the exceptions in the bus exception queue --------------------------------
    entries = queue_entries(hub)
    assert len(entries) == 2
    reasons = " ".join(reason for _, reason in entries)
    assert "refund.credit_note_missing" in reasons and refund_b in reasons
    assert "stock.on_hand_mismatch" in reasons and "RS-HOODIE-M@STO" in reasons

    # --- a second run: no drift of a corrected kind, nothing published, nothing changed ----
    before_events = events_stored(hub)
    for job, left in (
        ("inventory", {("stock.on_hand_mismatch", "RS-HOODIE-M@STO", "exception")}),
        ("orders", set()),
        ("refunds", {("refund.credit_note_missing", refund_b, "exception")}),
    ):
        summary, drifts = await reconcile(hub, job)
        assert found(drifts) == left, job
        assert summary.corrections == 0, job
    assert events_stored(hub) == before_events
    assert await erp_stock(hub) == corrected
    assert shop_levels(hub) == levels
    assert shop_order(hub, raw_c) == storefront_c
    assert queue_entries(hub) == entries
