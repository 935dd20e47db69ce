"""Settings of observability: span export, KPI windows, SLA targets and where alerts go.

They hang under the hub's settings as ``observability``
(``RETAILSYNC_OBSERVABILITY__TRACING__EXPORTER=otlp``,
``RETAILSYNC_OBSERVABILITY__ALERTS__ROUTES__FINANCE__WEBHOOK_URL=https://...``).
:func:`observability_settings` reads them from a hub, falling back to the defaults here.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class Role(StrEnum):
    """Who an alert is for."""

    SERVICE_OPERATIONS = "service_operations"
    FINANCE = "finance"
    INTEGRATION = "integration"


class Measure(StrEnum):
    """A business interval the hub measures from durable events (see ``kpis``)."""

    REFUND_CYCLE = "refund_cycle"
    """Refund requested -> money returned (``refund.completed``)."""
    RETURN_AUTHORIZATION = "return_authorization"
    """Return requested -> RMA recorded in the ERP (``return.authorized``)."""
    STATUS_PROPAGATION = "status_propagation"
    """ERP order status change -> storefront (and the case, when there is one) updated."""
    INVENTORY_SYNC = "inventory_sync"
    """Stock change -> the storefront's stock updated."""
    RETURN_TO_REFUND = "return_to_refund"
    """Returned goods received -> the refund for that return paid out."""


class TracingSettings(BaseModel):
    """OpenTelemetry spans: ``none`` (default), ``console`` or ``otlp``.

    ``otlp`` needs the optional ``opentelemetry-exporter-otlp-proto-http`` package; the
    endpoint defaults to the exporter's own (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
    ``http://localhost:4318``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    exporter: Literal["none", "console", "otlp"] = "none"
    otlp_endpoint: str | None = None
    service_name: str = "retailsync"
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)


class SlaTarget(BaseModel):
    """One promise: an item of ``measure`` ends within ``within``, else ``role`` hears of it.

    ``at_risk_after`` (shorter than ``within``) raises an early warning for items still open.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9_.-]{1,100}$")
    measure: Measure
    within: timedelta
    at_risk_after: timedelta | None = None
    role: Role
    description: str = ""

    @model_validator(mode="after")
    def _warning_before_breach(self) -> Self:
        if self.within <= timedelta(0):
            raise ValueError(f"SLA {self.name}: within must be positive, got {self.within}")
        if self.at_risk_after is not None and not (timedelta(0) < self.at_risk_after < self.within):
            raise ValueError(
                f"SLA {self.name}: at_risk_after ({self.at_risk_after}) must be positive and "
                f"shorter than within ({self.within}), or left out"
            )
        return self


DEFAULT_SLAS: tuple[SlaTarget, ...] = (
    SlaTarget(
        name="refund_completed",
        measure=Measure.REFUND_CYCLE,
        within=timedelta(hours=48),
        at_risk_after=timedelta(hours=36),
        role=Role.FINANCE,
        description="A requested refund is paid out within 48 hours.",
    ),
    SlaTarget(
        name="status_propagated",
        measure=Measure.STATUS_PROPAGATION,
        within=timedelta(minutes=5),
        role=Role.INTEGRATION,
        description="An ERP order status change reaches the storefront and the case in 5 min.",
    ),
    SlaTarget(
        name="return_authorized",
        measure=Measure.RETURN_AUTHORIZATION,
        within=timedelta(minutes=15),
        role=Role.SERVICE_OPERATIONS,
        description="A return request has its RMA in the ERP within 15 minutes.",
    ),
    SlaTarget(
        name="returned_goods_refunded",
        measure=Measure.RETURN_TO_REFUND,
        within=timedelta(hours=72),
        at_risk_after=timedelta(hours=24),
        role=Role.FINANCE,
        description="Returned goods that arrived are refunded within 72 hours.",
    ),
)


class SmtpSettings(BaseModel):
    """The mail server alerts are sent through (plain SMTP, optional STARTTLS and login)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = "retailsync@localhost"
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)


class AlertRoute(BaseModel):
    """Where one role's alerts go: a webhook, e-mail addresses, and/or the log."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook_url: str | None = None
    email_to: tuple[str, ...] = ()
    log: bool = True


class AlertSettings(BaseModel):
    """Alert routing by role, the mail server, and the base of trace links in alerts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    routes: dict[Role, AlertRoute] = Field(
        default_factory=lambda: {role: AlertRoute() for role in Role}
    )
    smtp: SmtpSettings = SmtpSettings()
    trace_base_url: str = "http://127.0.0.1:8000/v1/admin/traces"
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)

    def route_for(self, role: Role) -> AlertRoute:
        """The route of ``role``; a role without one goes to the log only."""
        return self.routes.get(role, AlertRoute())


class KpiSettings(BaseModel):
    """What counts as "propagated" and how far back the loaders look."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status_targets: tuple[str, ...] = ("commerce",)
    """Systems an order status change must reach; ``service_desk`` is added when the order
    has a case."""
    inventory_targets: tuple[str, ...] = ("commerce",)
    erp_source_prefixes: tuple[str, ...] = ("urn:retailsync:erp",)
    """Event sources whose ``order.status_changed`` counts as an ERP change."""
    lookback: timedelta = timedelta(days=14)
    """How far before a window the loader reads start events (intervals that end inside)."""


class ObservabilitySettings(BaseModel):
    """The ``observability`` section of the hub's settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracing: TracingSettings = TracingSettings()
    metrics_enabled: bool = True
    slas: tuple[SlaTarget, ...] = DEFAULT_SLAS
    alerts: AlertSettings = AlertSettings()
    kpis: KpiSettings = KpiSettings()
    monitor_interval_seconds: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _unique_sla_names(self) -> Self:
        names = [sla.name for sla in self.slas]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"SLA names must be unique; repeated: {duplicated}")
        return self


def observability_settings(settings: Any) -> ObservabilitySettings:
    """The observability settings found on the hub's ``settings``, or the defaults."""
    value = getattr(settings, "observability", None)
    return value if isinstance(value, ObservabilitySettings) else ObservabilitySettings()
