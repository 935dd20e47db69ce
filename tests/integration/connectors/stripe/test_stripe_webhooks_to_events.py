"""Stripe sandbox webhooks through the ingress: refund outcomes become canonical events once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from stripe_harness import RunningStripe

from retailsync.connectors.stripe import StripePayments, StripeWebhookReceiver
from retailsync.domain.catalogue import RefundCompleted, RefundFailed, parse_event
from retailsync.domain.money import Money
from retailsync.sandbox.stripe import sign_stripe_payload
from retailsync.testing.ingress import Ingress, running_ingress, wait_for


@pytest.fixture
def ingress(stripe_sandbox: RunningStripe, sqlite_url: str) -> Iterator[Ingress]:
    receiver = StripeWebhookReceiver(stripe_sandbox.settings())
    with running_ingress(sqlite_url, [receiver]) as running:
        stripe_sandbox.state.webhook_url = f"{running.url}/stripe"
        yield running


async def test_a_succeeded_refund_becomes_refund_completed(
    stripe_sandbox: RunningStripe, payments: StripePayments, ingress: Ingress
) -> None:
    """Stripe docs, "Refunds" (refund.created with status succeeded for card refunds) and
    "Webhooks" (signed POST per event)."""
    intent = stripe_sandbox.state.seed_payment_intent(amount=2500, currency="eur")
    refund = await payments.issue_refund(
        payment_ref=intent["id"],
        idempotency_key="wf-9:issue_refund",
        amount=Money.of("12.50", "EUR"),
        refund_id="ref_01JBBBBBBBBBBBBBBBBBBBBBBB",
    )
    wait_for(lambda: len(ingress.publisher.events) == 1)
    [event] = ingress.publisher.events
    payload = parse_event(event)
    assert isinstance(payload, RefundCompleted)
    assert payload.refund_id == "ref_01JBBBBBBBBBBBBBBBBBBBBBBB"
    assert payload.amount == Money.of("12.50", "EUR")
    assert payload.payment_reference == refund.refund_ref
    assert event.id == f"stripe:{refund.refund_ref}:completed"


async def test_a_redelivered_event_produces_one_canonical_event(
    stripe_sandbox: RunningStripe, payments: StripePayments, ingress: Ingress
) -> None:
    """Stripe docs, "Webhooks" (retries): a retry carries the same event id, signed anew."""
    intent = stripe_sandbox.state.seed_payment_intent(amount=2500, currency="eur")
    await payments.issue_refund(payment_ref=intent["id"], idempotency_key="wf-10:refund")
    wait_for(lambda: len(stripe_sandbox.state.deliveries) == 1)
    event_id = stripe_sandbox.state.deliveries[0].event_id
    async with httpx.AsyncClient(base_url=stripe_sandbox.base_url) as control:
        resent = await control.post(f"/_sandbox/webhooks/{event_id}/resend")
    assert resent.json()["status"] == 200
    assert [d.attempt for d in stripe_sandbox.state.deliveries] == [1, 2]
    assert len(ingress.publisher.events) == 1
    assert [row.status for row in ingress.deliveries()] == ["published"]


async def test_a_refund_that_fails_later_becomes_refund_failed(
    stripe_sandbox: RunningStripe, payments: StripePayments, ingress: Ingress
) -> None:
    """Stripe docs, "Refunds > Failed refunds": a refund can fail after creation; Stripe
    sends refund.failed and refund.updated with failure_reason (one canonical event here)."""
    intent = stripe_sandbox.state.seed_payment_intent(
        amount=2500, currency="eur", refund_behaviour="fail"
    )
    await payments.issue_refund(payment_ref=intent["id"], idempotency_key="wf-11:refund")
    wait_for(lambda: len(stripe_sandbox.state.deliveries) == 3)
    assert [d.event_type for d in stripe_sandbox.state.deliveries] == [
        "refund.created",
        "refund.failed",
        "refund.updated",
    ]
    # refund.created was pending (no event); refund.failed and refund.updated describe the same
    # change and map to the same event id, which the bus stores once.
    assert len({e.id for e in ingress.publisher.events}) == 1
    event = ingress.publisher.events[0]
    payload = parse_event(event)
    assert isinstance(payload, RefundFailed)
    assert "declined" in payload.reason and payload.retryable is False


async def test_a_pending_refund_settled_later_completes(
    stripe_sandbox: RunningStripe, payments: StripePayments, ingress: Ingress
) -> None:
    """Stripe docs, "Refunds": some refunds stay pending, then refund.updated (succeeded)."""
    intent = stripe_sandbox.state.seed_payment_intent(
        amount=2500, currency="eur", refund_behaviour="pending"
    )
    refund = await payments.issue_refund(payment_ref=intent["id"], idempotency_key="wf-12:r")
    assert refund.status.value == "pending"
    wait_for(lambda: len(stripe_sandbox.state.deliveries) == 1)
    assert ingress.publisher.events == []
    async with httpx.AsyncClient(base_url=stripe_sandbox.base_url) as control:
        settled = await control.post(
            f"/_sandbox/refunds/{refund.refund_ref}/settle", json={"status": "succeeded"}
        )
    assert settled.json()["status"] == "succeeded"
    [event] = ingress.publisher.events
    assert event.type == "retailsync.refund.completed"


async def test_forged_and_stale_replays_of_a_real_delivery_are_rejected(
    stripe_sandbox: RunningStripe, payments: StripePayments, ingress: Ingress
) -> None:
    """Stripe docs, "Webhooks > Prevent replay attacks": the signed timestamp bounds replays
    (default tolerance five minutes); a changed body breaks the signature."""
    intent = stripe_sandbox.state.seed_payment_intent(amount=2500, currency="eur")
    await payments.issue_refund(payment_ref=intent["id"], idempotency_key="wf-13:refund")
    wait_for(lambda: len(stripe_sandbox.state.deliveries) == 1)  # recorded after the answer
    assert len(ingress.publisher.events) == 1
    event = stripe_sandbox.state.events[stripe_sandbox.state.deliveries[0].event_id]
    body, headers = stripe_sandbox.state.signed_delivery(event)
    tampered = body.replace(b'"amount": 2500', b'"amount": 250000')
    old = int(time.time()) - 600
    stale_headers = {**headers, "Stripe-Signature": sign_stripe_payload(body, "whsec_sandbox", old)}
    async with httpx.AsyncClient(base_url=ingress.url) as vendor:
        forged = await vendor.post("/stripe", content=tampered, headers=headers)
        stale = await vendor.post("/stripe", content=body, headers=stale_headers)
    assert forged.status_code == 401
    assert stale.status_code == 400
    assert [r.reason for r in ingress.rejections()] == ["bad-signature", "stale-timestamp"]
    assert len(ingress.publisher.events) == 1
    assert json.loads(body)["id"] == ingress.deliveries()[0].delivery_id
