"""Tryton <-> canonical mappings, table by table (no ERP needed)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from retailsync.connectors.erp import (
    mapping_customer,
    mapping_inventory,
    mapping_invoice,
    mapping_order,
    mapping_shipment,
)
from retailsync.connectors.erp.mapping_common import aware, derived_id, money, reference_of
from retailsync.domain.customers import Address, AddressRole, Customer
from retailsync.domain.finance import PostingKind, PostingStatus
from retailsync.domain.identifiers import EntityKind, new_id
from retailsync.domain.inventory import AdjustmentReason
from retailsync.domain.money import Money
from retailsync.domain.orders import Order, OrderLine, OrderStatus
from retailsync.domain.shipments import ShipmentStatus

T = dt.datetime(2026, 3, 1, 12, 0, 0)


@pytest.mark.parametrize(
    ("state", "shipment_state", "expected"),
    [
        ("draft", "none", OrderStatus.PENDING),
        ("quotation", "none", OrderStatus.PENDING),
        ("confirmed", "none", OrderStatus.CONFIRMED),
        ("processing", "waiting", OrderStatus.PROCESSING),
        ("processing", "partially shipped", OrderStatus.PARTIALLY_SHIPPED),
        ("processing", "sent", OrderStatus.SHIPPED),
        ("processing", "exception", OrderStatus.PROCESSING),
        ("done", "sent", OrderStatus.COMPLETED),
        ("cancelled", "none", OrderStatus.CANCELLED),
    ],
)
def test_order_status_table(state: str, shipment_state: str, expected: OrderStatus) -> None:
    assert mapping_order.order_status(state, shipment_state) is expected


def test_unknown_sale_state_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Tryton sale state"):
        mapping_order.order_status("archived", None)


def _order() -> Order:
    line = OrderLine.priced(
        line_no=1,
        sku="RS-CAP",
        quantity=3,
        unit_price=Money.of("15.00", "EUR"),
        discount=Money.of("1.00", "EUR"),
        tax=Money.zero("EUR"),
    )
    return Order.place(
        id=new_id(EntityKind.ORDER),
        channel="web",
        currency="EUR",
        lines=[line],
        placed_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
    )


def test_sale_values_carry_the_canonical_id_and_the_net_unit_price() -> None:
    order = _order()
    values = mapping_order.sale_values(
        order,
        company_id=1,
        currency_id=2,
        party_id=3,
        invoice_address_id=4,
        shipment_address_id=5,
        payment_term_id=6,
        products={"RS-CAP": (7, 8)},
    )
    assert values["reference"] == order.id
    (_op, (line,)) = values["lines"][0]
    assert (line["product"], line["unit"], line["quantity"]) == (7, 8, 3.0)
    assert line["unit_price"] == Decimal("14.6667")  # (45.00 - 1.00) / 3, Tryton precision


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("draft", ShipmentStatus.PENDING),
        ("waiting", ShipmentStatus.PENDING),
        ("assigned", ShipmentStatus.PENDING),
        ("packed", ShipmentStatus.PENDING),
        ("done", ShipmentStatus.DISPATCHED),
        ("cancelled", ShipmentStatus.CANCELLED),
    ],
)
def test_shipment_status_table(state: str, expected: ShipmentStatus) -> None:
    assert mapping_shipment.shipment_status(state) is expected


def test_done_shipment_maps_lines_and_dispatch_time() -> None:
    shipment_id = new_id(EntityKind.SHIPMENT)
    order_id = new_id(EntityKind.ORDER)
    shipment = mapping_shipment.to_shipment(
        {"id": 9, "state": "done", "number": "S-9", "write_date": T, "create_date": T},
        [
            {"id": 1, "product": 4, "quantity": 2.0, "origin": "sale.line,11", "state": "done"},
            {"id": 2, "product": 5, "quantity": 1.0, "origin": None, "state": "cancelled"},
        ],
        shipment_id=shipment_id,
        order_id=order_id,
        skus={4: "RS-CAP", 5: "RS-MUG"},
        ship_from="WH",
        line_numbers={11: 1},
    )
    assert shipment.status is ShipmentStatus.DISPATCHED
    assert [(line.sku, line.quantity, line.order_line_no) for line in shipment.lines] == [
        ("RS-CAP", 2, 1)
    ]
    assert shipment.dispatched_at == aware(T)


@pytest.mark.parametrize(
    ("state", "total", "kind", "status"),
    [
        ("draft", "30.00", PostingKind.INVOICE, PostingStatus.DRAFT),
        ("validated", "30.00", PostingKind.INVOICE, PostingStatus.DRAFT),
        ("posted", "30.00", PostingKind.INVOICE, PostingStatus.POSTED),
        ("paid", "30.00", PostingKind.INVOICE, PostingStatus.SETTLED),
        ("posted", "-98.00", PostingKind.CREDIT_NOTE, PostingStatus.POSTED),
        ("cancelled", "-98.00", PostingKind.CREDIT_NOTE, PostingStatus.CANCELLED),
    ],
)
def test_invoice_table(state: str, total: str, kind: PostingKind, status: PostingStatus) -> None:
    posting = mapping_invoice.to_posting(
        {
            "id": 3,
            "state": state,
            "number": "INV-3",
            "total_amount": Decimal(total),
            "tax_amount": Decimal("0"),
            "create_date": T,
            "write_date": T,
        },
        posting_id=new_id(EntityKind.POSTING),
        currency="EUR",
    )
    assert (posting.kind, posting.status) == (kind, status)
    assert posting.amount == Money.of(total.lstrip("-"), "EUR")
    assert (posting.posted_at is not None) == (
        status in {PostingStatus.POSTED, PostingStatus.SETTLED}
    )


def test_party_values_from_customer() -> None:
    customer = Customer(
        id=new_id(EntityKind.CUSTOMER),
        email="kim@example.com",
        phone="+4930123456",
        given_name="Kim",
        family_name="Park",
        addresses=[
            Address(role=AddressRole.SHIPPING, line1="Hauptstr. 1", city="Berlin", country="DE")
        ],
        created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    values = mapping_customer.party_values(customer, {"DE": 42})
    assert values["name"] == "Kim Park"
    assert values["contact_mechanisms"] == [
        [
            "create",
            [
                {"type": "email", "value": "kim@example.com"},
                {"type": "phone", "value": "+4930123456"},
            ],
        ]
    ]
    assert values["addresses"] == [
        ["create", [{"street": "Hauptstr. 1", "city": "Berlin", "country": 42}]]
    ]
    assert mapping_customer.same_address(
        {"street": "hauptstr. 1", "city": "BERLIN", "postal_code": ""},
        customer.addresses[0],
    )


@pytest.mark.parametrize(
    ("move", "delta", "reason"),
    [
        (
            {"from_location": 3, "to_location": 2, "shipment": "stock.shipment.out,1"},
            -2,
            AdjustmentReason.SOLD,
        ),
        (
            {"from_location": 1, "to_location": 3, "shipment": "stock.shipment.out.return,1"},
            2,
            AdjustmentReason.RETURNED_TO_STOCK,
        ),
        ({"from_location": 4, "to_location": 3, "shipment": None}, 2, AdjustmentReason.CORRECTION),
        ({"from_location": 3, "to_location": 4, "shipment": None}, -2, AdjustmentReason.CORRECTION),
        (
            {"from_location": 3, "to_location": 9, "shipment": None},
            -2,
            AdjustmentReason.TRANSFER_OUT,
        ),
    ],
)
def test_done_moves_become_adjustments(move: dict, delta: int, reason: AdjustmentReason) -> None:
    record = {"id": 5, "product": 1, "quantity": 2.0, "state": "done", "write_date": T, **move}
    adjustment = mapping_inventory.to_adjustment(
        record, watched_location_id=3, location_code="STO", sku="RS-CAP", lost_found_id=4
    )
    assert adjustment is not None
    assert (adjustment.delta, adjustment.reason) == (delta, reason)
    assert adjustment.id == derived_id(EntityKind.INVENTORY_ADJUSTMENT, "stock.move", 5)


def test_moves_not_touching_the_location_or_not_done_are_ignored() -> None:
    base = {"id": 5, "product": 1, "quantity": 2.0, "write_date": T, "shipment": None}
    assert (
        mapping_inventory.to_adjustment(
            {**base, "state": "done", "from_location": 1, "to_location": 2},
            watched_location_id=3,
            location_code="STO",
            sku="RS-CAP",
        )
        is None
    )
    assert (
        mapping_inventory.to_adjustment(
            {**base, "state": "assigned", "from_location": 3, "to_location": 2},
            watched_location_id=3,
            location_code="STO",
            sku="RS-CAP",
        )
        is None
    )


def test_common_converters() -> None:
    assert money(Decimal("19.900"), "EUR") == Money.of("19.90", "EUR")
    assert reference_of("sale.line,42") == ("sale.line", 42)
    assert reference_of(None) is None
    assert reference_of("sale.line,x") is None
    assert aware(T) == T.replace(tzinfo=dt.UTC)
    assert derived_id(EntityKind.ORDER, "sale.sale", 1) == derived_id(
        EntityKind.ORDER, "sale.sale", 1
    )
