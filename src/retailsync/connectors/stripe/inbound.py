"""Stripe webhooks in: the official SDK checks ``Stripe-Signature``, refunds become events.

Stripe signs ``"{t}.{raw body}"`` with HMAC-SHA256 under the endpoint secret and sends
``Stripe-Signature: t=<unix time>,v1=<hex digest>[,v1=...]``. The signature is checked with
``stripe.WebhookSignature.verify_header`` (the SDK Stripe maintains); the timestamp window is
checked here against the ingress clock so that it can be tested and so a timestamp from the
future is refused as well. Stripe's event id (``evt_...``) is the delivery id: Stripe sends the
same event id on every retry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import stripe

from retailsync.connectors.stripe.config import StripeSettings
from retailsync.connectors.stripe.errors import StripePayloadError
from retailsync.connectors.stripe.mapping import refund_events
from retailsync.connectors.webhook_protocol import WebhookRejected, WebhookUnmappable
from retailsync.domain.events import CloudEvent

SIGNATURE_HEADER = "Stripe-Signature"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


def signature_timestamp(header: str) -> int:
    """The ``t=`` element of a ``Stripe-Signature`` header; ValueError when absent."""
    for element in header.split(","):
        key, _, value = element.strip().partition("=")
        if key == "t":
            return int(value)
    raise ValueError("no t= element")


class StripeWebhookReceiver:
    """The :class:`~retailsync.connectors.webhook_protocol.WebhookReceiver` for Stripe."""

    name = "stripe"

    def __init__(self, settings: StripeSettings) -> None:
        self._settings = settings

    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        header = _header(headers, SIGNATURE_HEADER)
        if not header:
            raise WebhookRejected(
                "missing-signature",
                f"the {SIGNATURE_HEADER} header is missing; Stripe signs every delivery",
                401,
            )
        try:
            timestamp = signature_timestamp(header)
        except ValueError:
            raise WebhookRejected(
                "bad-headers",
                f"the {SIGNATURE_HEADER} header has no valid t=<unix time> element",
                400,
            ) from None
        try:
            # tolerance=None: the SDK checks only the HMAC; the window is checked below.
            stripe.WebhookSignature.verify_header(
                body, header, self._settings.webhook_secret.get_secret_value(), tolerance=None
            )
        except stripe.SignatureVerificationError as error:
            raise WebhookRejected(
                "bad-signature",
                f"the {SIGNATURE_HEADER} signature does not match the body and the endpoint "
                f"secret ({error.user_message or error}); check connectors.stripe.webhook_secret",
                401,
            ) from None
        except UnicodeDecodeError:
            raise WebhookRejected("bad-signature", "the body is not UTF-8 text", 401) from None
        age = now.timestamp() - timestamp
        tolerance = self._settings.webhook_tolerance_seconds
        if abs(age) > tolerance:
            direction = "old" if age > 0 else "in the future"
            raise WebhookRejected(
                "stale-timestamp",
                f"the signed timestamp t={timestamp} is {abs(int(age))} s {direction}; "
                f"deliveries are accepted within {tolerance} s (a replay, or a clock out of sync)",
                400,
            )

    def delivery_id(self, headers: Mapping[str, str], body: bytes) -> str:
        event_id = self._event(body).get("id")
        if not isinstance(event_id, str) or not event_id:
            raise WebhookUnmappable("the Stripe event has no 'id'")
        return event_id

    def to_events(self, headers: Mapping[str, str], body: bytes) -> list[CloudEvent]:
        event = self._event(body)
        try:
            return refund_events(event, status_events=self._settings.refund_status_events)
        except StripePayloadError as error:
            raise WebhookUnmappable(str(error)) from error

    @staticmethod
    def _event(body: bytes) -> dict[str, Any]:
        try:
            event = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise WebhookUnmappable(f"the body is not JSON: {error}") from error
        if not isinstance(event, dict) or event.get("object") != "event":
            raise WebhookUnmappable("the body is not a Stripe event (object != 'event')")
        return event
