"""Stripe webhook receiver: SDK-checked signatures, the time window, delivery ids."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
import stripe

from retailsync.connectors.stripe import StripeWebhookReceiver, load_stripe_settings
from retailsync.connectors.webhook_protocol import WebhookRejected, WebhookUnmappable
from retailsync.sandbox.stripe import sign_stripe_payload

SECRET = "whsec_test_secret"
SETTINGS = load_stripe_settings({"api_key": "sk_test_x", "webhook_secret": SECRET})
BODY = json.dumps(
    {
        "id": "evt_123",
        "object": "event",
        "type": "refund.created",
        "created": 1767225600,
        "data": {
            "object": {
                "id": "re_9",
                "object": "refund",
                "amount": 500,
                "currency": "usd",
                "status": "succeeded",
                "metadata": {},
            }
        },
    }
).encode()


def rejected(header: str | None, now: datetime, body: bytes = BODY) -> str:
    headers = {} if header is None else {"Stripe-Signature": header}
    with pytest.raises(WebhookRejected) as raised:
        StripeWebhookReceiver(SETTINGS).verify(headers, body, now)
    return raised.value.reason


def test_a_header_made_by_the_official_sdk_is_accepted() -> None:
    stamp = int(time.time())
    header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), SECRET, stamp)
    receiver = StripeWebhookReceiver(SETTINGS)
    receiver.verify({"stripe-signature": header}, BODY, datetime.fromtimestamp(stamp, UTC))
    assert header == sign_stripe_payload(BODY, SECRET, stamp)  # the sandbox signs alike
    assert receiver.delivery_id({}, BODY) == "evt_123"
    [event] = receiver.to_events({}, BODY)
    assert event.type == "retailsync.refund.completed"


def test_several_v1_signatures_are_accepted_when_one_matches() -> None:
    """Stripe docs, "Check the webhook signatures": during secret rotation a header can carry
    several v1 signatures."""
    stamp = int(time.time())
    good = sign_stripe_payload(BODY, SECRET, stamp).split(",")[1]
    header = f"t={stamp},v1={'0' * 64},{good}"
    StripeWebhookReceiver(SETTINGS).verify(
        {"Stripe-Signature": header}, BODY, datetime.fromtimestamp(stamp, UTC)
    )


def test_rejections_name_their_reason() -> None:
    stamp = int(time.time())
    now = datetime.fromtimestamp(stamp, UTC)
    assert rejected(None, now) == "missing-signature"
    assert rejected("v1=abc", now) == "bad-headers"
    assert rejected(sign_stripe_payload(BODY, "whsec_other", stamp), now) == "bad-signature"
    assert rejected(sign_stripe_payload(BODY + b" ", SECRET, stamp), now) == "bad-signature"
    assert rejected(sign_stripe_payload(BODY, SECRET, stamp - 301), now) == "stale-timestamp"
    assert rejected(sign_stripe_payload(BODY, SECRET, stamp + 301), now) == "stale-timestamp"
    header = sign_stripe_payload(BODY, SECRET, stamp).replace("v1=", "v0=")
    assert rejected(header, now) == "bad-signature"


def test_a_body_that_is_not_a_stripe_event_is_unmappable() -> None:
    receiver = StripeWebhookReceiver(SETTINGS)
    with pytest.raises(WebhookUnmappable):
        receiver.delivery_id({}, b"[]")
    with pytest.raises(WebhookUnmappable):
        receiver.to_events({}, b"not json")
