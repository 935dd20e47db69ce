"""Stripe objects and events -> port records and canonical events (pure functions).

What goes where, at a glance:

=================================  ==========================================================
Stripe                             hub
=================================  ==========================================================
payment_intent.status              :data:`PAYMENT_STATUS_BY_INTENT_STATUS` (refined by refunds)
amount (integer, minor units)      :class:`Money` via :func:`money_from_stripe` (Stripe's own
                                   zero- and three-decimal currency lists)
refund.metadata.refund_id          canonical refund id (else derived from the Stripe id)
refund.metadata.<order key>        order reference
refund.status                      ``refund.completed`` / ``refund.failed`` (settings table)
refund.failure_reason              ``RefundFailed.reason``; retryable per
                                   :data:`RETRYABLE_FAILURE_REASONS`
event.created                      event time, and the entity version of the canonical event
=================================  ==========================================================

Canonical event ids are derived from the Stripe refund id and the outcome, so
``refund.updated`` and ``charge.refund.updated`` for the same change (and every retry of
either) become one event on the bus.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from retailsync.connectors.stripe.errors import StripePayloadError
from retailsync.domain.catalogue import RefundCompleted, RefundFailed, build_event
from retailsync.domain.errors import DomainError
from retailsync.domain.events import CloudEvent
from retailsync.domain.identifiers import EntityKind, derive_id, is_valid_id
from retailsync.domain.money import Money
from retailsync.ports.payments import PaymentState, PaymentStatus, RefundRecord, RefundStatus

__all__ = [
    "EVENT_SOURCE",
    "PAYMENT_STATUS_BY_INTENT_STATUS",
    "REFUND_EVENT_TYPES",
    "canonical_refund_id",
    "money_from_stripe",
    "money_to_stripe",
    "payment_state",
    "refund_events",
    "refund_record",
]

SYSTEM = "stripe"
EVENT_SOURCE = "retailsync/connectors/stripe"

#: Stripe's zero-decimal currencies (amounts are whole units), from Stripe's currency docs.
STRIPE_ZERO_DECIMAL = frozenset(
    {
        "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA",
        "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
    }
)  # fmt: skip
#: Stripe's three-decimal currencies.
STRIPE_THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])

#: PaymentIntent.status -> hub payment status (before refunds are taken into account).
PAYMENT_STATUS_BY_INTENT_STATUS: Mapping[str, PaymentStatus] = {
    "requires_payment_method": PaymentStatus.AWAITING_CUSTOMER,
    "requires_confirmation": PaymentStatus.AWAITING_CUSTOMER,
    "requires_action": PaymentStatus.AWAITING_CUSTOMER,
    "processing": PaymentStatus.PROCESSING,
    "requires_capture": PaymentStatus.AUTHORIZED,
    "succeeded": PaymentStatus.CAPTURED,
    "canceled": PaymentStatus.CANCELED,
}

#: Refund.status -> port refund status.
REFUND_STATUS: Mapping[str, RefundStatus] = {
    "pending": RefundStatus.PENDING,
    "requires_action": RefundStatus.REQUIRES_ACTION,
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.CANCELED,
}

#: Refund failure reasons where trying again later may succeed.
RETRYABLE_FAILURE_REASONS = frozenset({"insufficient_funds", "unknown"})

#: Stripe event types whose ``data.object`` is a refund.
REFUND_EVENT_TYPES = frozenset(
    {"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"}
)


def stripe_decimals(currency: str) -> int:
    """Decimals Stripe uses for ``currency`` in its integer amounts."""
    code = currency.upper()
    if code in STRIPE_ZERO_DECIMAL:
        return 0
    if code in STRIPE_THREE_DECIMAL:
        return 3
    return 2


def money_from_stripe(amount: int, currency: str) -> Money:
    """Stripe's integer amount (smallest unit) as canonical money."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise StripePayloadError(f"Stripe amount must be an integer, got {amount!r}")
    value = Decimal(amount).scaleb(-stripe_decimals(currency))
    try:
        return Money.of(value, currency.upper())
    except DomainError as error:
        raise StripePayloadError(f"Stripe amount {amount} {currency!r}: {error}") from error


def money_to_stripe(money: Money) -> tuple[int, str]:
    """Canonical money as Stripe's ``(amount, currency)`` (integer, lower-case code)."""
    units = money.amount.scaleb(stripe_decimals(money.currency))
    if units != units.to_integral_value():
        raise StripePayloadError(
            f"{money} cannot be expressed in Stripe's smallest unit for {money.currency}"
        )
    return int(units), money.currency.lower()


def _get(obj: Mapping[str, Any], key: str, what: str) -> Any:
    value = obj.get(key)
    if value is None:
        raise StripePayloadError(f"{what} has no {key!r}")
    return value


