"""Settings of the Shopify connector, validated with an error that names the bad key.

The mapping tables are data: a retailer overrides one entry (for example which financial
status counts as ``confirmed``) in its configuration without touching code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from retailsync.connectors.shopify.errors import ShopifyConfigError
from retailsync.domain.orders import OrderStatus
from retailsync.domain.returns import ReturnReason

_SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
_API_VERSION = re.compile(r"^(20[0-9]{2}-(01|04|07|10)|unstable)$")

#: Shopify order ``financial_status`` -> canonical order status (when not fulfilled/cancelled).
DEFAULT_FINANCIAL_STATUS_MAP: dict[str, str] = {
    "pending": "pending",
    "authorized": "confirmed",
    "partially_paid": "confirmed",
    "paid": "confirmed",
    "partially_refunded": "confirmed",
    "refunded": "confirmed",
    "voided": "cancelled",
}

#: Shopify order ``fulfillment_status`` -> canonical order status (wins over financial status).
DEFAULT_FULFILLMENT_STATUS_MAP: dict[str, str] = {
    "partial": "partially_shipped",
    "fulfilled": "shipped",
}

#: Shopify return line ``return_reason`` -> canonical return reason.
DEFAULT_RETURN_REASON_MAP: dict[str, str] = {
    "color": "changed_mind",
    "defective": "damaged",
    "not_as_described": "not_as_described",
    "other": "other",
    "size_too_large": "changed_mind",
    "size_too_small": "changed_mind",
    "style": "changed_mind",
    "unknown": "other",
    "unwanted": "changed_mind",
    "wrong_item": "wrong_item",
}


class ShopifySettings(BaseModel):
    """How to reach one Shopify shop and how its payloads map to the canonical model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shop_domain: str = Field(description="e.g. acme.myshopify.com")
    access_token: SecretStr = Field(description="Admin API access token (shpat_...)")
    webhook_secret: SecretStr = Field(description="the app's client secret (signs webhooks)")
    base_url: str | None = Field(
        default=None, description="overrides https://<shop_domain>, e.g. a local sandbox URL"
    )
    api_version: str = Field(default="2024-10", description="Admin API version, YYYY-MM")
    channel: str = Field(default="shopify", min_length=1, max_length=200)
    webhook_tolerance_seconds: int = Field(
        default=48 * 3600,
        ge=60,
        le=7 * 86_400,
        description="maximum age of X-Shopify-Triggered-At; Shopify keeps the original time on "
        "retries and retries for up to 48 hours",
    )
    timeout_seconds: float = Field(default=20.0, gt=0, le=300)
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_seconds: float = Field(default=0.5, ge=0, le=60)
    max_retry_after_seconds: float = Field(default=30.0, gt=0)
    page_size: int = Field(default=50, ge=1, le=250)
    notify_customer_on_fulfillment: bool = Field(
        default=True,
        description="let Shopify email the shipping confirmation when the hub fulfils an order",
    )
    financial_status_map: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_FINANCIAL_STATUS_MAP)
    )
    fulfillment_status_map: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_FULFILLMENT_STATUS_MAP)
    )
    return_reason_map: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_RETURN_REASON_MAP)
    )

    @property
    def api_base(self) -> str:
        """``https://<shop>/admin/api/<version>`` (or the same under ``base_url``)."""
        root = (self.base_url or f"https://{self.shop_domain}").rstrip("/")
        return f"{root}/admin/api/{self.api_version}"

    @model_validator(mode="after")
    def _check(self) -> ShopifySettings:
        if not _SHOP_DOMAIN.match(self.shop_domain):
            raise ValueError(
                f"shop_domain {self.shop_domain!r} must be the shop's permanent domain, "
                "e.g. 'acme.myshopify.com' (no scheme, no path)"
            )
        if not _API_VERSION.match(self.api_version):
            raise ValueError(
                f"api_version {self.api_version!r} must be a Shopify release such as '2024-10'"
            )
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url {self.base_url!r} must start with http:// or https://")
        statuses = {status.value for status in OrderStatus}
        for key, table in (
            ("financial_status_map", self.financial_status_map),
            ("fulfillment_status_map", self.fulfillment_status_map),
        ):
            for shopify, canonical in table.items():
                if canonical not in statuses:
                    raise ValueError(
                        f"{key}[{shopify!r}] = {canonical!r} is not an order status; use one "
                        f"of {', '.join(sorted(statuses))}"
                    )
        reasons = {reason.value for reason in ReturnReason}
        for shopify, canonical in self.return_reason_map.items():
            if canonical not in reasons:
                raise ValueError(
                    f"return_reason_map[{shopify!r}] = {canonical!r} is not a return reason; "
                    f"use one of {', '.join(sorted(reasons))}"
                )
        return self


def load_shopify_settings(
    data: Mapping[str, Any], *, prefix: str = "connectors.shopify"
) -> ShopifySettings:
    """Validate ``data``; on error raise :class:`ShopifyConfigError` naming each bad key."""
    try:
        return ShopifySettings.model_validate(dict(data))
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item["loc"])
            key = f"{prefix}.{where}" if where else prefix
            problems.append(f"{key}: {item['msg']}")
        raise ShopifyConfigError("invalid Shopify settings: " + "; ".join(problems)) from None
