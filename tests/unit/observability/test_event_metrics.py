"""The per-event series read exactly as ``prometheus_client``'s own counters and histograms."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from retailsync.domain.events import CloudEvent
from retailsync.observability import metrics as hub_metrics
from retailsync.observability.metrics import LATENCY_BUCKETS, HubMetrics

# On a bound, below the first, between two, above the last, and a zero.
DURATIONS = (0.005, 0.001, 0.0301, 0.25, 31.0, 0.0, 2.5)


@pytest.fixture
def installed() -> Iterator[HubMetrics]:
    yield hub_metrics.install_metrics()
    hub_metrics.uninstall_metrics()


def _samples(
    registry: CollectorRegistry, family: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for parsed in text_string_to_metric_families(text)
        if parsed.name == family
        for sample in parsed.samples
        if not sample.name.endswith("_created")
    }


def test_delivery_durations_land_in_the_buckets_prometheus_would_use(
    installed: HubMetrics,
) -> None:
    reference = CollectorRegistry()
    histogram = Histogram(
        "retailsync_event_handling_duration_seconds",
        "Time a handler took per event",
        ["subscriber"],
        buckets=LATENCY_BUCKETS,
        registry=reference,
    )
    for seconds in DURATIONS:
        hub_metrics.event_delivered("retailsync.order.created", "storefront", seconds)
        histogram.labels("storefront").observe(seconds)
    hub_metrics.event_delivered("retailsync.order.created", "storefront")  # not timed
    family = "retailsync_event_handling_duration_seconds"
    assert _samples(installed.registry, family) == _samples(reference, family)


def test_deliveries_count_by_type_and_subscriber(installed: HubMetrics) -> None:
    for event_type, subscriber in (
        ("retailsync.order.created", "storefront"),
        ("retailsync.order.created", "storefront"),
        ("retailsync.order.created", "erp-orders"),
        ("retailsync.refund.requested", "storefront"),
    ):
        hub_metrics.event_delivered(event_type, subscriber, 0.01)

    def delivered(event_type: str, subscriber: str) -> float | None:
        return installed.registry.get_sample_value(
            "retailsync_events_delivered_total", {"type": event_type, "subscriber": subscriber}
        )

    assert delivered("retailsync.order.created", "storefront") == 2
    assert delivered("retailsync.order.created", "erp-orders") == 1
    assert delivered("retailsync.refund.requested", "storefront") == 1
    assert delivered("retailsync.refund.requested", "erp-orders") is None
    created = installed.registry.get_sample_value(
        "retailsync_events_delivered_created",
        {"type": "retailsync.order.created", "subscriber": "storefront"},
    )
    assert created is not None and created > 0


@dataclass
class Outcome:
    index: int
    status: str


def test_ingest_counts_only_the_events_stored_now(installed: HubMetrics) -> None:
    order = CloudEvent.new(type="retailsync.order.created", source="urn:test", data={})
    refund = CloudEvent.new(type="retailsync.refund.requested", source="urn:test", data={})
    as_json = {"type": "retailsync.order.created", "id": "e-3"}
    hub_metrics.events_accepted(
        [order, refund, as_json, order],
        [
            Outcome(0, "accepted"),
            Outcome(1, "duplicate"),
            Outcome(2, "accepted"),
            Outcome(3, "rejected"),
        ],
    )
    hub_metrics.events_accepted([refund], None)  # a publisher without outcomes stored all
    hub_metrics.event_ingested("retailsync.order.created")

    reference = CollectorRegistry()
    counter = Counter(
        "retailsync_events_ingested",
        "Canonical events stored, by type",
        ["type"],
        registry=reference,
    )
    counter.labels("retailsync.order.created").inc(3)
    counter.labels("retailsync.refund.requested").inc(1)
    family = "retailsync_events_ingested"
    assert _samples(installed.registry, family) == _samples(reference, family)


def test_the_hooks_do_nothing_until_metrics_are_installed() -> None:
    hub_metrics.uninstall_metrics()
    hub_metrics.event_delivered("retailsync.order.created", "storefront", 0.01)
    hub_metrics.event_ingested("retailsync.order.created")
    installed = hub_metrics.install_metrics()
    try:
        text = installed.render().decode()
        assert "retailsync_events_delivered_total{" not in text
        assert "# TYPE retailsync_events_delivered_total counter" in text
        assert "# TYPE retailsync_event_handling_duration_seconds histogram" in text
    finally:
        hub_metrics.uninstall_metrics()
