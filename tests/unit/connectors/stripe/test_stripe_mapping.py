"""Stripe objects and events -> port records and canonical events (table-driven, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from retailsync.connectors.stripe.config import DEFAULT_REFUND_STATUS_EVENTS
from retailsync.connectors.stripe.errors import StripePayloadError
from retailsync.connectors.stripe.mapping import (
    canonical_refund_id,
    money_from_stripe,
    money_to_stripe,
    payment_state,
    refund_events,
    refund_record,
)
from retailsync.domain.catalogue import RefundCompleted, RefundFailed, parse_event
from retailsync.domain.identifiers import EntityKind, is_valid_id
from retailsync.domain.money import Money
from retailsync.ports.payments import PaymentStatus, RefundStatus


@pytest.mark.parametrize(
    ("amount", "currency", "money"),
    [
        (1050, "eur", Money.of("10.50", "EUR")),
        (1050, "jpy", Money.of("1050", "JPY")),
        (1050, "kwd", Money.of("1.050", "KWD")),
        (0, "usd", Money.of("0", "USD")),
    ],
)
def test_amounts_use_stripes_minor_units(amount: int, currency: str, money: Money) -> None:
    assert money_from_stripe(amount, currency) == money
    assert money_to_stripe(money) == (amount, currency)


def test_amounts_that_are_not_integers_are_refused() -> None:
    with pytest.raises(StripePayloadError):
        money_from_stripe(10.5, "eur")  # type: ignore[arg-type]
    with pytest.raises(StripePayloadError):
        money_from_stripe(100, "zzz")


def intent(**changes: Any) -> dict[str, Any]:
    base = {
        "id": "pi_1",
        "object": "payment_intent",
        "amount": 5000,
        "amount_received": 5000,
        "currency": "eur",
        "status": "succeeded",
        "metadata": {"order_id": "1001"},
    }
    base.update(changes)
    return base


@pytest.mark.parametrize(
    ("status", "refunded", "expected"),
    [
        ("requires_payment_method", 0, PaymentStatus.AWAITING_CUSTOMER),
        ("processing", 0, PaymentStatus.PROCESSING),
        ("requires_capture", 0, PaymentStatus.AUTHORIZED),
        ("canceled", 0, PaymentStatus.CANCELED),
        ("succeeded", 0, PaymentStatus.CAPTURED),
        ("succeeded", 1000, PaymentStatus.PARTIALLY_REFUNDED),
        ("succeeded", 5000, PaymentStatus.REFUNDED),
    ],
)
def test_payment_status_table(status: str, refunded: int, expected: PaymentStatus) -> None:
    charges = [{"id": "ch_1", "amount_refunded": refunded}]
    state = payment_state(intent(status=status), charges)
    assert state.status is expected
    assert state.amount_refunded == money_from_stripe(refunded, "eur")
    assert state.order_ref == "1001" and state.charge_refs == ("ch_1",)


def refund(**changes: Any) -> dict[str, Any]:
    base = {
        "id": "re_1",
        "object": "refund",
        "amount": 1250,
        "currency": "eur",
        "charge": "ch_1",
        "payment_intent": "pi_1",
        "created": 1767225600,
        "metadata": {},
        "status": "succeeded",
    }
    base.update(changes)
    return base


def event(obj: dict[str, Any], event_type: str = "refund.updated") -> dict[str, Any]:
    return {
        "id": "evt_1",
        "object": "event",
        "type": event_type,
        "created": 1767225660,
        "data": {"object": obj},
    }


def test_refund_records_carry_the_canonical_refund_id() -> None:
    stored = "ref_01JCCCCCCCCCCCCCCCCCCCCCCC"
    record = refund_record(refund(metadata={"refund_id": stored, "order_id": "1001"}))
    assert record.status is RefundStatus.SUCCEEDED
    assert record.refund_id == stored and record.order_ref == "1001"
    derived = canonical_refund_id(refund(metadata={"refund_id": "not-an-id"}))
    assert is_valid_id(derived, EntityKind.REFUND)
    assert derived == canonical_refund_id(refund())


def test_succeeded_and_failed_refunds_become_canonical_events() -> None:
    [completed] = refund_events(event(refund()), status_events=DEFAULT_REFUND_STATUS_EVENTS)
    payload = parse_event(completed)
    assert isinstance(payload, RefundCompleted)
    assert payload.amount == Money.of("12.50", "EUR")
    assert payload.payment_reference == "re_1"
    assert completed.entityversion == 1767225660
    [failed] = refund_events(
        event(refund(status="failed", failure_reason="insufficient_funds")),
        status_events=DEFAULT_REFUND_STATUS_EVENTS,
    )
    failure = parse_event(failed)
    assert isinstance(failure, RefundFailed)
    assert failure.retryable is True and "insufficient_funds" in failure.reason


def test_the_same_change_in_two_stripe_events_is_one_canonical_event() -> None:
    a = refund_events(event(refund()), status_events=DEFAULT_REFUND_STATUS_EVENTS)
    b = refund_events(
        event(refund(), "charge.refund.updated"), status_events=DEFAULT_REFUND_STATUS_EVENTS
    )
    assert a[0].id == b[0].id == "stripe:re_1:completed"


def test_pending_refunds_and_other_events_map_to_nothing() -> None:
    table = DEFAULT_REFUND_STATUS_EVENTS
    assert refund_events(event(refund(status="pending")), status_events=table) == []
    assert refund_events(event(refund(), "payment_intent.succeeded"), status_events=table) == []


@pytest.mark.parametrize(
    "broken",
    [
        event({"object": "charge", "id": "ch_1"}),
        event(refund(status="frozen")),
        event(refund(amount=None)),
        {**event(refund()), "created": "yesterday"},
    ],
)
def test_broken_refund_events_are_payload_errors(broken: dict[str, Any]) -> None:
    with pytest.raises(StripePayloadError):
        refund_events(broken, status_events=DEFAULT_REFUND_STATUS_EVENTS)
