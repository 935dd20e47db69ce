"""Spans: the hub's sampling decision, consumer spans of handled events, failures, export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from retailsync.domain.events import CloudEvent
from retailsync.observability.instrument import observe_outbound, traced_handler
from retailsync.observability.otel import (
    hub_span,
    setup_tracing,
    shutdown_tracing,
    span_recorded,
)
from retailsync.observability.settings import TracingSettings
from retailsync.observability.tracecontext import (
    TraceParent,
    continue_trace,
    correlation_id,
    current_trace,
)

# The sampler keeps a trace when the low 64 bits of its id are below ratio * 2**64.
SAMPLED_AT_HALF = "4bf92f3577b34da6" + "0000000000000abc"
LEFT_OUT_AT_HALF = "4bf92f3577b34da6" + "ffffffffffff0abc"


def _tracing(sample_ratio: float) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    setup_tracing(TracingSettings(sample_ratio=sample_ratio), exporter=exporter)
    return exporter


@pytest.fixture
def half() -> Iterator[InMemorySpanExporter]:
    yield _tracing(0.5)
    shutdown_tracing()


@pytest.fixture
def every() -> Iterator[InMemorySpanExporter]:
    yield _tracing(1.0)
    shutdown_tracing()


def _event(correlation: str, type_: str = "retailsync.inventory.adjusted") -> CloudEvent:
    return CloudEvent.new(
        type=type_, source="urn:retailsync:wms", data={}, correlationid=correlation
    )


def test_a_sampled_trace_gets_a_child_span_of_the_current_hop(
    half: InMemorySpanExporter,
) -> None:
    with continue_trace(SAMPLED_AT_HALF):
        hop = current_trace.get()
        assert hop is not None and span_recorded()
        with hub_span("erp read_order", kind=SpanKind.CLIENT, attributes={"a": "b"}) as span:
            assert span is not None
            inner = current_trace.get()
            assert inner is not None and inner.trace_id == SAMPLED_AT_HALF
            assert inner.span_id != hop.span_id and inner.flags == "01"
            span.set_attribute("retailsync.rows", 3)
        assert current_trace.get() == hop
    (finished,) = half.get_finished_spans()
    assert finished.name == "erp read_order" and finished.kind is SpanKind.CLIENT
    assert format(finished.context.trace_id, "032x") == SAMPLED_AT_HALF
    assert format(finished.context.span_id, "016x") == inner.span_id
    assert finished.parent is not None and finished.parent.is_remote
    assert format(finished.parent.span_id, "016x") == hop.span_id
    assert dict(finished.attributes or {}) == {"a": "b", "retailsync.rows": 3}
    assert finished.start_time is not None and finished.end_time is not None
    assert finished.start_time <= finished.end_time
    assert finished.status.status_code is StatusCode.UNSET


def test_a_trace_the_sampler_leaves_out_builds_no_span_and_keeps_its_hop(
    half: InMemorySpanExporter,
) -> None:
    with continue_trace(LEFT_OUT_AT_HALF):
        hop = current_trace.get()
        assert not span_recorded()
        with hub_span("erp read_order") as span:
            assert span is None
            assert current_trace.get() == hop
    assert half.get_finished_spans() == ()


def test_the_decision_is_the_trace_ids_in_every_hop_of_it(half: InMemorySpanExporter) -> None:
    for _ in range(3):  # new span ids each time, the same decision
        with continue_trace(SAMPLED_AT_HALF), hub_span("sampled"):
            pass
        with continue_trace(LEFT_OUT_AT_HALF), hub_span("left out"):
            pass
    assert [span.name for span in half.get_finished_spans()] == ["sampled"] * 3


def test_without_a_trace_a_span_starts_one_and_its_children_join_it(
    every: InMemorySpanExporter,
) -> None:
    assert current_trace.get() is None
    with hub_span("reconcile.run") as root:
        assert root is not None
        started = current_trace.get()
        assert started is not None and started.started_here
        with hub_span("erp list_orders"):
            assert correlation_id() == started.trace_id
    assert current_trace.get() is None
    inner, outer = every.get_finished_spans()
    assert outer.parent is None
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert inner.context.trace_id == outer.context.trace_id


def test_a_new_trace_the_sampler_leaves_out_still_holds_its_nested_work() -> None:
    exporter = _tracing(0.0)
    try:
        with hub_span("reconcile.run") as root:
            assert root is None
            started = current_trace.get()
            assert started is not None and started.flags == "00"
            with hub_span("erp list_orders") as inner:
                assert inner is None
                assert current_trace.get() == started
        assert current_trace.get() is None
        assert exporter.get_finished_spans() == ()
    finally:
        shutdown_tracing()


async def test_a_handled_event_gets_a_consumer_span_in_its_trace(
    every: InMemorySpanExporter,
) -> None:
    seen: list[TraceParent | None] = []

    async def update_stock(event: CloudEvent, ctx: Any) -> None:
        seen.append(current_trace.get())

    event = _event(SAMPLED_AT_HALF)
    await traced_handler("storefront-stock", update_stock)(event, None)
    (span,) = every.get_finished_spans()
    assert span.name == "handle retailsync.inventory.adjusted"
    assert span.kind is SpanKind.CONSUMER
    assert dict(span.attributes or {}) == {
        "retailsync.subscriber": "storefront-stock",
        "cloudevents.event_type": "retailsync.inventory.adjusted",
        "cloudevents.event_id": event.id,
        "cloudevents.event_source": "urn:retailsync:wms",
    }
    assert seen[0] is not None
    assert format(span.context.span_id, "016x") == seen[0].span_id  # the handler's hop


async def test_a_failing_handler_ends_its_span_in_error_and_still_raises(
    every: InMemorySpanExporter,
) -> None:
    async def update_stock(event: CloudEvent, ctx: Any) -> None:
        raise ValueError("SKU unknown to the storefront")

    with pytest.raises(ValueError, match="SKU unknown"):
        await traced_handler("storefront-stock", update_stock)(_event(SAMPLED_AT_HALF), None)
    (span,) = every.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: SKU unknown to the storefront"
    (recorded,) = span.events
    attributes = dict(recorded.attributes or {})
    assert recorded.name == "exception"
    assert attributes["exception.type"] == "ValueError"
    assert attributes["exception.message"] == "SKU unknown to the storefront"
    assert "update_stock" in str(attributes["exception.stacktrace"])


async def test_outbound_calls_of_left_out_traces_make_no_spans(
    half: InMemorySpanExporter,
) -> None:
    for correlation in (SAMPLED_AT_HALF, LEFT_OUT_AT_HALF):
        with continue_trace(correlation):
            async with observe_outbound("erp", "read_order"):
                pass
    (span,) = half.get_finished_spans()
    assert span.name == "erp read_order" and span.kind is SpanKind.CLIENT
    assert format(span.context.trace_id, "032x") == SAMPLED_AT_HALF


def test_finished_spans_serialize_as_the_console_exporter_writes_them(
    every: InMemorySpanExporter,
) -> None:
    with (
        continue_trace(SAMPLED_AT_HALF),
        pytest.raises(RuntimeError),
        hub_span("refunds.issue_refund", attributes={"retailsync.workflow": "refunds"}),
    ):
        raise RuntimeError("payments down")
    (span,) = every.get_finished_spans()
    assert isinstance(span, ReadableSpan)
    written = json.loads(span.to_json())
    assert written["context"]["trace_id"] == f"0x{SAMPLED_AT_HALF}"
    assert written["attributes"] == {"retailsync.workflow": "refunds"}
    assert written["status"]["status_code"] == "ERROR"
    assert written["events"][0]["name"] == "exception"
    assert written["resource"]["attributes"]["service.name"] == "retailsync"
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "retailsync"
