"""OpenTelemetry spans that share the hub's W3C trace id.

:func:`setup_tracing` builds a tracer provider from the settings (exporter ``none`` — the
default — ``console`` or ``otlp``). :func:`hub_span` opens a span as a child of the current
:data:`~retailsync.observability.tracecontext.current_trace`, and makes the new span the
current hop while it runs, so the ``traceparent`` sent on an outbound call inside it names
that span and a downstream's spans join the same trace. With tracing off, :func:`hub_span`
costs one ``None`` check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from retailsync.observability.errors import ExporterUnavailable
from retailsync.observability.settings import TracingSettings
from retailsync.observability.tracecontext import TraceParent, current_trace

if TYPE_CHECKING:
    import httpx

__all__ = [
    "SpanKind",
    "hub_span",
    "inject_traceparent",
    "setup_tracing",
    "shutdown_tracing",
    "traceparent_hooks",
]

_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None
_TRACE_ID_LIMIT = 2**64
_sample_bound = _TRACE_ID_LIMIT
"""Traces whose low 64 bits are at or above this are not sampled (TraceIdRatioBased's rule)."""
_propagator = TraceContextTextMapPropagator()


def _exporter(settings: TracingSettings) -> tuple[SpanExporter, bool]:
    """The exporter, and whether it wants batching."""
    if settings.exporter == "console":
        return ConsoleSpanExporter(service_name=settings.service_name), False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise ExporterUnavailable("otlp", "opentelemetry-exporter-otlp-proto-http") from None
    endpoint = settings.otlp_endpoint
    return (OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()), True


def setup_tracing(
    settings: TracingSettings, *, exporter: SpanExporter | None = None, batch: bool = False
) -> TracerProvider | None:
    """Turn spans on as ``settings`` say (None for ``exporter = "none"``).

    ``exporter`` overrides the configured one (tests hand in an in-memory exporter; ``batch``
    exports it through a batch processor as OTLP is, instead of span by span). The
    provider is this module's own; it is not installed as the global one, so libraries that
    call ``trace.get_tracer`` keep whatever the process chose.
    """
    global _provider, _tracer, _sample_bound
    shutdown_tracing()
    if exporter is None and settings.exporter == "none":
        return None
    # Sampling is decided by the trace id alone, so every span of one trace, in every hub
    # process, gets the same decision (the parents the hub hands in are "remote").
    sampler = TraceIdRatioBased(settings.sample_ratio)
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.service_name}),
        sampler=ParentBased(
            root=sampler, remote_parent_sampled=sampler, remote_parent_not_sampled=sampler
        ),
    )
    _sample_bound = round(settings.sample_ratio * _TRACE_ID_LIMIT)
    if exporter is not None:
        provider.add_span_processor(
            BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        )
    else:
        chosen, batch = _exporter(settings)
        processor = BatchSpanProcessor(chosen) if batch else SimpleSpanProcessor(chosen)
        provider.add_span_processor(processor)
    _provider = provider
    _tracer = provider.get_tracer("retailsync")
    return provider


def shutdown_tracing() -> None:
    """Flush and stop span export; :func:`hub_span` is a no-op afterwards."""
    global _provider, _tracer, _sample_bound
    if _provider is not None:
        _provider.shutdown()
    _provider = None
    _tracer = None
    _sample_bound = _TRACE_ID_LIMIT


def tracing_enabled() -> bool:
    return _tracer is not None


def _parent_context(parent: TraceParent | None) -> Any:
    if parent is None:
        return None
    span_context = SpanContext(
        trace_id=int(parent.trace_id, 16),
        span_id=int(parent.span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(int(parent.flags, 16)),
    )
    return trace.set_span_in_context(NonRecordingSpan(span_context))


@contextmanager
def hub_span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> Iterator[Span | None]:
    """A span named ``name`` in the current trace (a new trace when there is none).

    Inside, ``current_trace`` is the span's own hop. Yields None when tracing is off.
    Exceptions are recorded on the span and re-raised.
    """
    tracer = _tracer
    parent = current_trace.get()
    if tracer is None or (parent is not None and int(parent.trace_id[16:], 16) >= _sample_bound):
        yield None  # tracing off, or a trace the sampler leaves out: no span at all
        return
    # The parent comes from the hub's own trace context, so the span is not attached to
    # OpenTelemetry's context (cheaper); nested hub spans find it through current_trace.
    span = tracer.start_span(
        name,
        context=_parent_context(parent),
        kind=kind,
        attributes=dict(attributes or {}),
    )
    own = span.get_span_context()
    token = current_trace.set(
        TraceParent(
            trace_id=format(own.trace_id, "032x"),
            span_id=format(own.span_id, "016x"),
            flags=format(int(own.trace_flags), "02x"),
            started_here=parent.started_here if parent is not None else True,
        )
    )
    try:
        yield span
    except BaseException as exc:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        current_trace.reset(token)
        span.end()


def inject_traceparent(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add the W3C ``traceparent`` of the current hop to outbound ``headers``.

    Inside :func:`hub_span` the current hop is that span, so the downstream's spans become
    its children; outside any trace the headers are left alone.
    """
    hop = current_trace.get()
    if hop is not None:
        headers["traceparent"] = hop.child().header if _tracer is None else hop.header
        return headers
    span = trace.get_current_span()  # a span some library started through the global API
    if span.get_span_context().is_valid:
        _propagator.inject(headers)
    return headers


async def add_traceparent(request: httpx.Request) -> None:
    """httpx request hook: send the current hop's ``traceparent`` (unless one is set)."""
    if "traceparent" not in request.headers:
        inject_traceparent(request.headers)


def traceparent_hooks() -> dict[str, list[Callable[[httpx.Request], Awaitable[None]]]]:
    """``event_hooks`` for an ``httpx.AsyncClient`` whose every request carries the trace.

    ``httpx.AsyncClient(..., event_hooks=traceparent_hooks())``: the hook runs in the task
    that sends the request (and again for each retry), so it sees that task's trace.
    """
    return {"request": [add_traceparent]}
