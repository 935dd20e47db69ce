"""The SLA monitor: load durable records, find breaches and items at risk, alert once.

``await SlaMonitor(engine, config).run_once()`` is one pass (the CLI and tests);
``run(stop)`` repeats it every ``monitor_interval_seconds`` (the worker). Each pass also
refreshes the KPI gauges for the last 24 hours.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from retailsync.observability import metrics as hub_metrics
from retailsync.observability.alerts import AlertDispatcher, AlertSink
from retailsync.observability.alerts import sinks_for as default_sinks
from retailsync.observability.kpi_source import load_kpi_inputs
from retailsync.observability.kpis import KpiReport, Window, build_intervals, compute_kpis
from retailsync.observability.logging import get_logger
from retailsync.observability.settings import AlertRoute, AlertSettings, ObservabilitySettings
from retailsync.observability.sla import SlaFinding, evaluate_slas

log = get_logger("retailsync.observability.monitor")

KPI_GAUGE_WINDOW = timedelta(hours=24)


@dataclass
class MonitorReport:
    at: datetime
    findings: list[SlaFinding] = field(default_factory=list)
    raised: int = 0
    delivered: int = 0
    failed: list[str] = field(default_factory=list)
    kpis: KpiReport | None = None


class SlaMonitor:
    def __init__(
        self,
        engine: Engine,
        config: ObservabilitySettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sinks: Callable[[AlertRoute, AlertSettings], Sequence[AlertSink]] = default_sinks,
    ) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.dispatcher = AlertDispatcher(engine, config.alerts, sinks=sinks, clock=clock)

    def _lookback(self) -> timedelta:
        longest = max((sla.within for sla in self.config.slas), default=timedelta(0))
        return max(self.config.kpis.lookback, longest * 2)

    async def run_once(self) -> MonitorReport:
        now = self.clock()
        inputs = await asyncio.to_thread(
            load_kpi_inputs,
            self.engine,
            now - KPI_GAUGE_WINDOW,
            now + timedelta(microseconds=1),
            self._lookback(),
        )
        intervals = build_intervals(inputs, self.config.kpis)
        findings = evaluate_slas(intervals, self.config.slas, now)
        report = MonitorReport(at=now, findings=findings)
        dispatched = await self.dispatcher.dispatch(findings)
        report.raised = len(dispatched.raised)
        report.delivered = dispatched.delivered
        report.failed = dispatched.failed
        for alert in dispatched.raised:
            hub_metrics.alert_raised(alert.sla, alert.severity, alert.role.value)
        metrics = hub_metrics.installed_metrics()
        if metrics is not None:
            breaches = Counter(f.sla.name for f in findings if f.severity == "breach")
            at_risk = Counter(f.sla.name for f in findings if f.severity == "at_risk")
            for sla in self.config.slas:
                metrics.sla_breaches.labels(sla.name).set(breaches[sla.name])
                metrics.sla_at_risk.labels(sla.name).set(at_risk[sla.name])
            report.kpis = compute_kpis(
                inputs, Window(now - KPI_GAUGE_WINDOW, now), settings=self.config.kpis
            )
            metrics.publish_kpis(report.kpis)
        return report

    async def run(self, stop: asyncio.Event) -> None:
        """Monitor until ``stop`` is set; a failing pass is logged and the next one runs."""
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("SLA monitor pass failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.monitor_interval_seconds):
                    await stop.wait()
