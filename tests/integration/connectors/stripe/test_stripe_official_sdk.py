"""The official ``stripe`` SDK against the Stripe sandbox: same API, same webhook signatures."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import stripe
from fastapi import FastAPI, Request
from stripe_harness import RunningStripe

from retailsync.sandbox.server import SandboxServer
from retailsync.sandbox.stripe import SANDBOX_API_KEY, SANDBOX_WEBHOOK_SECRET
from retailsync.testing.ingress import wait_for


@pytest.fixture
def sdk(stripe_sandbox: RunningStripe) -> stripe.StripeClient:
    return stripe.StripeClient(
        SANDBOX_API_KEY, base_addresses={"api": stripe_sandbox.base_url}, max_network_retries=0
    )


@dataclass
class Captured:
    deliveries: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
def webhook_capture(stripe_sandbox: RunningStripe) -> Iterator[Captured]:
    """A plain endpoint that records what the sandbox POSTs (body and headers, verbatim)."""
    captured = Captured()
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> dict[str, bool]:
        captured.deliveries.append((await request.body(), dict(request.headers)))
        return {"received": True}

    with SandboxServer(app) as server:
        stripe_sandbox.state.webhook_url = f"{server.base_url}/hook"
        yield captured


def test_the_sdk_creates_retrieves_and_lists_refunds(
    stripe_sandbox: RunningStripe, sdk: stripe.StripeClient
) -> None:
    """Stripe API reference, "Refunds" (create, retrieve, list) and "Pagination"
    (auto-pagination over has_more / starting_after), through the SDK's own client."""
    intent = stripe_sandbox.state.seed_payment_intent(amount=3000, currency="usd")
    created = [
        sdk.v1.refunds.create(
            params={"payment_intent": intent["id"], "amount": 500, "metadata": {"n": str(n)}},
            options={"idempotency_key": f"sdk-{n}"},
        )
        for n in range(3)
    ]
    assert all(refund.status == "succeeded" and refund.amount == 500 for refund in created)
    assert created[0].metadata["n"] == "0"
    fetched = sdk.v1.refunds.retrieve(created[1].id)
    assert fetched.id == created[1].id and fetched.payment_intent == intent["id"]
    page = sdk.v1.refunds.list(params={"limit": 2, "payment_intent": intent["id"]})
    assert page.has_more is True and len(page.data) == 2
    every = [refund.id for refund in page.auto_paging_iter()]
    assert every == [refund.id for refund in reversed(created)]


def test_the_sdk_gets_the_saved_refund_when_retrying_with_its_key(
    stripe_sandbox: RunningStripe, sdk: stripe.StripeClient
) -> None:
    """Stripe docs, "Idempotent requests", via the SDK's idempotency_key request option."""
    intent = stripe_sandbox.state.seed_payment_intent(amount=3000, currency="usd")
    params: stripe.RefundCreateParams = {"payment_intent": intent["id"], "amount": 700}
    first = sdk.v1.refunds.create(params=params, options={"idempotency_key": "same"})
    again = sdk.v1.refunds.create(params=params, options={"idempotency_key": "same"})
    assert first.id == again.id
    assert len(stripe_sandbox.state.refunds) == 1
    with pytest.raises(stripe.IdempotencyError):
        sdk.v1.refunds.create(
            params={"payment_intent": intent["id"], "amount": 800},
            options={"idempotency_key": "same"},
        )


def test_the_sdk_raises_its_own_errors_for_sandbox_errors(
    stripe_sandbox: RunningStripe, sdk: stripe.StripeClient
) -> None:
    """Stripe API reference, "Errors": the SDK maps 404 and 429 answers to its exceptions."""
    with pytest.raises(stripe.InvalidRequestError) as missing:
        sdk.v1.refunds.retrieve("re_nope")
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"
    stripe_sandbox.state.rate_limit_next = 1
    with pytest.raises(stripe.RateLimitError):
        sdk.v1.refunds.list()


def test_the_sdk_accepts_the_sandbox_webhooks(
    stripe_sandbox: RunningStripe, sdk: stripe.StripeClient, webhook_capture: Captured
) -> None:
    """Stripe docs, "Check the webhook signatures": Stripe-Signature t=...,v1=HMAC-SHA256 of
    "{t}.{payload}" under the endpoint secret; verified here by the SDK's construct_event."""
    intent = stripe_sandbox.state.seed_payment_intent(amount=3000, currency="usd")
    refund = sdk.v1.refunds.create(params={"payment_intent": intent["id"]})
    wait_for(lambda: len(webhook_capture.deliveries) == 1)
    body, headers = webhook_capture.deliveries[0]
    event = stripe.Webhook.construct_event(
        body, headers["stripe-signature"], SANDBOX_WEBHOOK_SECRET
    )
    assert event.type == "refund.created"
    assert event.data.object["id"] == refund.id
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, headers["stripe-signature"], "whsec_other")
