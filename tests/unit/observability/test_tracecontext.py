from __future__ import annotations

import pytest

from retailsync.observability.tracecontext import (
    TraceParent,
    causation_id,
    continue_trace,
    correlation_id,
    current_trace,
)

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_parses_a_valid_header() -> None:
    trace = TraceParent.parse(VALID)
    assert trace is not None
    assert trace.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace.span_id == "00f067aa0ba902b7"
    assert trace.header == VALID


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
    ],
)
def test_rejects_invalid_headers(header: str | None) -> None:
    assert TraceParent.parse(header) is None


def test_child_keeps_trace_and_changes_span() -> None:
    parent = TraceParent.generate()
    child = parent.child()
    assert child.trace_id == parent.trace_id
    assert child.span_id != parent.span_id
    assert TraceParent.parse(child.header) == child


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_trace_inside_an_override_is_its_own_and_both_are_restored() -> None:
    with continue_trace("wf-refund-123", causation="evt-1") as outer:
        assert outer == correlation_id() == "wf-refund-123"
        outer_hop = current_trace.get()
        with continue_trace(TRACE, causation="evt-2") as inner:
            assert inner == correlation_id() == TRACE
            assert causation_id() == "evt-2"
            hop = current_trace.get()
            assert hop is not None and hop.trace_id == TRACE and not hop.started_here
            assert len(hop.span_id) == 16 and int(hop.span_id, 16) != 0
        assert correlation_id() == "wf-refund-123" and causation_id() == "evt-1"
        assert current_trace.get() is outer_hop
    assert correlation_id() is None and causation_id() is None and current_trace.get() is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (TRACE.upper(), TRACE),  # not the fast path: normalised
        (f"00-{TRACE}-00f067aa0ba902b7-01", TRACE),
        ("0" * 32, None),  # the invalid trace id is a plain correlation, hashed to a trace
    ],
)
def test_correlation_ids_that_are_not_plain_trace_ids(given: str, expected: str | None) -> None:
    with continue_trace(given) as correlation:
        hop = current_trace.get()
        assert hop is not None
        if expected is None:
            assert correlation == given and hop.trace_id != given
        else:
            assert correlation == expected and hop.trace_id == expected


def test_each_hop_gets_its_own_span_id() -> None:
    span_ids = set()
    for _ in range(100):
        with continue_trace(TRACE):
            hop = current_trace.get()
            assert hop is not None
            span_ids.add(hop.span_id)
    assert len(span_ids) == 100
