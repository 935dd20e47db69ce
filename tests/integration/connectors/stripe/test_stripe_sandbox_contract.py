"""Our Stripe connector against the Stripe sandbox: refunds, idempotency, pages, 429, 5xx."""

from __future__ import annotations

import pytest
from stripe_harness import RunningStripe

from retailsync.connectors.stripe import StripePayments
from retailsync.connectors.stripe.errors import (
    StripeAuthenticationFailed,
    StripeIdempotencyMismatch,
)
from retailsync.domain.money import Money
from retailsync.ports.payments import PaymentStatus, RefundStatus
from retailsync.resilience.errors import (
    DownstreamThrottled,
    UnknownReference,
    ValidationRejected,
)


async def test_payment_state_follows_refunds(
    stripe_sandbox: RunningStripe, payments: StripePayments
) -> None:
    """Stripe API reference, "PaymentIntents > Retrieve" and "Charges > List" (payment_intent
    filter): the intent reports amount_received; refunds show on the charge's amount_refunded."""
    intent = stripe_sandbox.state.seed_payment_intent(
        amount=4999, currency="eur", metadata={"order_id": "1001"}
    )
    state = await payments.payment_state(intent["id"])
    assert state.status is PaymentStatus.CAPTURED
    assert state.amount == Money.of("49.99", "EUR")
    assert state.order_ref == "1001"
    await payments.issue_refund(
        payment_ref=intent["id"], idempotency_key="wf-1:refund", amount=Money.of("9.99", "EUR")
    )
    state = await payments.payment_state(intent["id"])
    assert state.status is PaymentStatus.PARTIALLY_REFUNDED
    assert state.refundable == Money.of("40.00", "EUR")


async def test_a_refund_retried_with_the_same_key_creates_one_refund(
    stripe_sandbox: RunningStripe, payments: StripePayments
) -> None:
    """Stripe docs, "Idempotent requests": a retry with the same key returns the saved result
    of the first request instead of performing the operation twice."""
    intent = stripe_sandbox.state.seed_payment_intent(amount=5000, currency="eur")
    call = {
        "payment_ref": intent["id"],
        "idempotency_key": "wf-42:issue_refund",
        "amount": Money.of("20.00", "EUR"),
        "refund_id": "ref_01JAAAAAAAAAAAAAAAAAAAAAAA",
        "order_ref": "1001",
    }
    first = await payments.issue_refund(**call)  # type: ignore[arg-type]
    second = await payments.issue_refund(**call)  # type: ignore[arg-type]
    assert first.refund_ref == second.refund_ref
    assert first.refund_id == "ref_01JAAAAAAAAAAAAAAAAAAAAAAA"
    assert len(stripe_sandbox.state.refunds) == 1


async def test_a_lost_answer_is_recovered_by_retrying_with_the_same_key(
    stripe_sandbox: RunningStripe, payments: StripePayments
) -> None:
    """Stripe docs, "Idempotent requests": the result is saved once execution begins, so
    when the refund was made but the answer was lost, the retry gets the saved refund."""
    intent = stripe_sandbox.state.seed_payment_intent(amount=5000, currency="eur")
    stripe_sandbox.state.lose_response_next = 1
    refund = await payments.issue_refund(
        payment_ref=intent["id"], idempotency_key="wf-7:issue_refund"
    )
    assert payments.api.last_attempts == 2
    assert refund.amount == Money.of("50.00", "EUR")
    assert list(stripe_sandbox.state.refunds) == [refund.refund_ref]


async def test_reusing_a_key_with_other_parameters_is_an_idempotency_error(
    stripe_sandbox: RunningStripe, payments: StripePayments
) -> None:
    """Stripe docs, "Idempotent requests" and "Errors" (idempotency_error): the idempotency
    layer compares parameters and errors when they differ."""
    intent = stripe_sandbox.state.seed_payment_intent(amount=5000, currency="eur")
    await payments.issue_refund(
        payment_ref=intent["id"], idempotency_key="k", amount=Money.of("1.00", "EUR")
    )
    with pytest.raises(StripeIdempotencyMismatch) as raised:
        await payments.issue_refund(
            payment_ref=intent["id"], idempotency_key="k", amount=Money.of("2.00", "EUR")
        )
    assert raised.value.status == 400
    assert raised.value.details["type"] == "idempotency_error"
    assert len(stripe_sandbox.state.refunds) == 1