def _ref(value: Any) -> str | None:
    """An id whether Stripe sent it as a string or expanded it into an object."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return str(value.get("id")) if value.get("id") else None
    return str(value)


def _timestamp(epoch: Any, what: str) -> datetime:
    if not isinstance(epoch, int):
        raise StripePayloadError(f"{what} must be a Unix timestamp, got {epoch!r}")
    return datetime.fromtimestamp(epoch, UTC)


def payment_state(
    intent: Mapping[str, Any],
    charges: Sequence[Mapping[str, Any]],
    *,
    order_key: str = "order_id",
) -> PaymentState:
    """A PaymentIntent (and its charges) as the port's :class:`PaymentState`."""
    intent_id = str(_get(intent, "id", "payment intent"))
    currency = str(_get(intent, "currency", f"payment intent {intent_id}"))
    vendor_status = str(_get(intent, "status", f"payment intent {intent_id}"))
    status = PAYMENT_STATUS_BY_INTENT_STATUS.get(vendor_status)
    if status is None:
        raise StripePayloadError(f"payment intent {intent_id} has unknown status {vendor_status!r}")
    amount = money_from_stripe(_get(intent, "amount", f"payment intent {intent_id}"), currency)
    received = intent.get("amount_received") or 0
    captured = money_from_stripe(received, currency)
    refunded_units = sum(int(charge.get("amount_refunded") or 0) for charge in charges)
    refunded = money_from_stripe(refunded_units, currency)
    if status is PaymentStatus.CAPTURED and refunded_units:
        fully = refunded >= captured
        status = PaymentStatus.REFUNDED if fully else PaymentStatus.PARTIALLY_REFUNDED
    metadata = intent.get("metadata") or {}
    return PaymentState(
        payment_ref=intent_id,
        status=status,
        amount=amount,
        amount_captured=captured,
        amount_refunded=refunded,
        charge_refs=tuple(str(charge["id"]) for charge in charges if charge.get("id")),
        order_ref=metadata.get(order_key),
        vendor_status=vendor_status,
    )


def canonical_refund_id(refund: Mapping[str, Any]) -> str:
    """The hub's refund id: the one we stored in metadata, else one derived from Stripe's id."""
    metadata = refund.get("metadata") or {}
    stored = metadata.get("refund_id")
    if isinstance(stored, str) and is_valid_id(stored, EntityKind.REFUND):
        return stored
    return derive_id(EntityKind.REFUND, SYSTEM, str(_get(refund, "id", "refund")))


def refund_record(refund: Mapping[str, Any], *, order_key: str = "order_id") -> RefundRecord:
    """A Stripe Refund as the port's :class:`RefundRecord`."""
    refund_id = str(_get(refund, "id", "refund"))
    vendor_status = str(_get(refund, "status", f"refund {refund_id}"))
    status = REFUND_STATUS.get(vendor_status)
    if status is None:
        raise StripePayloadError(f"refund {refund_id} has unknown status {vendor_status!r}")
    currency = str(_get(refund, "currency", f"refund {refund_id}"))
    metadata = {str(k): str(v) for k, v in (refund.get("metadata") or {}).items()}
    return RefundRecord(
        refund_ref=refund_id,
        payment_ref=_ref(refund.get("payment_intent")),
        charge_ref=_ref(refund.get("charge")),
        status=status,
        amount=money_from_stripe(_get(refund, "amount", f"refund {refund_id}"), currency),
        created_at=_timestamp(refund.get("created"), f"refund {refund_id} created"),
        reason=refund.get("reason"),
        failure_reason=refund.get("failure_reason"),
        order_ref=metadata.get(order_key),
        refund_id=canonical_refund_id(refund),
        metadata=metadata,
    )


def refund_events(
    event: Mapping[str, Any], *, status_events: Mapping[str, str]
) -> list[CloudEvent]:
    """Canonical events for one Stripe event: refund outcomes only, others map to nothing.

    ``status_events`` maps a Stripe refund status to ``completed``, ``failed`` or ``""``
    (see :data:`retailsync.connectors.stripe.config.DEFAULT_REFUND_STATUS_EVENTS`).
    """
    event_type = event.get("type")
    if event_type not in REFUND_EVENT_TYPES:
        return []
    event_id = str(_get(event, "id", "Stripe event"))
    data = event.get("data")
    refund = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(refund, Mapping) or refund.get("object") != "refund":
        raise StripePayloadError(f"event {event_id} ({event_type}) carries no refund object")
    stripe_refund_id = str(_get(refund, "id", f"refund in event {event_id}"))
    status = str(_get(refund, "status", f"refund {stripe_refund_id}"))
    if status not in status_events:
        raise StripePayloadError(
            f"refund {stripe_refund_id} has status {status!r}, which has no entry in "
            "connectors.stripe.refund_status_events"
        )
    outcome = status_events[status]
    if not outcome:
        return []
    changed_at = _timestamp(event.get("created"), f"event {event_id} created")
    version = max(int(changed_at.timestamp()), 1)
    refund_id = canonical_refund_id(refund)
    try:
        payload: RefundCompleted | RefundFailed
        if outcome == "completed":
            payload = RefundCompleted(
                refund_id=refund_id,
                version=version,
                amount=money_from_stripe(
                    _get(refund, "amount", f"refund {stripe_refund_id}"),
                    str(_get(refund, "currency", f"refund {stripe_refund_id}")),
                ),
                payment_reference=stripe_refund_id,
                completed_at=changed_at,
            )
        else:
            failure = refund.get("failure_reason") or status
            payload = RefundFailed(
                refund_id=refund_id,
                version=version,
                reason=f"Stripe refund {stripe_refund_id} {status}: {failure}",
                retryable=failure in RETRYABLE_FAILURE_REASONS,
                failed_at=changed_at,
            )
    except (DomainError, ValueError) as error:
        raise StripePayloadError(f"refund {stripe_refund_id}: {error}") from error
    return [
        build_event(
            payload,
            source=EVENT_SOURCE,
            id=f"stripe:{stripe_refund_id}:{outcome}",
            time=changed_at,
        )
    ]
