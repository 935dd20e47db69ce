"""W3C Trace Context (``traceparent``): parse, generate and carry the correlation id.

The trace id of the incoming ``traceparent`` is the hub's correlation id: it travels in
API responses, CloudEvent extensions, workflow steps and outbound calls.
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_INVALID_TRACE_ID = "0" * 32
_INVALID_SPAN_ID = "0" * 16


@dataclass(frozen=True, slots=True)
class TraceParent:
    """One hop of a W3C trace: the trace id is shared, the span id is this hop's."""

    trace_id: str
    span_id: str
    flags: str = "01"

    @classmethod
    def parse(cls, header: str | None) -> TraceParent | None:
        """The parsed header, or None when absent or malformed (W3C: then start a new trace)."""
        if not header:
            return None
        match = _TRACEPARENT.match(header.strip().lower())
        if match is None:
            return None
        version, trace_id, span_id, flags = match.groups()
        if version == "ff" or trace_id == _INVALID_TRACE_ID or span_id == _INVALID_SPAN_ID:
            return None
        return cls(trace_id=trace_id, span_id=span_id, flags=flags)

    @classmethod
    def generate(cls) -> TraceParent:
        return cls(trace_id=secrets.token_hex(16), span_id=secrets.token_hex(8))

    def child(self) -> TraceParent:
        """The same trace with a new span id (for the next hop)."""
        return TraceParent(trace_id=self.trace_id, span_id=secrets.token_hex(8), flags=self.flags)

    @property
    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


current_trace: ContextVar[TraceParent | None] = ContextVar("current_trace", default=None)


def correlation_id() -> str | None:
    """The correlation id of the work in progress (the current trace id), if any."""
    trace = current_trace.get()
    return trace.trace_id if trace else None


def outbound_traceparent() -> str | None:
    """The ``traceparent`` to send on an outbound call made within the current trace."""
    trace = current_trace.get()
    return trace.child().header if trace else None
