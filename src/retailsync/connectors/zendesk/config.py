"""Settings of the Zendesk connector, validated with an error that names the bad key."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from retailsync.connectors.zendesk.errors import ZendeskConfigError
from retailsync.domain.cases import CasePriority, CaseStatus

_SUBDOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

#: Zendesk ticket status -> canonical case status (override per retailer).
DEFAULT_STATUS_MAP: dict[str, CaseStatus] = {
    "new": CaseStatus.NEW,
    "open": CaseStatus.OPEN,
    "pending": CaseStatus.PENDING,
    "hold": CaseStatus.ON_HOLD,
    "solved": CaseStatus.SOLVED,
    "closed": CaseStatus.CLOSED,
}

#: Zendesk ticket priority -> canonical case priority.
DEFAULT_PRIORITY_MAP: dict[str, CasePriority] = {
    "low": CasePriority.LOW,
    "normal": CasePriority.NORMAL,
    "high": CasePriority.HIGH,
    "urgent": CasePriority.URGENT,
}


class ZendeskSettings(BaseModel):
    """How to reach one Zendesk account and how its tickets map to service cases."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subdomain: str | None = Field(
        default=None, description="the <subdomain> of https://<subdomain>.zendesk.com"
    )
    base_url: str | None = Field(
        default=None, description="overrides the subdomain, e.g. a local sandbox URL"
    )
    email: str = Field(min_length=3, description="the API user; auth is '<email>/token'")
    api_token: SecretStr
    webhook_secret: SecretStr = Field(description="the webhook's signing secret")
    webhook_tolerance_seconds: int = Field(default=300, ge=1, le=86_400)
    order_field_id: int | None = Field(
        default=None, ge=1, description="custom ticket field holding the order reference"
    )
    order_tag_prefix: str = Field(default="order_", min_length=1)
    order_reference_system: str | None = Field(
        default=None,
        min_length=1,
        description="the system whose order numbers agents quote (e.g. 'shopify'); when set, "
        "the case's order_id is that system's canonical order id for the reference",
    )
    status_map: dict[str, CaseStatus] = Field(default_factory=lambda: dict(DEFAULT_STATUS_MAP))
    status_out_map: dict[CaseStatus, str] = Field(
        default_factory=dict,
        description="canonical status -> Zendesk status for updates (default: inverse of "
        "status_map, first Zendesk status wins)",
    )
    priority_map: dict[str, CasePriority] = Field(
        default_factory=lambda: dict(DEFAULT_PRIORITY_MAP)
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_seconds: float = Field(default=0.5, ge=0, le=60)
    max_retry_after_seconds: float = Field(default=120.0, gt=0)
    page_size: int = Field(default=100, ge=1, le=100)

    @model_validator(mode="after")
    def _check(self) -> ZendeskSettings:
        if self.base_url is None and self.subdomain is None:
            raise ValueError("set either 'subdomain' (e.g. 'acme') or 'base_url'")
        if self.subdomain is not None and not _SUBDOMAIN.match(self.subdomain):
            raise ValueError(
                f"subdomain {self.subdomain!r} is not a Zendesk subdomain: use the 'acme' "
                "of acme.zendesk.com, lower case, without scheme or dots"
            )
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url {self.base_url!r} must start with http:// or https://")
        for canonical, zendesk in self.status_out_map.items():
            if zendesk not in self.status_map:
                raise ValueError(
                    f"status_out_map[{canonical!r}] = {zendesk!r} is not a Zendesk status "
                    f"listed in status_map ({', '.join(sorted(self.status_map))})"
                )
        return self

    @property
    def api_root(self) -> str:
        """``https://<subdomain>.zendesk.com`` (or ``base_url``), without a trailing slash."""
        if self.base_url is not None:
            return self.base_url.rstrip("/")
        return f"https://{self.subdomain}.zendesk.com"

    def zendesk_status_for(self, canonical_status: CaseStatus) -> str:
        """The Zendesk status to set for a canonical case status."""
        if canonical_status in self.status_out_map:
            return self.status_out_map[canonical_status]
        for zendesk, canonical in self.status_map.items():
            if canonical == canonical_status:
                return zendesk
        raise ZendeskConfigError(
            f"no Zendesk status maps to case status {canonical_status.value!r}: add it to "
            "zendesk.status_out_map or zendesk.status_map"
        )


def load_zendesk_settings(raw: Mapping[str, Any], *, prefix: str = "zendesk") -> ZendeskSettings:
    """Validate ``raw``; raise :class:`ZendeskConfigError` naming every bad key."""
    try:
        return ZendeskSettings.model_validate(dict(raw))
    except ValidationError as exc:
        raise ZendeskConfigError(describe_validation_error(exc, prefix)) from None


def describe_validation_error(exc: ValidationError, prefix: str) -> str:
    """One line per problem: ``<prefix>.<key>: <what is wrong>`` (values never echoed)."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        location = ".".join(str(part) for part in error["loc"])
        key = f"{prefix}.{location}" if location else prefix
        problems.append(f"{key}: {error['msg']}")
    return "invalid connector settings: " + "; ".join(problems)
