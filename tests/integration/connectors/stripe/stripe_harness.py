"""Test harness: the Stripe sandbox handle and connector settings pointing at it."""

from __future__ import annotations

from dataclasses import dataclass

from retailsync.connectors.stripe import StripeSettings, load_stripe_settings
from retailsync.sandbox.stripe import SANDBOX_API_KEY, SANDBOX_WEBHOOK_SECRET, StripeSandbox


@dataclass
class RunningStripe:
    """A running Stripe sandbox: its state and base URL, and connector settings for it."""

    state: StripeSandbox
    base_url: str

    def settings(self, **overrides: object) -> StripeSettings:
        values: dict[str, object] = {
            "api_key": SANDBOX_API_KEY,
            "webhook_secret": SANDBOX_WEBHOOK_SECRET,
            "base_url": self.base_url,
            "backoff_seconds": 0.01,
            "timeout_seconds": 5,
        }
        values.update(overrides)
        return load_stripe_settings(values)
