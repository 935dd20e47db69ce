"""Order-to-fulfilment on the durable runtime, against file-backed fakes of the ports."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from workflow_fakes import Ledger

from retailsync.domain.catalogue import OrderCreated, ShipmentDispatched, build_event
from retailsync.domain.events import CloudEvent
from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.domain.money import Money
from retailsync.domain.orders import Order, OrderLine
from retailsync.domain.shipments import Shipment, ShipmentLine, ShipmentStatus
from retailsync.workflows.fulfillment import deliver_shipment_confirmation, fulfillment_workflow_id
from retailsync.workflows.routing import (
    fulfillment_subscriptions,
    route_shipment_dispatched,
    start_fulfillment_from_event,
)
from retailsync.workflows.runtime import WorkflowRuntime
from retailsync.workflows.service import process_result, process_status, start_process

CASE = "ZD-7001"
ERP_SOURCE = "urn:retailsync:erp:tryton"


def body(ref: str, **extra: Any) -> dict[str, Any]:
    return {
        "storefront_order_ref": ref,
        "case_ref": CASE,
        "requested_at": "2026-03-05T10:00:00+00:00",
        **extra,
    }


def dispatched(order_id: str, *lines: tuple[str, int], ref: str = "1", tracking: str = "1Z9"):
    shipment = Shipment(
        id=derive_id(EntityKind.SHIPMENT, "erp", order_id, ref),
        order_id=order_id,
        status=ShipmentStatus.DISPATCHED,
        carrier="DHL",
        tracking_number=tracking,
        lines=[ShipmentLine(sku=sku, quantity=q) for sku, q in lines],
        dispatched_at=datetime(2026, 3, 6, tzinfo=UTC),
    )
    return build_event(ShipmentDispatched(shipment=shipment), source=ERP_SOURCE)


async def wait_for_state(workflow_id: str, state: str) -> dict[str, Any]:
    for _ in range(300):
        status = await process_status(workflow_id, with_steps=False)
        if status["state"] == state:
            return status
        assert status["status"] != "SUCCESS", status
        await asyncio.sleep(0.05)
    raise AssertionError(f"{workflow_id} never reached {state}")


async def test_a_storefront_order_is_confirmed_reserved_and_shipped(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    ledger.add_storefront_order("5001", {"MUG-1": (2, "12.50"), "TEE-2": (1, "20.00")})
    ledger.add_stock("MUG-1", "STO", 10)
    ledger.add_stock("TEE-2", "STO", 1)
    await start_process("fulfillments", "ful-ship", body("5001"))
    status = await wait_for_state("ful-ship", "awaiting_shipment")
    order_id = derive_id(EntityKind.ORDER, "shopify", "5001")
    states = [entry["state"] for entry in status["trace"] if "state" in entry]
    assert states == ["validating", "validated", "reserved", "awaiting_shipment"]
    assert ledger.q("SELECT status, total FROM orders WHERE order_id = ?", order_id)[0][0] == (
        "confirmed"
    )
    assert ledger.storefront("5001")["status"] == "confirmed"

    # Partial dispatch first, then the rest; the second copy of an event is absorbed.
    first = dispatched(order_id, ("MUG-1", 2), ref="1", tracking="1ZA")
    assert await route_shipment_dispatched(first) is True
    assert await route_shipment_dispatched(first) is True  # DBOS absorbs the same message
    assert await route_shipment_dispatched(dispatched(order_id, ("TEE-2", 1), ref="2")) is True
    result = await process_result("ful-ship")
    assert result["state"] == "shipped", result["details"]
    assert result["details"]["shipped"] == {"MUG-1": 2, "TEE-2": 1}
    assert result["details"]["tracking_numbers"] == ["1ZA", "1Z9"]
    shop = ledger.storefront("5001")
    assert (shop["status"], shop["tracking"]) == ("shipped", "1ZA")
    assert ledger.count("calls", "op = 'submit_order'") == 1
    assert ledger.count("calls", "op = 'status:shipped'") == 1
    assert any("shipped with DHL (tracking 1ZA, 1Z9)" in n for n in ledger.notes(CASE))
    assert ledger.q("SELECT status FROM case_status")[0]["status"] == "solved"
    # After the end a late dispatch is acknowledged, not delivered.
    assert await deliver_shipment_confirmation(order_id, first.model_dump(mode="json")) is False


def canonical_order(ref: str, *lines: tuple[str, int, str], customer: bool = True) -> Order:
    return Order.place(
        id=derive_id(EntityKind.ORDER, "shopify", ref),
        channel="shopify",
        currency="EUR",
        lines=[
            OrderLine.priced(
                line_no=n,
                sku=sku,
                quantity=q,
                unit_price=Money.of(Decimal(p), "EUR"),
                tax=Money.zero("EUR"),
            )
            for n, (sku, q, p) in enumerate(lines, start=1)
        ],
        placed_at=datetime(2026, 3, 5, tzinfo=UTC),
        customer_id=derive_id(EntityKind.CUSTOMER, "shopify", "c1") if customer else None,
    )


def order_created(order: Order, ref: str, source: str = "retailsync/connectors/shopify"):
    return build_event(OrderCreated(order=order), source=source, id=f"shopify:order:{ref}:created")


async def test_order_created_events_start_one_fulfilment_per_order(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    ledger.add_storefront_order("6001", {"MUG-1": (1, "12.50")})
    ledger.add_stock("MUG-1", "STO", 3)
    order = canonical_order("6001", ("MUG-1", 1, "12.50"))
    event = order_created(order, "6001")
    assert await start_fulfillment_from_event(event) is True
    assert await start_fulfillment_from_event(event) is False  # redelivery: same workflow
    workflow_id = fulfillment_workflow_id(order.id)
    await wait_for_state(workflow_id, "awaiting_shipment")
    # The ERP's change capture reports the order it now holds: not a storefront order.
    assert await start_fulfillment_from_event(order_created(order, "6001", ERP_SOURCE)) is False
    await route_shipment_dispatched(dispatched(order.id, ("MUG-1", 1)))
    result = await process_result(workflow_id)
    assert result["state"] == "shipped"
    assert result["subject"]["storefront_order_ref"] == "6001"
    assert ledger.storefront("6001")["status"] == "shipped"
    names = [s.name for s in fulfillment_subscriptions()]
    assert names == ["workflows.order-fulfilment", "workflows.shipment-confirmations"]


async def test_out_of_stock_holds_the_order_before_the_erp_sees_it(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    ledger.add_storefront_order("5002", {"MUG-1": (5, "12.50")})
    ledger.add_stock("MUG-1", "STO", 2)
    await start_process("fulfillments", "ful-short", body("5002"))
    result = await process_result("ful-short")
    assert result["state"] == "on_hold"
    assert result["details"]["short"] == ["MUG-1 (2 of 5 available)"]
    assert ledger.count("calls", "op = 'submit_order'") == 0
    assert ledger.storefront("5002")["status"] == "on_hold"
    assert ledger.q("SELECT status FROM case_status")[0]["status"] == "on_hold"


async def test_customer_and_price_problems_reject_the_order(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    ledger.add_storefront_order("5003", {"MUG-1": (1, "0.00")}, customer_ref=None, email=None)
    await start_process("fulfillments", "ful-bad", body("5003"))
    result = await process_result("ful-bad")
    assert result["state"] == "rejected"
    assert "customer: the order names no customer" in result["details"]["reason"]
    assert "price: MUG-1 has unit price 0.00 EUR" in result["details"]["reason"]
    assert ledger.count("calls") == 1  # only the storefront was told (on hold)


async def test_no_dispatch_in_time_is_reported_overdue(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    ledger.add_storefront_order("5004", {"MUG-1": (1, "12.50")})
    ledger.add_stock("MUG-1", "STO", 3)
    await start_process("fulfillments", "ful-late", body("5004", shipment_timeout_seconds=0.5))
    result = await process_result("ful-late")
    assert result["state"] == "shipment_overdue"
    assert ledger.storefront("5004")["status"] == "confirmed"
    assert any("no shipment was dispatched" in n for n in ledger.notes(CASE))


async def test_a_dispatch_for_an_order_nobody_waits_for_is_acknowledged(
    runtime: WorkflowRuntime,
) -> None:
    stranger = derive_id(EntityKind.ORDER, "erp", "legacy-1")
    event: CloudEvent = dispatched(stranger, ("MUG-1", 1))
    assert await route_shipment_dispatched(event) is False