async def test_listing_refunds_follows_every_page(
    stripe_sandbox: RunningStripe, payments: StripePayments
) -> None:
    """Stripe API reference, "Pagination": list objects carry has_more; the next page is
    requested with starting_after=<last id>, newest first."""
    intent = stripe_sandbox.state.seed_payment_intent(amount=5000, currency="eur")
    made = [
        await payments.issue_refund(
            payment_ref=intent["id"], idempotency_key=f"k{n}", amount=Money.of("1.00", "EUR")
        )
        for n in range(5)
    ]
    requests_before = stripe_sandbox.state.requests_seen
    listed = await payments.list_refunds(intent["id"])
    assert [r.refund_ref for r in listed] == [r.refund_ref for r in reversed(made)]
    assert stripe_sandbox.state.requests_seen - requests_before == 3  # pages of 2, 2, 1


async def test_429_is_retried_after_retry_after(
    stripe_sandbox: RunningStripe, payments: StripePayments
) -> None:
    """Stripe docs, "Rate limits": too many requests get 429; back off and retry."""
    intent = stripe_sandbox.state.seed_payment_intent(amount=5000, currency="eur")
    stripe_sandbox.state.retry_after_seconds = 0.05
    stripe_sandbox.state.rate_limit_next = 2
    state = await payments.payment_state(intent["id"])
    assert state.payment_ref == intent["id"]


async def test_a_burst_over_the_limit_is_throttled_then_served(
    stripe_sandbox: RunningStripe, payments: StripePayments
) -> None:
    """Stripe docs, "Rate limits": requests beyond the per-second limit get 429; the client
    waits as told and every call is served in the end."""
    intent = stripe_sandbox.state.seed_payment_intent(amount=5000, currency="eur")
    stripe_sandbox.state.burst = 3
    stripe_sandbox.state.window_seconds = 0.3
    before = stripe_sandbox.state.requests_seen
    for _ in range(6):
        state = await payments.payment_state(intent["id"])  # two calls each
        assert state.status is PaymentStatus.CAPTURED
    throttled = stripe_sandbox.state.requests_seen - before - 12
    assert throttled > 0


async def test_a_429_longer_than_allowed_is_raised_for_the_caller_to_defer(
    stripe_sandbox: RunningStripe,
) -> None:
    """Stripe docs, "Rate limits": a client may give up and defer instead of waiting."""
    intent = stripe_sandbox.state.seed_payment_intent(amount=5000, currency="eur")
    stripe_sandbox.state.retry_after_seconds = 120
    stripe_sandbox.state.rate_limit_next = 1
    async with StripePayments(stripe_sandbox.settings(max_retry_after_seconds=5)) as adapter:
        with pytest.raises(DownstreamThrottled) as raised:
            await adapter.payment_state(intent["id"])
    assert raised.value.retry_after == 120


async def test_5xx_answers_are_retried(
    stripe_sandbox: RunningStripe, payments: StripePayments
) -> None:
    """Stripe API reference, "Errors": 500-504 are Stripe-side errors worth retrying (the
    sandbox also sends Stripe-Should-Retry: true); a refund retried with its key is made once."""
    intent = stripe_sandbox.state.seed_payment_intent(amount=5000, currency="eur")
    stripe_sandbox.state.fail_next = 2
    refund = await payments.issue_refund(payment_ref=intent["id"], idempotency_key="wf-5:refund")
    assert payments.api.last_attempts == 3
    assert refund.status is RefundStatus.SUCCEEDED
    assert len(stripe_sandbox.state.refunds) == 1


async def test_business_refusals_are_not_retried(
    stripe_sandbox: RunningStripe, payments: StripePayments
) -> None:
    """Stripe API reference, "Errors" (400 invalid_request_error, 404 resource_missing)."""
    intent = stripe_sandbox.state.seed_payment_intent(amount=1000, currency="eur")
    with pytest.raises(ValidationRejected) as too_much:
        await payments.issue_refund(
            payment_ref=intent["id"], idempotency_key="big", amount=Money.of("20.00", "EUR")
        )
    assert too_much.value.details["code"] == "amount_too_large"
    assert payments.api.last_attempts == 1
    with pytest.raises(UnknownReference):
        await payments.get_refund("re_missing")


async def test_a_wrong_api_key_is_an_authentication_error(stripe_sandbox: RunningStripe) -> None:
    """Stripe API reference, "Errors": 401 Unauthorized, no valid API key provided."""
    async with StripePayments(stripe_sandbox.settings(api_key="sk_test_wrong")) as adapter:
        with pytest.raises(StripeAuthenticationFailed, match="api_key"):
            await adapter.get_refund("re_1")
