"""Settings of the Stripe connector, validated with an error that names the bad key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from retailsync.connectors.stripe.errors import StripeConfigError

#: Stripe refund status -> canonical refund event ("completed", "failed", or "" to ignore).
DEFAULT_REFUND_STATUS_EVENTS: dict[str, str] = {
    "succeeded": "completed",
    "failed": "failed",
    "canceled": "failed",
    "pending": "",
    "requires_action": "",
}

_CANONICAL_REFUND_OUTCOMES = frozenset({"completed", "failed", ""})


class StripeSettings(BaseModel):
    """How to reach one Stripe account and how its refunds become canonical events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr = Field(description="secret (sk_...) or restricted (rk_...) key")
    webhook_secret: SecretStr = Field(description="the endpoint's signing secret (whsec_...)")
    base_url: str = Field(default="https://api.stripe.com", description="API base address")
    api_version: str | None = Field(
        default=None, description="Stripe-Version header; None uses the account's default"
    )
    webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    timeout_seconds: float = Field(default=20.0, gt=0, le=300)
    max_attempts: int = Field(default=4, ge=1, le=20)
    backoff_seconds: float = Field(default=0.5, ge=0, le=60)
    max_retry_after_seconds: float = Field(default=30.0, gt=0)
    page_size: int = Field(default=100, ge=1, le=100)
    order_metadata_key: str = Field(
        default="order_id", min_length=1, description="metadata key holding our order reference"
    )
    refund_status_events: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_REFUND_STATUS_EVENTS)
    )

    @model_validator(mode="after")
    def _check(self) -> StripeSettings:
        key = self.api_key.get_secret_value()
        if not key.startswith(("sk_", "rk_")):
            raise ValueError(
                "api_key must be a secret key (sk_live_/sk_test_) or a restricted key (rk_...);"
                " publishable keys (pk_...) cannot create refunds"
            )
        if not self.webhook_secret.get_secret_value().startswith("whsec_"):
            raise ValueError(
                "webhook_secret must be the endpoint's signing secret starting with 'whsec_' "
                "(Dashboard > Developers > Webhooks > endpoint > Signing secret)"
            )
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url {self.base_url!r} must start with http:// or https://")
        for status, outcome in self.refund_status_events.items():
            if outcome not in _CANONICAL_REFUND_OUTCOMES:
                raise ValueError(
                    f"refund_status_events[{status!r}] = {outcome!r}: use 'completed', "
                    "'failed' or '' (no event)"
                )
        return self


def load_stripe_settings(
    data: Mapping[str, Any], *, prefix: str = "connectors.stripe"
) -> StripeSettings:
    """Validate ``data``; on error raise :class:`StripeConfigError` naming each bad key."""
    try:
        return StripeSettings.model_validate(dict(data))
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item["loc"])
            key = f"{prefix}.{where}" if where else prefix
            problems.append(f"{key}: {item['msg']}")
        raise StripeConfigError("invalid Stripe settings: " + "; ".join(problems)) from None
