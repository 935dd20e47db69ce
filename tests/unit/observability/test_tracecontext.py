from __future__ import annotations

import pytest

from retailsync.observability.tracecontext import TraceParent

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
