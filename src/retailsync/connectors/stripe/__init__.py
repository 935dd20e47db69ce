"""Stripe: payment state and refunds out (``PaymentsPort``), refund webhooks in.

``config`` (settings), ``client`` (HTTP, auth, idempotency keys, pagination, retries),
``mapping`` (Stripe objects and events -> port records and canonical events, pure),
``inbound`` (the webhook receiver, signatures checked with the official ``stripe`` SDK) and
``outbound`` (the ``PaymentsPort`` adapter). May import ``domain``, ``ports``, ``resilience``.
"""

from retailsync.connectors.stripe.config import StripeSettings, load_stripe_settings
from retailsync.connectors.stripe.inbound import StripeWebhookReceiver
from retailsync.connectors.stripe.outbound import StripePayments

__all__ = ["StripePayments", "StripeSettings", "StripeWebhookReceiver", "load_stripe_settings"]
