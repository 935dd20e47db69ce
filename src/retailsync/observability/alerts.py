"""SLA alerts: routed by role to a webhook, e-mail and the log, each sent once per breach.

:class:`AlertDispatcher` first claims the alert in ``alerts_sent`` (unique on SLA, item and
breach window), then delivers it to every sink of the role's route and records which sinks
took it. A sink that fails leaves the alert ``pending``; the next run sends it again to
that sink only, so a working sink never gets a second copy.
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from retailsync.observability.errors import AlertDeliveryFailed
from retailsync.observability.logging import get_logger
from retailsync.observability.settings import AlertRoute, AlertSettings, Role, SmtpSettings
from retailsync.observability.sla import SlaFinding
from retailsync.observability.tables import alerts_sent

log = get_logger("retailsync.observability.alerts")


@dataclass(frozen=True, slots=True)
class Alert:
    """What a person needs to act: which promise, which item, how late, and the trace."""

    sla: str
    item: str
    severity: str
    role: Role
    breach_window: str
    message: str
    trace_url: str
    started_at: datetime
    due_at: datetime
    age_seconds: float
    correlation_id: str | None = None
    order_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "sla": self.sla,
            "item": self.item,
            "severity": self.severity,
            "role": self.role.value,
            "message": self.message,
            "trace_url": self.trace_url,
            "started_at": self.started_at.isoformat(),
            "due_at": self.due_at.isoformat(),
            "age_seconds": self.age_seconds,
            "correlation_id": self.correlation_id,
            "order_id": self.order_id,
        }


def trace_url(base: str, finding: SlaFinding) -> str:
    """The trace explorer link for the finding's order, else its correlation id."""
    item = finding.interval
    if item.order_id:
        query = {"order": item.order_id}
    elif item.correlation_id:
        query = {"correlation_id": item.correlation_id}
    else:
        query = {"case": item.case_id or item.key}
    return f"{base}?{urlencode(query)}"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def alert_for(finding: SlaFinding, settings: AlertSettings) -> Alert:
    sla = finding.sla
    age = finding.age.total_seconds()
    if finding.severity == "breach":
        message = (
            f"SLA {sla.name} breached: {finding.item} took {_hours(age)} "
            f"(target {_hours(sla.within.total_seconds())})"
        )
    else:
        message = (
            f"SLA {sla.name} at risk: {finding.item} open for {_hours(age)} "
            f"(target {_hours(sla.within.total_seconds())})"
        )
    if sla.description:
        message += f". {sla.description}"
    return Alert(
        sla=sla.name,
        item=finding.item,
        severity=finding.severity.value,
        role=sla.role,
        breach_window=finding.breach_window,
        message=message,
        trace_url=trace_url(settings.trace_base_url, finding),
        started_at=finding.interval.started_at,
        due_at=finding.due_at,
        age_seconds=round(age, 3),
        correlation_id=finding.interval.correlation_id,
        order_id=finding.interval.order_id,
    )


# --------------------------------------------------------------------------------------------
# Sinks
# --------------------------------------------------------------------------------------------


class AlertSink(Protocol):
    """Delivers one alert; raises :class:`AlertDeliveryFailed` when it could not."""

    @property
    def name(self) -> str: ...

    async def send(self, alert: Alert) -> None: ...


