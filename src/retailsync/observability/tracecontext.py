"""W3C Trace Context (``traceparent``): parse, generate and carry the correlation id.

The trace id of the incoming ``traceparent`` is the hub's correlation id: it travels in
API responses, CloudEvent extensions, workflow steps and outbound calls. The id of the event
being handled is the *causation id* of every event built while handling it
(:func:`lineage`), so each event points at the one that caused it.
"""

from __future__ import annotations

import hashlib
import random
import re
import secrets
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_INVALID_TRACE_ID = "0" * 32
_HEX_DIGITS = "0123456789abcdef"
_INVALID_SPAN_ID = "0" * 16


@dataclass(frozen=True, slots=True)
class TraceParent:
    """One hop of a W3C trace: the trace id is shared, the span id is this hop's.

    ``started_here`` is True for a trace this process started because the work arrived
    without one (no ``traceparent`` header): new work about an order the hub already traces
    may then join that order's correlation instead (:mod:`~retailsync.observability.correlation`).
    It is not part of the header and not compared.
    """

    trace_id: str
    span_id: str
    flags: str = "01"
    started_here: bool = field(default=False, compare=False)

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
        """A new trace, started by this process."""
        return cls(trace_id=secrets.token_hex(16), span_id=secrets.token_hex(8), started_here=True)

    def child(self) -> TraceParent:
        """The same trace with a new span id (for the next hop)."""
        return TraceParent(
            trace_id=self.trace_id,
            span_id=_span_id(),
            flags=self.flags,
            started_here=self.started_here,
        )

    @property
    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


current_trace: ContextVar[TraceParent | None] = ContextVar("current_trace", default=None)
current_correlation: ContextVar[str | None] = ContextVar("current_correlation", default=None)
"""A correlation id that is not a W3C trace id (e.g. a workflow id sent by an older client);
when set it wins over the trace id, so records keep the id the work arrived with."""
current_causation: ContextVar[str | None] = ContextVar("current_causation", default=None)
"""The id of the event whose handling is in progress."""


def correlation_id() -> str | None:
    """The correlation id of the work in progress (the current trace id), if any."""
    override = current_correlation.get()
    if override is not None:
        return override
    trace = current_trace.get()
    return trace.trace_id if trace else None


def caller_correlation_id() -> str | None:
    """The correlation id the work in progress was handed (a ``traceparent`` the caller sent,
    the event being handled, a workflow's), or None when this process started the trace
    itself or there is none."""
    override = current_correlation.get()
    if override is not None:
        return override
    trace = current_trace.get()
    return trace.trace_id if trace is not None and not trace.started_here else None


def causation_id() -> str | None:
    """The id of the event being handled, if any: the cause of whatever happens now."""
    return current_causation.get()


def lineage() -> dict[str, str | None]:
    """``correlationid`` and ``causationid`` for an event built now (CloudEvent extensions)."""
    return {"correlationid": correlation_id(), "causationid": causation_id()}


def normalise_correlation_id(value: str | None) -> str | None:
    """The correlation id in ``value``: the trace id of a ``traceparent`` header, else the
    trimmed value itself (None for nothing)."""
    if not value:
        return None
    if len(value) == 32 and _TRACE_ID.match(value):
        return value  # the common case: already a trace id
    value = value.strip()
    if not value:
        return None
    parsed = TraceParent.parse(value)
    if parsed is not None:
        return parsed.trace_id
    return value.lower() if _TRACE_ID.match(value.lower()) else value


_random_bits = random.getrandbits


def _span_id() -> str:
    """A random, non-zero 64-bit span id (uniqueness, not secrecy, is what matters)."""
    return (_random_bits(64) or 1).to_bytes(8).hex()


def trace_for(correlation: str | None) -> TraceParent:
    """A new hop of the trace that ``correlation`` names (a fresh trace for None).

    A W3C trace id is used as is; any other id maps to a stable trace id (the first 128 bits
    of its SHA-256), so every hop of that correlation still shares one trace.
    """
    correlation = normalise_correlation_id(correlation)
    if correlation is None:
        return TraceParent.generate()
    if correlation != _INVALID_TRACE_ID and _TRACE_ID.match(correlation):
        return TraceParent(trace_id=correlation, span_id=_span_id())
    digest = hashlib.sha256(correlation.encode()).hexdigest()[:32]
    return TraceParent(trace_id=digest, span_id=_span_id())


TraceTokens = tuple[Token[TraceParent | None], Token[str | None] | None, Token[str | None]]
"""What :func:`enter_trace` changed, for :func:`leave_trace` to undo."""


def enter_trace(correlation: str | None, causation: str | None) -> tuple[str, TraceTokens]:
    """Make the trace ``correlation`` names current (a new hop of it; a new trace for None),
    with ``causation`` as the cause; returns the correlation id in effect and what to hand
    to :func:`leave_trace`. :class:`continue_trace` as two calls, for the per-event path."""
    if (
        isinstance(correlation, str)
        and len(correlation) == 32
        and not correlation.strip(_HEX_DIGITS)
        and correlation != _INVALID_TRACE_ID
    ):
        # The common case (an event's correlationid): a W3C trace id, used as is.
        trace = TraceParent(correlation, _span_id())
        override = None
    else:
        correlation = normalise_correlation_id(correlation)
        trace = trace_for(correlation)
        override = correlation if correlation and correlation != trace.trace_id else None
    tokens = (
        current_trace.set(trace),
        # Usually there is no override around (nor one here): leave it alone then.
        current_correlation.set(override)
        if override is not None or current_correlation.get() is not None
        else None,
        current_causation.set(causation),
    )
    return override or trace.trace_id, tokens


def leave_trace(tokens: TraceTokens) -> None:
    """Undo :func:`enter_trace` (in the same context, in reverse order of entering)."""
    trace, correlation, causation = tokens
    current_causation.reset(causation)
    if correlation is not None:
        current_correlation.reset(correlation)
    current_trace.reset(trace)


class continue_trace:
    """Run the block inside the trace ``correlation`` names (e.g. an event's correlationid).

    ``with continue_trace(event.correlationid, causation=event.id) as correlation:`` — the
    block sees the correlation id in effect (a new one when ``correlation`` is None); inside,
    :func:`correlation_id` returns it, :func:`outbound_traceparent` continues its trace and
    :func:`causation_id` is ``causation``. A class, not a generator: it runs once per event.
    """

    __slots__ = ("_causation", "_correlation", "_tokens")

    def __init__(self, correlation: str | None, *, causation: str | None = None) -> None:
        self._correlation = correlation
        self._causation = causation
        self._tokens: TraceTokens

    def __enter__(self) -> str:
        correlation, self._tokens = enter_trace(self._correlation, self._causation)
        return correlation

    def __exit__(self, *exc: object) -> None:
        leave_trace(self._tokens)


def outbound_traceparent() -> str | None:
    """The ``traceparent`` to send on an outbound call made within the current trace."""
    trace = current_trace.get()
    return trace.child().header if trace else None
