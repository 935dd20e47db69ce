"""OpenTelemetry spans that share the hub's W3C trace id.

:func:`setup_tracing` builds a tracer provider from the settings (exporter ``none`` — the
default — ``console`` or ``otlp``). :func:`hub_span` opens a span as a child of the current
:data:`~retailsync.observability.tracecontext.current_trace`, and makes the new span the
current hop while it runs, so the ``traceparent`` sent on an outbound call inside it names
that span and a downstream's spans join the same trace. With tracing off, :func:`hub_span`
costs one ``None`` check.

Every span the hub makes goes through :func:`hub_span` (one per event handled, per workflow
step, per outbound attempt), so it is built the lean way: the sampling decision is the
hub's own (by trace id, :class:`~opentelemetry.sdk.trace.sampling.TraceIdRatioBased`'s
rule), a trace the sampler leaves out costs no span object at all, and a sampled span is
handed to the span processor as one finished
:class:`~opentelemetry.sdk.trace.ReadableSpan` when it ends, instead of going through the
SDK's ``Tracer`` (context attach, sampler objects, attribute validation, per-span locks:
about five times the cost). The processor and exporter are the SDK's own (batching, OTLP,
console); what the SDK's span would add and these lack is the span limits (the hub's spans
carry a handful of short attributes) and ``on_start`` calls (the processors used here do
nothing there).
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from retailsync.observability.errors import ExporterUnavailable
from retailsync.observability.settings import TracingSettings
from retailsync.observability.tracecontext import TraceParent, current_trace

if TYPE_CHECKING:
    import httpx

__all__ = [
    "HubSpan",
    "SpanKind",
    "force_flush_tracing",
    "hub_span",
    "inject_traceparent",
    "setup_tracing",
    "shutdown_tracing",
    "span_recorded",
    "traceparent_hooks",
]

_TRACE_ID_LIMIT = 2**64
_LOW_64_BITS = _TRACE_ID_LIMIT - 1
_random_bits = random.getrandbits
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)
_ERROR_STATUS_LIMIT = 500
"""Characters of an exception's text kept in the span's status description."""


class _Pipeline:
    """Where the hub's finished spans go: one processor, one resource, one scope."""

    __slots__ = ("processor", "resource", "sample_bound", "scope")

    def __init__(self, processor: SpanProcessor, resource: Resource, sample_ratio: float) -> None:
        self.processor = processor
        self.resource = resource
        self.scope = InstrumentationScope("retailsync")
        self.sample_bound = round(sample_ratio * _TRACE_ID_LIMIT)
        """Traces whose low 64 bits are at or above this are not sampled (TraceIdRatioBased's
        rule, so every process of the hub decides the same for one trace)."""


_provider: TracerProvider | None = None
_pipeline: _Pipeline | None = None
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
    provider is this module's own (it owns the processor: flush and shutdown); it is not
    installed as the global one, so libraries that call ``trace.get_tracer`` keep whatever
    the process chose.
    """
    global _provider, _pipeline
    shutdown_tracing()
    if exporter is None and settings.exporter == "none":
        return None
    if exporter is None:
        exporter, batch = _exporter(settings)
    processor: SpanProcessor = (
        BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    )
    # Spans started through the provider's own tracers get the same decision as the hub's:
    # by the trace id alone, also under a parent from another process.
    sampler = TraceIdRatioBased(settings.sample_ratio)
    resource = Resource.create({"service.name": settings.service_name})
    provider = TracerProvider(
        resource=resource,
        sampler=ParentBased(
            root=sampler, remote_parent_sampled=sampler, remote_parent_not_sampled=sampler
        ),
    )
    provider.add_span_processor(processor)
    _provider = provider
    _pipeline = _Pipeline(processor, resource, settings.sample_ratio)
    return provider


def shutdown_tracing() -> None:
    """Flush and stop span export; :func:`hub_span` is a no-op afterwards."""
    global _provider, _pipeline
    provider, _provider, _pipeline = _provider, None, None
    if provider is not None:
        provider.shutdown()


def force_flush_tracing(timeout_millis: int = 30_000) -> bool:
    """Export the spans still held by the batch processor now (False: timed out)."""
    return _provider.force_flush(timeout_millis) if _provider is not None else True


def tracing_enabled() -> bool:
    return _pipeline is not None


def _sampled(trace_id: str, pipeline: _Pipeline) -> bool:
    return int(trace_id[16:], 16) < pipeline.sample_bound


def span_recorded() -> bool:
    """Whether a :func:`hub_span` opened now would be recorded (tracing on, the current
    trace sampled). Lets a caller skip building attributes for a span that is not kept."""
    pipeline = _pipeline
    if pipeline is None:
        return False
    parent = current_trace.get()
    return parent is None or _sampled(parent.trace_id, pipeline)


class HubSpan:
    """A sampled span while it runs: attributes can still be added; exported when it ends."""

    __slots__ = (
        "_events",
        "_status",
        "attributes",
        "kind",
        "name",
        "parent",
        "span_id",
        "start_ns",
        "trace",
        "trace_id",
    )

    def __init__(
        self,
        name: str,
        kind: SpanKind,
        attributes: dict[str, Any],
        trace: TraceParent,
        parent: TraceParent | None,
        ids: tuple[int, int],
    ) -> None:
        self.name = name
        self.kind = kind
        self.attributes = attributes
        self.trace = trace
        """The span's own hop (its trace id and span id)."""
        self.parent = parent
        self.trace_id, self.span_id = ids
        self.start_ns = time.time_ns()
        self._events: tuple[Event, ...] = ()
        self._status = _UNSET

    def set_attribute(self, key: str, value: str | int | float | bool) -> None:
        self.attributes[key] = value

    def record_failure(self, exc: BaseException) -> None:
        """The span ends in error: an ``exception`` event (as the SDK records) and its status."""
        kind = type(exc)
        module = kind.__module__
        self._events += (
            Event(
                "exception",
                {
                    "exception.type": f"{module}.{kind.__qualname__}"
                    if module and module != "builtins"
                    else kind.__qualname__,
                    "exception.message": str(exc),
                    "exception.stacktrace": "".join(traceback.format_exception(exc)),
                    "exception.escaped": "True",
                },
            ),
        )
        self._status = Status(StatusCode.ERROR, f"{kind.__name__}: {exc}"[:_ERROR_STATUS_LIMIT])

    def finished(self, pipeline: _Pipeline) -> ReadableSpan:
        """The span as the SDK's processors and exporters take it, ending now."""
        trace_id = self.trace_id
        parent = self.parent
        return ReadableSpan(
            self.name,
            context=SpanContext(trace_id, self.span_id, False, _SAMPLED),
            parent=(
                SpanContext(
                    trace_id,
                    int(parent.span_id, 16),
                    True,
                    _SAMPLED if parent.flags == "01" else TraceFlags(int(parent.flags, 16)),
                )
                if parent is not None
                else None
            ),
            resource=pipeline.resource,
            attributes=self.attributes,
            events=self._events,
            kind=self.kind,
            status=self._status,
            start_time=self.start_ns,
            end_time=time.time_ns(),
            instrumentation_scope=pipeline.scope,
        )


