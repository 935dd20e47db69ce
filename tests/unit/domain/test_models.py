"""Canonical entities: construction rules, computed totals and small behaviours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from retailsync.domain import (
    ContactChannel,
    CurrencyMismatch,
    Customer,
    EntityKind,
    FinancialPosting,
    InventoryAdjustment,
    InventoryPosition,
    Money,
    Order,
    OrderLine,
    PostingKind,
    Refund,
    new_id,
)
from retailsync.domain.inventory import AdjustmentReason

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def line(price: str, currency: str = "EUR", quantity: int = 2) -> OrderLine:
    return OrderLine.priced(
        line_no=1,
        sku="TSHIRT-M",
        quantity=quantity,
        unit_price=Money.of(price, currency),
        tax=Money.of("1.00", currency),
        discount=Money.of("0.50", currency),
    )


def test_placing_an_order_computes_its_totals() -> None:
    order = Order.place(
        id=new_id(EntityKind.ORDER),
        channel="web",
        currency="EUR",
        lines=[line("19.99")],
        placed_at=NOW,
        shipping_total=Money.of("4.90", "EUR"),
    )
    assert order.lines[0].line_total == Money.of("39.48", "EUR")
    assert order.subtotal == Money.of("39.48", "EUR")
    assert order.grand_total == Money.of("45.38", "EUR")
    assert order.line(1).sku == "TSHIRT-M"
    with pytest.raises(KeyError, match="no line 9"):
        order.line(9)


def test_an_order_refuses_amounts_in_another_currency() -> None:
    with pytest.raises(CurrencyMismatch, match="EUR and USD"):
        Order.place(
            id=new_id(EntityKind.ORDER),
            channel="web",
            currency="EUR",
            lines=[line("19.99", "USD")],
            placed_at=NOW,
        )
    order = Order.place(
        id=new_id(EntityKind.ORDER), channel="web", currency="EUR", lines=[line("1")], placed_at=NOW
    )
    data = order.model_dump()
    data["lines"] = [line("1", "USD").model_dump()]
    with pytest.raises(ValidationError, match=r"currency mismatch.*EUR and USD"):
        Order.model_validate(data)


def test_models_refuse_unknown_fields_and_naive_times_and_are_frozen() -> None:
    refund = Refund(
        id=new_id(EntityKind.REFUND), amount=Money.of("5", "EUR"), reason="x", requested_at=NOW
    )
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Refund.model_validate({**refund.model_dump(), "surprise": 1})
    with pytest.raises(ValidationError, match="timezone"):
        Refund.model_validate({**refund.model_dump(), "requested_at": datetime(2025, 1, 1)})
    with pytest.raises(ValidationError, match="frozen"):
        refund.reason = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="must be positive"):
        Refund.model_validate({**refund.model_dump(), "amount": Money.of("0", "EUR")})


def test_a_posting_keeps_amount_and_tax_in_one_currency() -> None:
    with pytest.raises(ValidationError, match="EUR and GBP"):
        FinancialPosting(
            id=new_id(EntityKind.POSTING),
            kind=PostingKind.INVOICE,
            amount=Money.of("10", "EUR"),
            tax=Money.of("1", "GBP"),
            created_at=NOW,
        )


def test_changing_consent_stamps_the_channel_and_bumps_the_version() -> None:
    customer = Customer(id=new_id(EntityKind.CUSTOMER), email="ada@example.com", created_at=NOW)
    later = NOW + timedelta(days=1)
    changed = customer.change_consent(
        ContactChannel.MARKETING, granted=True, at=later, source="checkout"
    )
    consent = changed.preferences.for_channel(ContactChannel.MARKETING)
    assert (consent.granted, consent.updated_at, consent.source) == (True, later, "checkout")
    assert changed.version == customer.version + 1
    assert not changed.preferences.sms.granted
    with pytest.raises(ValidationError, match="pattern"):
        Customer(id=new_id(EntityKind.CUSTOMER), email="not-an-address", created_at=NOW)


def test_inventory_adjustment_applies_to_its_own_position_only() -> None:
    position = InventoryPosition(
        sku="TSHIRT-M", location="BER-1", on_hand=10, reserved=2, allocated=3, in_transit=4,
        as_of=NOW,
    )  # fmt: skip
    assert position.available_to_sell == 9
    adjustment = InventoryAdjustment(
        id=new_id(EntityKind.INVENTORY_ADJUSTMENT), sku="TSHIRT-M", location="BER-1", delta=-12,
        reason=AdjustmentReason.DAMAGED, occurred_at=NOW + timedelta(hours=1),
    )  # fmt: skip
    after = adjustment.apply_to(position)
    assert (after.on_hand, after.version, after.available_to_sell) == (-2, 2, 0)
    elsewhere = position.model_copy(update={"location": "HAM-2"})
    with pytest.raises(ValueError, match="not for position TSHIRT-M@HAM-2"):
        adjustment.apply_to(elsewhere)
    with pytest.raises(ValidationError, match="must not be zero"):
        InventoryAdjustment.model_validate({**adjustment.model_dump(), "delta": 0})
