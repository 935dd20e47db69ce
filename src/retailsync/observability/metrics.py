"""The hub's Prometheus series, on one registry, and the hooks every layer calls.

Counters and histograms are updated in-process by the hooks below (``event_ingested``,
``outbound_call`` ...), which do nothing until :func:`install_metrics` ran, so the hot paths
pay one ``None`` check when metrics are off. Gauges that describe durable state (consumer
lag, exception-queue depth) are read from SQL at scrape time by :class:`DurableStateCollector`,
so every process reports the same truth. Circuit-breaker state comes from
:mod:`retailsync.resilience.metrics` registered on the same registry (``register_metrics(
downstreams, hub_metrics.registry)``).

Series (all prefixed ``retailsync_``):

- ``api_request_duration_seconds{method,route}``, ``api_requests_total{method,route,status}``,
  ``api_request_errors_total{method,route,status}`` (status >= 400)
- ``events_ingested_total{type}``, ``events_delivered_total{type,subscriber}``,
  ``events_dead_lettered_total{type,subscriber}``, ``event_handling_duration_seconds{subscriber}``
- ``consumer_lag_events{subscriber}`` (SQL bus: stored events past the subscriber's cursors)
- ``workflows_started_total{workflow}``, ``workflows_completed_total{workflow,outcome}``,
  ``workflows_failed_total{workflow}``, ``workflow_step_duration_seconds{step,status}``
- ``outbound_call_duration_seconds{system}``, ``outbound_call_errors_total{system,outcome}``
- ``exception_queue_depth{status,system}``
- ``sla_breaches{sla}``, ``sla_at_risk{sla}``, ``alerts_raised_total{sla,severity,role}``
- ``kpi_duration_seconds{measure,quantile}``, ``kpi_open_items{measure}``,
  ``kpi_case_to_erp_sync_rate``, ``kpi_exceptions{state}``, ``kpi_reconciliation_drift{job}``
  (the last full KPI window the monitor computed)
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import accumulate
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString as _untyped_float_to_go_string
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retailsync.domain.events import CloudEvent

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from retailsync.observability.kpis import KpiReport

_bucket_label = cast("Callable[[float], str]", _untyped_float_to_go_string)
"""A bucket bound as Prometheus writes it in ``le`` (``0.005``, ``1.0``)."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STEP_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0)


