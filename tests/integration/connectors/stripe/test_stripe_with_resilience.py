"""The Stripe connector under the resilience layer's ``payments`` downstream."""

from __future__ import annotations

from stripe_harness import RunningStripe

from retailsync.connectors.stripe import StripePayments
from retailsync.domain.money import Money
from retailsync.resilience import Downstreams, ResiliencePolicy, ResilienceSettings, RetryPolicy


def payments_downstream() -> Downstreams:
    policy = ResiliencePolicy(
        retry=RetryPolicy(max_attempts=4, initial_backoff_seconds=0.01, max_backoff_seconds=0.05)
    )
    return Downstreams(ResilienceSettings(downstreams={"payments": policy}), engine=None)


async def test_5xx_and_429_are_retried_by_the_resilience_layer_with_one_refund(
    stripe_sandbox: RunningStripe,
) -> None:
    """Stripe API reference, "Errors" (5xx) and docs "Rate limits" (429), "Idempotent
    requests": the resilience layer retries the keyed POST; Stripe makes one refund."""
    downstream = payments_downstream()["payments"]
    intent = stripe_sandbox.state.seed_payment_intent(amount=5000, currency="eur")
    stripe_sandbox.state.fail_next = 1
    stripe_sandbox.state.rate_limit_next = 1
    stripe_sandbox.state.retry_after_seconds = 0.02
    async with StripePayments(stripe_sandbox.settings(), downstream=downstream) as payments:
        refund = await payments.issue_refund(
            payment_ref=intent["id"],
            idempotency_key="wf-77:issue_refund",
            amount=Money.of("5.00", "EUR"),
        )
        assert payments.api.last_attempts == 3
    assert list(stripe_sandbox.state.refunds) == [refund.refund_ref]
    assert downstream.stats.retries == 2
