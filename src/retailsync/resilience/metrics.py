"""Prometheus metrics for the downstreams, read from the live guards at scrape time.

A collector instead of module-level metric objects: it can be registered on any
``CollectorRegistry`` (the default one in production, a fresh one per test) without
duplicate-name errors, and it always reports exactly what the health endpoint shows.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from retailsync.resilience.health import queue_depth, snapshot
from retailsync.resilience.registry import Downstreams


class ResilienceCollector(Collector):
    """Breaker state, error rate, latency percentiles, queue depth and totals per downstream."""

    def __init__(self, downstreams: Downstreams) -> None:
        self.downstreams = downstreams

    def collect(self) -> Iterator[Metric]:
        labels = ["downstream"]
        breaker = GaugeMetricFamily(
            "retailsync_downstream_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open",
            labels=labels,
        )
        error_rate = GaugeMetricFamily(
            "retailsync_downstream_error_rate",
            "Share of calls that failed transiently in the sliding window",
            labels=labels,
        )
        latency = GaugeMetricFamily(
            "retailsync_downstream_latency_seconds",
            "Call latency percentiles over the sliding window",
            labels=[*labels, "quantile"],
        )
        in_flight = GaugeMetricFamily(
            "retailsync_downstream_in_flight", "Calls in flight in this process", labels=labels
        )
        waiting = GaugeMetricFamily(
            "retailsync_downstream_waiting",
            "Calls waiting for a slot or a rate-limit token, by lane",
            labels=[*labels, "lane"],
        )
        deferred = GaugeMetricFamily(
            "retailsync_downstream_deferred_writes",
            "Deferred writes by status",
            labels=[*labels, "status"],
        )
        calls = CounterMetricFamily(
            "retailsync_downstream_calls",
            "Calls by outcome (ok, business, transient, timeout, error)",
            labels=[*labels, "outcome"],
        )
        retries = CounterMetricFamily(
            "retailsync_downstream_retries", "Retries of transient failures", labels=labels
        )
        stale = CounterMetricFamily(
            "retailsync_downstream_stale_reads", "Reads served from a read model", labels=labels
        )
        opened = CounterMetricFamily(
            "retailsync_downstream_breaker_opened", "Times the breaker opened", labels=labels
        )
        for downstream in self.downstreams:
            try:
                depth = queue_depth(downstream)
            except Exception:
                depth = None
            health = snapshot(downstream, depth)
            name = health.name
            breaker.add_metric([name], downstream.breaker.state.gauge_value)
            error_rate.add_metric([name], health.error_rate)
            for quantile, value in (
                ("0.5", health.latency.p50_ms),
                ("0.95", health.latency.p95_ms),
                ("0.99", health.latency.p99_ms),
            ):
                if value is not None:
                    latency.add_metric([name, quantile], value / 1000)
            in_flight.add_metric([name], health.in_flight)
            for lane, count in health.waiting.items():
                waiting.add_metric([name, lane], count)
            if health.deferred_writes is not None:
                for status, count in health.deferred_writes.model_dump().items():
                    deferred.add_metric([name, status], count)
            for outcome in ("ok", "business", "transient", "timeout", "error"):
                calls.add_metric([name, outcome], health.totals.get(outcome, 0))
            retries.add_metric([name], health.retries)
            stale.add_metric([name], health.stale_reads)
            opened.add_metric([name], health.times_opened)
        yield from (breaker, error_rate, latency, in_flight, waiting, deferred)
        yield from (calls, retries, stale, opened)


def register_metrics(
    downstreams: Downstreams, registry: CollectorRegistry | None = None
) -> ResilienceCollector:
    """Register the downstream metrics on ``registry`` (the default registry when None)."""
    collector = ResilienceCollector(downstreams)
    (registry or REGISTRY).register(collector)
    return collector
