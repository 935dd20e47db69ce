"""Errors of the Stripe connector, each saying what went wrong and what to do.

Failures of calls to Stripe are the resilience layer's classes
(:class:`~retailsync.resilience.errors.TransientError` to retry,
:class:`~retailsync.resilience.errors.BusinessError` for people), carrying Stripe's own error
``type``/``code``/``param`` in ``details``; the classes here are what only Stripe can say.
"""

from __future__ import annotations

from retailsync.resilience.errors import BusinessError, ConflictRejected


class StripeConfigError(ValueError):
    """The connector settings are invalid; the message names the bad key."""


class StripeIdempotencyMismatch(ConflictRejected):
    """An idempotency key was reused with different parameters (Stripe ``idempotency_error``).

    The workflow step derived the same key for a different refund: fix the key derivation
    (one key per step and attempt of the business action), never retry with a new random key.
    """

    code = "idempotency-mismatch"


class StripeAuthenticationFailed(BusinessError):
    """Stripe refused the API key (HTTP 401): check ``connectors.stripe.api_key``."""

    code = "authentication"


class StripePayloadError(ValueError):
    """A Stripe object or event lacks a field the mapping needs."""
