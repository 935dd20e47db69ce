"""Voiding an uncaptured authorization: our connector and the official SDK against the sandbox."""

from __future__ import annotations

import pytest
import stripe
from stripe_harness import RunningStripe

from retailsync.connectors.stripe import StripePayments
from retailsync.ports.payments import PaymentStatus
from retailsync.resilience.errors import ConflictRejected
from retailsync.sandbox.stripe import SANDBOX_API_KEY


async def test_void_cancels_the_authorization_once(
    stripe_sandbox: RunningStripe, payments: StripePayments
) -> None:
    """Stripe API reference, "Cancel a PaymentIntent": a requires_capture intent becomes
    canceled and its amount_capturable is released; a repeat with the same key is replayed and
    a repeat with another key finds it canceled (no error, nothing else happens)."""
    intent = stripe_sandbox.state.seed_payment_intent(
        amount=4200, currency="eur", status="requires_capture"
    )
    before = await payments.payment_state(intent["id"])
    assert before.status is PaymentStatus.AUTHORIZED
    assert before.refundable.is_zero()

    await payments.void_payment(intent["id"], idempotency_key="wf-9:void_payment")
    await payments.void_payment(intent["id"], idempotency_key="wf-9:void_payment")
    await payments.void_payment(intent["id"], idempotency_key="another-key")

    after = await payments.payment_state(intent["id"])
    assert after.status is PaymentStatus.CANCELED
    saved = stripe_sandbox.state.payment_intents[intent["id"]]
    assert saved["amount_capturable"] == 0
    assert saved["cancellation_reason"] == "requested_by_customer"
    assert saved["canceled_at"] is not None
    charge = stripe_sandbox.state.charges[saved["latest_charge"]]
    assert charge["refunded"] is True and charge["captured"] is False
    cancel_keys = [
        key for (_api_key, key) in stripe_sandbox.state.idempotency if key.startswith("wf-9")
    ]
    assert cancel_keys == ["wf-9:void_payment"]
    assert not stripe_sandbox.state.refunds


async def test_a_captured_payment_cannot_be_voided(
    stripe_sandbox: RunningStripe, payments: StripePayments
) -> None:
    """A succeeded PaymentIntent is not cancellable: a business refusal, the money stays."""
    intent = stripe_sandbox.state.seed_payment_intent(amount=1500, currency="eur")
    with pytest.raises(ConflictRejected, match="refund what was captured instead"):
        await payments.void_payment(intent["id"], idempotency_key="wf-10:void_payment")
    assert stripe_sandbox.state.payment_intents[intent["id"]]["status"] == "succeeded"


def test_the_sandbox_answers_the_sdk_cancel_like_stripe(stripe_sandbox: RunningStripe) -> None:
    """The official SDK's ``payment_intents.cancel`` against the sandbox: same path, same
    object, and Stripe's 400 ``payment_intent_unexpected_state`` for a second cancel."""
    sdk = stripe.StripeClient(
        SANDBOX_API_KEY, base_addresses={"api": stripe_sandbox.base_url}, max_network_retries=0
    )
    intent = stripe_sandbox.state.seed_payment_intent(
        amount=990, currency="usd", status="requires_capture"
    )
    cancelled = sdk.v1.payment_intents.cancel(
        intent["id"], params={"cancellation_reason": "abandoned"}
    )
    assert cancelled.status == "canceled"
    assert cancelled.cancellation_reason == "abandoned"
    with pytest.raises(stripe.InvalidRequestError) as refused:
        sdk.v1.payment_intents.cancel(intent["id"])
    assert refused.value.code == "payment_intent_unexpected_state"
    with pytest.raises(stripe.InvalidRequestError) as bad_reason:
        other = stripe_sandbox.state.seed_payment_intent(amount=5, status="requires_capture")
        sdk.v1.payment_intents.cancel(other["id"], params={"cancellation_reason": "bored"})  # type: ignore[typeddict-item]
    assert bad_reason.value.param == "cancellation_reason"
