"""Correlation and causation carried through event handling and spans."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from retailsync.domain.events import CloudEvent
from retailsync.observability.otel import (
    hub_span,
    inject_traceparent,
    setup_tracing,
    shutdown_tracing,
)
from retailsync.observability.settings import TracingSettings
from retailsync.observability.tracecontext import (
    TraceParent,
    causation_id,
    continue_trace,
    correlation_id,
    current_trace,
    lineage,
    normalise_correlation_id,
    outbound_traceparent,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
HEADER = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (HEADER, TRACE),
        (TRACE.upper(), TRACE),
        ("  wf-refund-123 ", "wf-refund-123"),
        ("", None),
        (None, None),
    ],
)
def test_normalise_correlation_id(value: str | None, expected: str | None) -> None:
    assert normalise_correlation_id(value) == expected


def test_handling_an_event_continues_its_trace_and_names_it_as_cause() -> None:
    event = CloudEvent.new(
        type="retailsync.order.created", source="s", data={}, correlationid=TRACE
    )
    assert correlation_id() is None
    with continue_trace(event.correlationid, causation=event.id) as correlation:
        assert correlation == TRACE
        assert lineage() == {"correlationid": TRACE, "causationid": event.id}
        outbound = TraceParent.parse(outbound_traceparent())
        assert outbound is not None and outbound.trace_id == TRACE
    assert correlation_id() is None and causation_id() is None


def test_a_correlation_id_that_is_not_a_trace_id_is_kept_as_is() -> None:
    with continue_trace("refund-7f3a") as correlation:
        assert correlation == "refund-7f3a"
        assert correlation_id() == "refund-7f3a"
        first = current_trace.get()
    with continue_trace("refund-7f3a"):
        second = current_trace.get()
    assert first is not None and second is not None
    assert first.trace_id == second.trace_id  # one stable W3C trace per correlation


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    setup_tracing(TracingSettings(exporter="console"), exporter=exporter)
    yield exporter
    shutdown_tracing()


def test_spans_share_the_hub_trace_id_and_nest(spans: InMemorySpanExporter) -> None:
    with continue_trace(TRACE), hub_span("handle retailsync.order.created") as outer:
        assert outer is not None
        headers = inject_traceparent({})
        sent = TraceParent.parse(headers["traceparent"])
        assert sent is not None and sent.trace_id == TRACE
        with hub_span("erp submit_order"):
            assert correlation_id() == TRACE
    finished = {span.name: span for span in spans.get_finished_spans()}
    outer_span = finished["handle retailsync.order.created"]
    inner_span = finished["erp submit_order"]
    assert {format(s.context.trace_id, "032x") for s in finished.values()} == {TRACE}
    assert inner_span.parent is not None
    assert inner_span.parent.span_id == outer_span.context.span_id


def test_spans_are_off_by_default_and_headers_still_flow() -> None:
    assert setup_tracing(TracingSettings()) is None
    with continue_trace(TRACE), hub_span("anything") as span:
        assert span is None
        assert inject_traceparent({})["traceparent"].split("-")[1] == TRACE
    assert inject_traceparent({}) == {}
