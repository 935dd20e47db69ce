"""The :class:`~retailsync.ports.payments.PaymentsPort` adapter for Stripe."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from retailsync.connectors.stripe.client import StripeApi
from retailsync.connectors.stripe.config import StripeSettings
from retailsync.connectors.stripe.mapping import (
    money_to_stripe,
    payment_state,
    refund_record,
)
from retailsync.domain.money import Money
from retailsync.ports.payments import PaymentState, RefundRecord
from retailsync.resilience.errors import BusinessError, ConflictRejected
from retailsync.resilience.guard import Downstream
from retailsync.resilience.http import ClosingClient

#: Reasons Stripe accepts in ``reason``; any other reason text travels in metadata.
STRIPE_REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})
#: PaymentIntent statuses Stripe lets a client cancel (the rest answer 400).
STRIPE_CANCELLABLE = frozenset(
    {
        "requires_payment_method",
        "requires_capture",
        "requires_confirmation",
        "requires_action",
        "processing",
    }
)


class StripePayments(ClosingClient):
    """Payment state and refunds at Stripe, with idempotency keys from the workflow step."""

    def __init__(
        self,
        settings: StripeSettings,
        *,
        api: StripeApi | None = None,
        downstream: Downstream | None = None,
    ) -> None:
        """``downstream`` is the resilience layer's ``payments`` downstream (recommended)."""
        self.settings = settings
        self.api = api or StripeApi(settings, downstream=downstream)

    async def aclose(self) -> None:
        await self.api.aclose()

    async def payment_state(self, payment_ref: str) -> PaymentState:
        if payment_ref.startswith("ch_"):
            charge = await self.api.retrieve_charge(payment_ref)
            intent_id = charge.get("payment_intent")
            if not intent_id:
                raise ValueError(f"charge {payment_ref} has no payment intent")
            payment_ref = str(intent_id)
        intent = await self.api.retrieve_payment_intent(payment_ref)
        charges = await self.api.list_charges(payment_intent=payment_ref)
        return payment_state(intent, charges, order_key=self.settings.order_metadata_key)

    async def issue_refund(
        self,
        *,
        payment_ref: str,
        idempotency_key: str,
        amount: Money | None = None,
        reason: str | None = None,
        order_ref: str | None = None,
        refund_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundRecord:
        params: dict[str, Any] = {}
        if payment_ref.startswith("ch_"):
            params["charge"] = payment_ref
        else:
            params["payment_intent"] = payment_ref
        if amount is not None:
            params["amount"], _currency = money_to_stripe(amount)
        meta: dict[str, str] = dict(metadata or {})
        if reason in STRIPE_REFUND_REASONS:
            params["reason"] = reason
        elif reason:
            meta["reason"] = reason[:500]
        if order_ref:
            meta[self.settings.order_metadata_key] = order_ref
        if refund_id:
            meta["refund_id"] = refund_id
        if meta:
            params["metadata"] = meta
        refund = await self.api.create_refund(params, idempotency_key=idempotency_key)
        return refund_record(refund, order_key=self.settings.order_metadata_key)

    async def void_payment(self, payment_ref: str, *, idempotency_key: str) -> None:
        """Cancel the PaymentIntent (``POST /v1/payment_intents/{id}/cancel``).

        Stripe releases an uncaptured authorization on cancel. A PaymentIntent that is already
        canceled counts as voided (Stripe answers 400 to a second cancel with another key);
        one that captured money is refused: refund it instead.
        """
        if payment_ref.startswith("ch_"):
            charge = await self.api.retrieve_charge(payment_ref)
            payment_ref = str(charge.get("payment_intent") or payment_ref)
        intent = await self.api.retrieve_payment_intent(payment_ref)
        status = str(intent.get("status"))
        if status == "canceled":
            return
        if status not in STRIPE_CANCELLABLE:
            raise ConflictRejected(
                f"the payment {payment_ref} is {status} at Stripe and cannot be voided; "
                "refund what was captured instead",
                downstream="stripe",
                operation="void payment",
            )
        cancelled = await self.api.cancel_payment_intent(
            payment_ref,
            {"cancellation_reason": "requested_by_customer"},
            idempotency_key=idempotency_key,
        )
        if cancelled.get("status") != "canceled":
            raise BusinessError(
                f"Stripe answered the cancel of {payment_ref} with status "
                f"{cancelled.get('status')!r}, not canceled",
                downstream="stripe",
                operation="void payment",
            )

    async def get_refund(self, refund_ref: str) -> RefundRecord:
        refund = await self.api.retrieve_refund(refund_ref)
        return refund_record(refund, order_key=self.settings.order_metadata_key)

    async def list_refunds(self, payment_ref: str | None = None) -> Sequence[RefundRecord]:
        if payment_ref is not None and payment_ref.startswith("ch_"):
            pages = self.api.iter_refunds(charge=payment_ref)
        else:
            pages = self.api.iter_refunds(payment_intent=payment_ref)
        return [
            refund_record(refund, order_key=self.settings.order_metadata_key)
            async for refund in pages
        ]