@dataclass(frozen=True)
class WebhookSink:
    """POSTs the alert as JSON; any 2xx is delivered."""

    url: str
    timeout_seconds: float = 10.0

    @property
    def name(self) -> str:
        return f"webhook:{self.url}"

    async def send(self, alert: Alert) -> None:
        try:
            async with httpx.AsyncClient(timeout=self.timeout_seconds) as client:
                response = await client.post(self.url, json=alert.to_json())
        except httpx.HTTPError as exc:
            raise AlertDeliveryFailed(self.name, f"{type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise AlertDeliveryFailed(self.name, f"HTTP {response.status_code}")


@dataclass(frozen=True)
class EmailSink:
    """Sends the alert as a plain-text e-mail through the configured SMTP server."""

    smtp: SmtpSettings
    to: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"email:{','.join(self.to)}"

    def _message(self, alert: Alert) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = f"[retailsync] {alert.message.split('. ')[0]}"
        message["From"] = self.smtp.sender
        message["To"] = ", ".join(self.to)
        message.set_content(
            f"{alert.message}\n\nRole: {alert.role.value}\nItem: {alert.item}\n"
            f"Started: {alert.started_at.isoformat()}\nDue: {alert.due_at.isoformat()}\n"
            f"Trace: {alert.trace_url}\n"
        )
        return message

    def _send(self, alert: Alert) -> None:
        with smtplib.SMTP(
            self.smtp.host, self.smtp.port, timeout=self.smtp.timeout_seconds
        ) as server:
            if self.smtp.starttls:
                server.starttls()
            if self.smtp.username and self.smtp.password is not None:
                server.login(self.smtp.username, self.smtp.password.get_secret_value())
            server.send_message(self._message(alert))

    async def send(self, alert: Alert) -> None:
        try:
            await asyncio.to_thread(self._send, alert)
        except (OSError, smtplib.SMTPException) as exc:
            raise AlertDeliveryFailed(self.name, f"{type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class LogSink:
    """Writes the alert to the structured log (warning level)."""

    @property
    def name(self) -> str:
        return "log"

    async def send(self, alert: Alert) -> None:
        log.warning("sla alert", **alert.to_json())


def sinks_for(route: AlertRoute, settings: AlertSettings) -> list[AlertSink]:
    """The sinks one role's route names."""
    sinks: list[AlertSink] = []
    if route.webhook_url:
        sinks.append(WebhookSink(route.webhook_url, settings.webhook_timeout_seconds))
    if route.email_to:
        sinks.append(EmailSink(settings.smtp, route.email_to))
    if route.log:
        sinks.append(LogSink())
    return sinks


# --------------------------------------------------------------------------------------------
# Dispatch, once per breach
# --------------------------------------------------------------------------------------------


@dataclass
class DispatchReport:
    raised: list[Alert] = field(default_factory=list)
    """Alerts claimed for the first time in this run."""
    delivered: int = 0
    failed: list[str] = field(default_factory=list)
    """``"<sla>/<item> -> <sink>: <reason>"`` for each sink that failed."""


def _insert(connection: Connection) -> Any:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(alerts_sent)
    return sqlite.insert(alerts_sent)


class AlertDispatcher:
    """Claims, routes and delivers alerts; the claim row makes each alert happen once."""

    def __init__(
        self,
        engine: Engine,
        settings: AlertSettings,
        *,
        sinks: Callable[[AlertRoute, AlertSettings], Sequence[AlertSink]] = sinks_for,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.settings = settings
        self._sinks = sinks
        self._clock = clock

    def _claim(self, alert: Alert) -> int | None:
        sink_names = [
            sink.name for sink in self._sinks(self.settings.route_for(alert.role), self.settings)
        ]
        with self.engine.begin() as connection:
            statement = (
                _insert(connection)
                .values(
                    sla=alert.sla,
                    item=alert.item,
                    breach_window=alert.breach_window,
                    severity=alert.severity,
                    role=alert.role.value,
                    status="pending",
                    correlation_id=alert.correlation_id,
                    trace_url=alert.trace_url,
                    message=alert.message,
                    payload=alert.to_json(),
                    sinks={name: "pending" for name in sink_names},
                    raised_at=self._clock(),
                )
                .on_conflict_do_nothing(index_elements=["sla", "item", "breach_window"])
                .returning(alerts_sent.c.id)
            )
            claimed = connection.execute(statement).scalar_one_or_none()
        return None if claimed is None else int(claimed)

    async def dispatch(self, findings: Sequence[SlaFinding]) -> DispatchReport:
        """Raise an alert for each new finding, and resend pending ones."""
        report = DispatchReport()
        for finding in findings:
            alert = alert_for(finding, self.settings)
            claimed = await asyncio.to_thread(self._claim, alert)
            if claimed is not None:
                report.raised.append(alert)
        await self.deliver_pending(report)
        return report

    async def deliver_pending(self, report: DispatchReport | None = None) -> DispatchReport:
        """Deliver every pending alert to the sinks that have not taken it yet."""
        report = report or DispatchReport()
        pending = await asyncio.to_thread(self._pending)
        for row in pending:
            alert = _alert_of(row)
            statuses: dict[str, str] = dict(row["sinks"] or {})
            for sink in self._sinks(self.settings.route_for(alert.role), self.settings):
                if statuses.get(sink.name) == "delivered":
                    continue
                try:
                    await sink.send(alert)
                except AlertDeliveryFailed as exc:
                    statuses[sink.name] = f"failed: {exc.reason}"
                    report.failed.append(f"{alert.sla}/{alert.item} -> {sink.name}: {exc.reason}")
                    log.warning(
                        "alert delivery failed", sink=sink.name, sla=alert.sla, reason=exc.reason
                    )
                else:
                    statuses[sink.name] = "delivered"
                    report.delivered += 1
            done = all(value == "delivered" for value in statuses.values())
            await asyncio.to_thread(self._update, int(row["id"]), statuses, done)
        return report

    def _pending(self) -> list[sa.RowMapping]:
        with self.engine.connect() as connection:
            return list(
                connection.execute(
                    sa.select(alerts_sent)
                    .where(alerts_sent.c.status == "pending")
                    .order_by(alerts_sent.c.id)
                ).mappings()
            )

    def _update(self, alert_id: int, statuses: dict[str, str], done: bool) -> None:
        failures = [f"{name}: {value}" for name, value in statuses.items() if value != "delivered"]
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(alerts_sent)
                .where(alerts_sent.c.id == alert_id)
                .values(
                    sinks=statuses,
                    status="delivered" if done else "pending",
                    delivered_at=self._clock() if done else None,
                    error="; ".join(failures) or None,
                )
            )


def _alert_of(row: sa.RowMapping) -> Alert:
    payload = dict(row["payload"])
    return Alert(
        sla=row["sla"],
        item=row["item"],
        severity=row["severity"],
        role=Role(row["role"]),
        breach_window=row["breach_window"],
        message=row["message"],
        trace_url=row["trace_url"],
        started_at=datetime.fromisoformat(payload["started_at"]),
        due_at=datetime.fromisoformat(payload["due_at"]),
        age_seconds=float(payload["age_seconds"]),
        correlation_id=row["correlation_id"],
        order_id=payload.get("order_id"),
    )