class HubMetrics:
    """Every series the hub defines, registered on ``registry`` (a fresh one by default)."""

    def __init__(
        self, registry: CollectorRegistry | None = None, engine: Engine | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.api_duration = Histogram(
            "retailsync_api_request_duration_seconds",
            "API request latency by route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.api_requests = Counter(
            "retailsync_api_requests",
            "API requests by route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.api_errors = Counter(
            "retailsync_api_request_errors",
            "API answers with status >= 400 by route",
            ["method", "route", "status"],
            registry=r,
        )
        self.events = EventSeries()
        """``events_ingested_total``, ``events_delivered_total`` and
        ``event_handling_duration_seconds``: counted per event, so kept the cheap way."""
        r.register(self.events)
        self.events_dead_lettered = Counter(
            "retailsync_events_dead_lettered",
            "Events moved to the exception queue",
            ["type", "subscriber"],
            registry=r,
        )
        self.workflows_started = Counter(
            "retailsync_workflows_started", "Workflows started, by type", ["workflow"], registry=r
        )
        self.workflows_completed = Counter(
            "retailsync_workflows_completed",
            "Workflows that reached an end state, by outcome",
            ["workflow", "outcome"],
            registry=r,
        )
        self.workflows_failed = Counter(
            "retailsync_workflows_failed",
            "Workflows that ended in a failure",
            ["workflow"],
            registry=r,
        )
        self.step_duration = Histogram(
            "retailsync_workflow_step_duration_seconds",
            "Workflow step duration incl. retries",
            ["step", "status"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.outbound_duration = Histogram(
            "retailsync_outbound_call_duration_seconds",
            "Outbound call latency by system",
            ["system"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.outbound_errors = Counter(
            "retailsync_outbound_call_errors",
            "Failed outbound calls by system and outcome",
            ["system", "outcome"],
            registry=r,
        )
        self.sla_breaches = Gauge(
            "retailsync_sla_breaches",
            "Items in breach of an SLA at the last monitor run",
            ["sla"],
            registry=r,
        )
        self.sla_at_risk = Gauge(
            "retailsync_sla_at_risk",
            "Open items at risk of breaching an SLA",
            ["sla"],
            registry=r,
        )
        self.alerts_raised = Counter(
            "retailsync_alerts_raised",
            "SLA alerts raised (once per breach)",
            ["sla", "severity", "role"],
            registry=r,
        )
        self.kpi_duration = Gauge(
            "retailsync_kpi_duration_seconds",
            "Business interval percentiles (nearest rank) over the last KPI window",
            ["measure", "quantile"],
            registry=r,
        )
        self.kpi_open = Gauge(
            "retailsync_kpi_open_items",
            "Business items still open at the end of the window",
            ["measure"],
            registry=r,
        )
        self.kpi_completed = Gauge(
            "retailsync_kpi_completed_items",
            "Business items completed in the window",
            ["measure"],
            registry=r,
        )
        self.kpi_sync_rate = Gauge(
            "retailsync_kpi_case_to_erp_sync_rate",
            "Share of case-to-ERP syncs that succeeded in the window",
            registry=r,
        )
        self.kpi_exceptions = Gauge(
            "retailsync_kpi_exceptions",
            "Manual interventions in the window: opened, resolved, open_at_end",
            ["state"],
            registry=r,
        )
        self.kpi_drift = Gauge(
            "retailsync_kpi_reconciliation_drift",
            "Drift found by reconciliation in the window",
            ["job"],
            registry=r,
        )
        self._outbound: dict[str, Any] = {}
        self.durable: DurableStateCollector | None = None
        if engine is not None:
            self.durable = DurableStateCollector(engine)
            r.register(self.durable)

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)

    def publish_kpis(self, report: KpiReport) -> None:
        """Set the KPI gauges from one report (the monitor calls this each run)."""
        for measure, summary in report.overall.durations.items():
            for quantile, value in (("0.5", summary.p50_seconds), ("0.9", summary.p90_seconds)):
                if value is not None:
                    self.kpi_duration.labels(measure.value, quantile).set(value)
            self.kpi_open.labels(measure.value).set(summary.open)
            self.kpi_completed.labels(measure.value).set(summary.completed)
        rate = report.overall.case_sync.value
        if rate is not None:
            self.kpi_sync_rate.set(rate)
        volume = report.manual_intervention
        self.kpi_exceptions.labels("opened").set(volume.opened)
        self.kpi_exceptions.labels("resolved").set(volume.resolved)
        self.kpi_exceptions.labels("open_at_end").set(volume.open_at_end)
        for job, count in report.reconciliation_drift.items():
            self.kpi_drift.labels(job).set(count)


class EventSeries(Collector):
    """The per-event series, counted in plain Python and rendered when the registry is read.

    ``events_ingested_total{type}``, ``events_delivered_total{type,subscriber}`` and
    ``event_handling_duration_seconds{subscriber}`` change once per event published or
    handled: through ``prometheus_client``'s children that is a lock and a few calls per
    sample (a histogram: two locks and a walk through its buckets), a sizeable share of an
    event's cost in the bus. Here one event is a dict update and a bucket found by bisection
    under one lock; a scrape (or ``registry.get_sample_value``) reads the totals. The
    exposition is the same: the counters with their ``_created``, the histogram with its
    cumulative ``le`` buckets, ``_count`` and ``_sum``.
    """

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self._lock = threading.Lock()
        self._bounds = tuple(sorted(buckets))
        self._ingested: dict[str, float] = {}
        self._delivered: dict[tuple[str, str], _Delivered] = {}
        self._durations: dict[str, _Durations] = {}
        self._created: dict[str, float] = {}

    def ingested(self, counts: Mapping[str, int]) -> None:
        """``counts[type]`` events of that type stored now."""
        with self._lock:
            totals = self._ingested
            for event_type, count in counts.items():
                total = totals.get(event_type)
                if total is None:
                    total = 0.0
                    self._created[event_type] = time.time()
                totals[event_type] = total + count

    def delivered(self, event_type: str, subscriber: str, seconds: float | None) -> None:
        """One event handled by ``subscriber`` in ``seconds`` (None: not timed)."""
        with self._lock:
            tally = self._delivered.get((event_type, subscriber))
            if tally is None:
                tally = self._first_delivery(event_type, subscriber)
            tally.count += 1
            if seconds is not None:
                durations = tally.durations
                durations.counts[bisect_left(self._bounds, seconds)] += 1
                durations.total += seconds

    def _first_delivery(self, event_type: str, subscriber: str) -> _Delivered:
        durations = self._durations.get(subscriber)
        if durations is None:
            durations = self._durations[subscriber] = _Durations(len(self._bounds))
        tally = self._delivered[(event_type, subscriber)] = _Delivered(durations)
        return tally

    def describe(self) -> Iterator[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            ingested = {
                event_type: (count, self._created[event_type])
                for event_type, count in self._ingested.items()
            }
            delivered = {key: (d.count, d.created) for key, d in self._delivered.items()}
            durations = {
                subscriber: (list(d.counts), d.total) for subscriber, d in self._durations.items()
            }
        return self._families(ingested, delivered, durations)

    def _families(
        self,
        ingested: Mapping[str, tuple[float, float]] | None = None,
        delivered: Mapping[tuple[str, str], tuple[float, float]] | None = None,
        durations: Mapping[str, tuple[list[int], float]] | None = None,
    ) -> Iterator[Metric]:
        """The three families; a count comes with when its series was created."""
        ingested_family = CounterMetricFamily(
            "retailsync_events_ingested", "Canonical events stored, by type", labels=["type"]
        )
        for event_type, (count, created) in (ingested or {}).items():
            ingested_family.add_metric([event_type], count, created=created)
        yield ingested_family
        delivered_family = CounterMetricFamily(
            "retailsync_events_delivered",
            "Events a subscriber handled successfully",
            labels=["type", "subscriber"],
        )
        for key, (count, created) in (delivered or {}).items():
            delivered_family.add_metric(list(key), count, created=created)
        yield delivered_family
        duration_family = HistogramMetricFamily(
            "retailsync_event_handling_duration_seconds",
            "Time a handler took per event",
            labels=["subscriber"],
        )
        limits = [_bucket_label(bound) for bound in self._bounds] + ["+Inf"]
        for subscriber, (counts, total) in (durations or {}).items():
            cumulative = list(accumulate(counts))
            duration_family.add_metric(
                [subscriber], list(zip(limits, cumulative, strict=True)), total
            )
        yield duration_family


class _Delivered:
    """The deliveries of one (type, subscriber), and its subscriber's handling times."""

    __slots__ = ("count", "created", "durations")

    def __init__(self, durations: _Durations) -> None:
        self.count = 0
        self.created = time.time()
        self.durations = durations


class _Durations:
    """One subscriber's handling times: a count per bucket (the last: above every bound)."""

    __slots__ = ("counts", "total")

    def __init__(self, bounds: int) -> None:
        self.counts = [0] * (bounds + 1)
        self.total = 0.0


class DurableStateCollector(Collector):
    """Consumer lag and exception-queue depth, read from the hub's database per scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._tables: set[str] | None = None

    def _available(self, connection: sa.Connection) -> set[str]:
        if self._tables is None or {"bus_events", "bus_exceptions"} - self._tables:
            inspector = sa.inspect(connection)
            self._tables = {
                name
                for name in ("bus_events", "bus_cursors", "bus_exceptions")
                if inspector.has_table(name)
            }
        return self._tables

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "retailsync_consumer_lag_events",
            "Stored events past a subscriber's cursors (SQL bus), per subscriber",
            labels=["subscriber"],
        )
        depth = GaugeMetricFamily(
            "retailsync_exception_queue_depth",
            "Exception-queue entries waiting for a person or a retry, by status and system",
            labels=["status", "system"],
        )
        try:
            with self.engine.connect() as connection:
                tables = self._available(connection)
                if {"bus_events", "bus_cursors"} <= tables:
                    for subscriber, count in connection.execute(sa.text(_LAG_SQL)):
                        lag.add_metric([str(subscriber)], float(count))
                if "bus_exceptions" in tables:
                    for status, system, count in connection.execute(sa.text(_DEPTH_SQL)):
                        depth.add_metric([str(status), str(system or "")], float(count))
        except sa.exc.SQLAlchemyError:
            pass  # a scrape never fails because the database is busy; the gauges are absent
        yield lag
        yield depth


_LAG_SQL = """
SELECT c.subscriber, COUNT(e.seq)
FROM bus_cursors c LEFT OUTER JOIN bus_events e ON e.shard = c.shard AND e.seq > c.last_seq
GROUP BY c.subscriber
"""
_DEPTH_SQL = """
SELECT status, system, COUNT(*) FROM bus_exceptions
WHERE status IN ('open', 'retrying', 'permanently_failed')
GROUP BY status, system
"""


# --------------------------------------------------------------------------------------------
# The installed metrics and the hooks
# --------------------------------------------------------------------------------------------

_installed: HubMetrics | None = None


def install_metrics(
    engine: Engine | None = None, registry: CollectorRegistry | None = None
) -> HubMetrics:
    """Create the hub's metrics (once per process) and make the hooks record into them."""
    global _installed
    _installed = HubMetrics(registry, engine)
    return _installed


def uninstall_metrics() -> None:
    """Turn the hooks off again (tests, the benchmark's baseline)."""
    global _installed
    _installed = None


def installed_metrics() -> HubMetrics | None:
    return _installed


def event_ingested(event_type: str, count: int = 1) -> None:
    metrics = _installed
    if metrics is not None:
        metrics.events.ingested({event_type: count})


def events_accepted(events: Sequence[Any], outcomes: Any) -> None:
    """Count the events of one published batch that were stored now (not duplicates).

    ``outcomes`` is what the bus's ``publish`` returned (one ``PublishOutcome`` per input,
    with ``index`` and ``status``); ``events`` the batch as given (CloudEvents or mappings).
    A publisher that returns no outcomes stored every event it was given.
    """
    metrics = _installed
    if metrics is None:
        return
    counts: dict[str, int] = {}
    if not isinstance(outcomes, Sequence):
        for event in events:
            event_type = _type_of(event)
            counts[event_type] = counts.get(event_type, 0) + 1
    else:
        for outcome in outcomes:
            if getattr(outcome, "status", None) == "accepted":
                event_type = _type_of(events[outcome.index])
                counts[event_type] = counts.get(event_type, 0) + 1
    if counts:
        metrics.events.ingested(counts)


def _type_of(event: Any) -> str:
    if isinstance(event, CloudEvent):
        return event.type
    if isinstance(event, Mapping):
        return str(event.get("type") or "unknown")
    return str(getattr(event, "type", None) or "unknown")


def event_delivered(event_type: str, subscriber: str, seconds: float | None = None) -> None:
    """One event ``subscriber`` handled successfully (the hottest hook: once per event)."""
    metrics = _installed
    if metrics is not None:
        metrics.events.delivered(event_type, subscriber, seconds)


def event_dead_lettered(event_type: str, subscriber: str) -> None:
    if _installed is not None:
        _installed.events_dead_lettered.labels(event_type, subscriber).inc()


def workflow_started(workflow: str) -> None:
    if _installed is not None:
        _installed.workflows_started.labels(workflow).inc()


FAILED_OUTCOMES = frozenset({"failed", "finance_exception", "compensated", "error"})


def workflow_finished(workflow: str, outcome: str) -> None:
    """A workflow reached ``outcome`` (completed, rejected, failed, ...)."""
    if _installed is not None:
        _installed.workflows_completed.labels(workflow, outcome).inc()
        if outcome in FAILED_OUTCOMES:
            _installed.workflows_failed.labels(workflow).inc()


def workflow_step(step: str, status: str, seconds: float) -> None:
    if _installed is not None:
        _installed.step_duration.labels(step, status).observe(seconds)


def outbound_call(system: str, seconds: float, outcome: str = "ok") -> None:
    """One outbound call; ``outcome`` ok, business, transient, timeout, error or cancelled."""
    metrics = _installed
    if metrics is None:
        return
    # Called once per attempt by the resilience guard: the labelled child is looked up once.
    duration = metrics._outbound.get(system)
    if duration is None:
        duration = metrics._outbound[system] = metrics.outbound_duration.labels(system)
    duration.observe(seconds)
    if outcome != "ok":
        metrics.outbound_errors.labels(system, outcome).inc()


def alert_raised(sla: str, severity: str, role: str) -> None:
    if _installed is not None:
        _installed.alerts_raised.labels(sla, severity, role).inc()


# --------------------------------------------------------------------------------------------
# HTTP: the middleware and the /metrics route
# --------------------------------------------------------------------------------------------


class MetricsMiddleware:
    """Times every HTTP request and counts it by route template (never the raw path)."""

    def __init__(self, app: ASGIApp, metrics: HubMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self.metrics or _installed
        if scope["type"] != "http" or metrics is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = _route_of(scope)
            method = str(scope.get("method", "GET"))
            metrics.api_duration.labels(method, route).observe(time.perf_counter() - started)
            metrics.api_requests.labels(method, route, str(status)).inc()
            if status >= 400:
                metrics.api_errors.labels(method, route, str(status)).inc()


def _route_of(scope: Scope) -> str:
    """The matched route's template (``/v1/admin/traces``), or ``unmatched``.

    FastAPI routers included in routers are resolved lazily: the full template is on the
    effective route context, the route itself holds the path relative to its router.
    """
    effective: Any = (scope.get("fastapi") or {}).get("effective_route_context")
    path = getattr(effective, "path", None)
    if path:
        return str(path)
    route: Any = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else "unmatched"


def metrics_response_body(registry: CollectorRegistry | None = None) -> tuple[bytes, str]:
    """The exposition and its content type, for the installed metrics unless given."""
    if registry is None:
        registry = _installed.registry if _installed is not None else CollectorRegistry()
    return generate_latest(registry), CONTENT_TYPE_LATEST