class hub_span:
    """A span named ``name`` in the current trace (a new trace when there is none).

    ``with hub_span("erp submit_order", kind=SpanKind.CLIENT) as span:`` — inside,
    ``current_trace`` is the span's own hop; ``span`` is the :class:`HubSpan`, or None when
    tracing is off or the sampler leaves the trace out (then nothing is built). Exceptions
    are recorded on the span and re-raised. A class rather than a generator: it runs once
    per event handled.
    """

    __slots__ = ("_attributes", "_kind", "_name", "_pipeline", "_span", "_token")

    def __init__(
        self,
        name: str,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, str | int | float | bool] | None = None,
    ) -> None:
        self._name = name
        self._kind = kind
        self._attributes = attributes
        self._span: HubSpan | None = None
        self._pipeline: _Pipeline | None = None
        self._token: Any = None

    def __enter__(self) -> HubSpan | None:
        pipeline = _pipeline
        if pipeline is None:
            return None  # tracing off
        parent = current_trace.get()
        if parent is None:
            # A new trace: the hop is set whether or not it is sampled, so what runs inside
            # (nested spans, outbound headers) stays in this one trace and its decision.
            root = TraceParent.generate()
            if not _sampled(root.trace_id, pipeline):
                self._token = current_trace.set(
                    TraceParent(root.trace_id, root.span_id, "00", started_here=True)
                )
                return None
            own = root
            ids = (int(root.trace_id, 16), int(root.span_id, 16))
        else:
            trace_id = int(parent.trace_id, 16)
            if trace_id & _LOW_64_BITS >= pipeline.sample_bound:
                return None  # a trace the sampler leaves out: no span at all
            span_id = _random_bits(64) or 1
            ids = (trace_id, span_id)
            own = TraceParent(
                parent.trace_id, span_id.to_bytes(8).hex(), "01", started_here=parent.started_here
            )
        span = HubSpan(
            self._name,
            self._kind,
            dict(self._attributes) if self._attributes else {},
            own,
            parent,
            ids,
        )
        self._span, self._pipeline = span, pipeline
        self._token = current_trace.set(own)
        return span

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        token, self._token = self._token, None
        if token is not None:
            current_trace.reset(token)
        span, pipeline = self._span, self._pipeline
        if span is None or pipeline is None:
            return
        self._span = self._pipeline = None
        if exc is not None:
            span.record_failure(exc)
        pipeline.processor.on_end(span.finished(pipeline))


def inject_traceparent(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add the W3C ``traceparent`` of the current hop to outbound ``headers``.

    Inside :func:`hub_span` the current hop is that span, so the downstream's spans become
    its children; outside any trace the headers are left alone.
    """
    hop = current_trace.get()
    if hop is not None:
        headers["traceparent"] = hop.child().header if _pipeline is None else hop.header
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
