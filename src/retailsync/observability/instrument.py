"""One-line instrumentation for the bus, the workflows and the outbound guard.

Each helper opens a span, updates the metrics and records a durable hop in the trace store,
as far as each is switched on (:func:`install_observability`). A failure to record a hop is
logged and never fails the business call it describes.

- bus handlers: ``Subscription(handler=traced_handler("erp-orders", handler), ...)``
- workflow steps: ``async with observe_workflow_step(...) as step: step.outcome(await ...)``
- outbound calls: ``async with observe_outbound("erp", "create_return"): await fn()`` (the
  resilience guard opens one per attempt, so every call through it is observed)
- inbound messages: ``record_inbound("shopify", "orders/create", "accepted", events=...)``,
  after :func:`~retailsync.observability.correlation.correlate_events` stamped their
  correlation id on them
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from retailsync.domain.events import CloudEvent
from retailsync.observability import metrics as hub_metrics
from retailsync.observability.logging import get_logger
from retailsync.observability.otel import (
    SpanKind,
    hub_span,
    setup_tracing,
    span_recorded,
)
from retailsync.observability.settings import observability_settings
from retailsync.observability.tracecontext import continue_trace, enter_trace, leave_trace
from retailsync.observability.traces import (
    HopBuffer,
    HopKind,
    arecord_hop,
    hop_row,
    ids_in,
    record_hop,
    use_hop_buffer,
)

log = get_logger("retailsync.observability")

_store: Engine | None = None
_buffer: HopBuffer | None = None


def install_observability(engine: Engine, settings: Any) -> hub_metrics.HubMetrics | None:
    """Switch on spans, metrics and hop recording for this process from the hub's settings."""
    config = observability_settings(settings)
    setup_tracing(config.tracing)
    set_trace_store(engine)
    if not config.metrics_enabled:
        hub_metrics.uninstall_metrics()
        return None
    return hub_metrics.install_metrics(engine)


def set_trace_store(engine: Engine | None) -> None:
    """Where the helpers record hops (None: do not record).

    Writes what the previous store's buffer still holds first, so switching off (shutdown,
    the end of a test) loses nothing.
    """
    global _store, _buffer
    if _buffer is not None:
        _buffer.flush_now()
    _store = engine
    _buffer = HopBuffer(engine) if engine is not None else None
    use_hop_buffer(_buffer)


async def flush_trace_store() -> None:
    """Write the outbound hops still held in this process (call it at shutdown)."""
    if _buffer is not None:
        await _buffer.flush()


def trace_store() -> Engine | None:
    return _store


_delivery: ContextVar[Any] = ContextVar("delivery_context", default=None)
_subject: ContextVar[tuple[str | None, str | None] | None] = ContextVar(
    "business_subject", default=None
)
"""The (order id, case id) of the workflow step in progress: outbound hops inherit them."""
"""The ``DeliveryContext`` of the event delivery in progress (see :func:`traced_handler`);
its ``connection`` is opened only when a hop is actually recorded."""


async def _record(**hop: Any) -> None:
    engine, buffer = _store, _buffer
    if engine is None:
        return
    try:
        owned = _delivery.get()
        delivery = owned[0] if owned and owned[1] is asyncio.current_task() else None
        connection: Connection | None = getattr(delivery, "connection", None)
        if connection is not None:
            # Inside a bus delivery the hop commits with the delivery's inbox record: on
            # SQLite a second connection would wait for that transaction's write lock.
            record_hop(connection, **hop)
        elif buffer is None:
            await arecord_hop(engine, **hop)
        elif hop["kind"] is HopKind.OUTBOUND_CALL:
            # Calls are many (an ERP step makes ten): held and written together.
            buffer.add(hop_row(**hop))
        else:
            # Inbound messages and steps are written now, with the calls held so far: a
            # finished step commits together with the calls it made.
            await buffer.write_with(hop_row(**hop))
    except sa.exc.SQLAlchemyError as exc:
        log.warning("trace hop not recorded", error=str(exc), operation=hop.get("operation"))


def outcome_of(exc: BaseException) -> str:
    """``business``, ``timeout``, ``transient`` or ``error`` for a failed call."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "BusinessError" in names:
        return "business"
    if names & {"DownstreamTimeout", "TimeoutError", "TimeoutException"}:
        return "timeout"
    if names & {"TransientError", "TransportError", "ConnectionError"}:
        return "transient"
    return "error"


# --------------------------------------------------------------------------------------------
# Event handling
# --------------------------------------------------------------------------------------------

EventHandler = Callable[[CloudEvent, Any], Awaitable[None]]


def traced_handler(subscriber: str, handler: EventHandler) -> EventHandler:
    """``handler`` run inside the event's trace, with a consumer span and delivery metrics.

    Inside, ``correlation_id()`` is the event's ``correlationid`` and ``causation_id()`` its
    id, so events the handler builds with ``**lineage()`` point back at this one. Hops the
    handler's calls record are written in the delivery's transaction (``ctx.connection``),
    so they commit exactly once, with the delivery.
    """

    async def handle(event: CloudEvent, ctx: Any) -> None:
        # Remember which task owns the delivery: work the handler starts in other tasks
        # (a workflow, a background job) inherits context variables but must not write into
        # this delivery's transaction, which may be committed by the time it runs.
        delivery = _delivery.set((ctx, asyncio.current_task()))
        _, trace = enter_trace(event.correlationid, event.id)  # continue_trace, unrolled
        try:
            started = time.perf_counter()
            if span_recorded():  # attributes only for a span that is kept
                with hub_span(
                    f"handle {event.type}",
                    kind=SpanKind.CONSUMER,
                    attributes={
                        "retailsync.subscriber": subscriber,
                        "cloudevents.event_type": event.type,
                        "cloudevents.event_id": event.id,
                        "cloudevents.event_source": event.source,
                    },
                ):
                    await handler(event, ctx)
            else:
                await handler(event, ctx)
            hub_metrics.event_delivered(event.type, subscriber, time.perf_counter() - started)
        finally:
            leave_trace(trace)
            _delivery.reset(delivery)

    return handle


# --------------------------------------------------------------------------------------------
# Outbound calls
# --------------------------------------------------------------------------------------------


class observe_outbound:
    """One outbound call: a client span, the latency/error metrics and a durable hop.

    ``async with observe_outbound("erp", "create_return", attempt=2): await send()``. The
    hop carries the current correlation id, and the order and case of the workflow step in
    progress unless given. A class rather than a generator: the resilience guard opens one
    per attempt, so it stays a few attribute stores when spans and metrics are off.
    """

    __slots__ = (
        "_at",
        "_span",
        "_started",
        "attempt",
        "case_id",
        "detail",
        "operation",
        "order_id",
        "system",
    )

    def __init__(
        self,
        system: str,
        operation: str,
        *,
        attempt: int | None = None,
        order_id: str | None = None,
        case_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        self.system = system
        self.operation = operation
        self.attempt = attempt
        self.order_id = order_id
        self.case_id = case_id
        self.detail = detail
        self._span: Any = None
        self._at = 0.0
        self._started = 0.0

    async def __aenter__(self) -> None:
        self._at = time.time()
        if span_recorded():  # nothing built for a trace the sampler leaves out
            self._span = hub_span(
                f"{self.system} {self.operation}",
                kind=SpanKind.CLIENT,
                attributes={
                    "retailsync.system": self.system,
                    "retailsync.operation": self.operation,
                },
            )
            self._span.__enter__()
        self._started = time.perf_counter()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        seconds = time.perf_counter() - self._started
        span, self._span = self._span, None
        if span is not None:
            span.__exit__(kind, exc, tb)
        if exc is not None and not isinstance(exc, Exception):
            hub_metrics.outbound_call(self.system, seconds, "cancelled")
            return  # cancelled: the caller is going away; the call's end is unknown
        outcome = "ok" if exc is None else outcome_of(exc)
        hub_metrics.outbound_call(self.system, seconds, outcome)
        if _store is None:
            return
        subject = _subject.get()
        detail = dict(self.detail or {})
        if exc is not None:
            detail["error"] = f"{type(exc).__name__}: {exc}"
        await _record(
            kind=HopKind.OUTBOUND_CALL,
            system=self.system,
            operation=self.operation,
            status=outcome,
            latency_ms=seconds * 1000,
            attempt=self.attempt,
            order_id=self.order_id or (subject[0] if subject else None),
            case_id=self.case_id or (subject[1] if subject else None),
            detail=detail,
            at=datetime.fromtimestamp(self._at, UTC),
        )


# --------------------------------------------------------------------------------------------
# Inbound messages
# --------------------------------------------------------------------------------------------


def _field(event: CloudEvent | Mapping[str, Any], name: str) -> Any:
    return event.get(name) if isinstance(event, Mapping) else getattr(event, name, None)


def business_ids(
    events: Iterable[CloudEvent | Mapping[str, Any]],
) -> tuple[str | None, str | None]:
    """The order and case the events are about, when they name exactly one of each.

    Events may be CloudEvents or their JSON form (as ``POST /v1/events`` receives them).
    """
    orders: set[str] = set()
    cases: set[str] = set()
    for event in events:
        order, case = ids_in(_field(event, "data"))
        for key in (_field(event, "subject"), _field(event, "partitionkey")):
            if isinstance(key, str) and key.startswith("ord_"):
                order = order or key
            elif isinstance(key, str) and key.startswith("case_"):
                case = case or key
        if order:
            orders.add(order)
        if case:
            cases.add(case)
    return (
        next(iter(orders)) if len(orders) == 1 else None,
        next(iter(cases)) if len(cases) == 1 else None,
    )


async def record_inbound(
    system: str,
    operation: str,
    status: str,
    *,
    events: Sequence[CloudEvent | Mapping[str, Any]] = (),
    correlation: str | None = None,
    order_id: str | None = None,
    case_id: str | None = None,
    detail: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """One inbound message (a webhook delivery, an API batch of events) as a durable hop.

    ``correlation`` defaults to the one the events share, else the current trace's; the
    order and case default to the ones the events name. ``at`` is when the message arrived
    (so the hop sorts before the events it produced); now by default.
    """
    if _store is None:
        return
    if correlation is None:
        shared = {_field(event, "correlationid") for event in events}
        correlation = next(iter(shared)) if len(shared) == 1 else None
    if events and (order_id is None or case_id is None):
        found_order, found_case = business_ids(events)
        order_id = order_id or found_order
        case_id = case_id or found_case
    await _record(
        kind=HopKind.INBOUND,
        system=system,
        operation=operation,
        status=status,
        correlation_id=correlation,
        order_id=order_id,
        case_id=case_id,
        detail=detail,
        at=at,
    )


# --------------------------------------------------------------------------------------------
# Workflow steps
# --------------------------------------------------------------------------------------------


@dataclass
class StepObservation:
    """Filled by the caller with the step's outcome JSON (``{"ok": ..., "failure": ...}``)."""

    result: Mapping[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def outcome(self, result: Mapping[str, Any]) -> Mapping[str, Any]:
        self.result = result
        return result


def _step_status(result: Mapping[str, Any] | None) -> tuple[str, int | None, dict[str, Any]]:
    if result is None:
        return "error", None, {}
    if result.get("ok"):
        return "ok", None, {}
    failure = dict(result.get("failure") or {})
    status = "failed" if failure.get("kind") == "business" else "gave_up"
    attempts = failure.get("attempts")
    return (
        status,
        int(attempts) if isinstance(attempts, int) else None,
        {"error": failure.get("error"), "message": failure.get("message")},
    )


@asynccontextmanager
async def observe_workflow_step(
    workflow: str,
    step: str,
    *,
    workflow_id: str,
    correlation_id: str | None = None,
    order_id: str | None = None,
    case_id: str | None = None,
    system: str = "hub",
) -> AsyncIterator[StepObservation]:
    """One workflow step: a span, the step metrics and a hop stored once per step.

    The hop's key is ``f"{workflow_id}:{step}"``, so a workflow recovered after a restart,
    which replays its finished steps, records each of them once only.
    """
    observation = StepObservation()
    at = datetime.now(UTC)
    started = time.perf_counter()
    subject = _subject.set((order_id, case_id) if order_id or case_id else None)
    with (
        continue_trace(correlation_id) if correlation_id else nullcontext(),
        hub_span(
            f"{workflow}.{step}",
            attributes={"retailsync.workflow": workflow, "retailsync.workflow_id": workflow_id},
        ),
    ):
        try:
            yield observation
        finally:
            _subject.reset(subject)
            seconds = time.perf_counter() - started
            status, attempts, detail = _step_status(observation.result)
            hub_metrics.workflow_step(step, status, seconds)
            await _record(
                kind=HopKind.WORKFLOW_STEP,
                system=system,
                operation=f"{workflow}.{step}",
                status=status,
                latency_ms=seconds * 1000,
                attempt=attempts or 1,
                correlation_id=correlation_id,
                order_id=order_id,
                case_id=case_id,
                detail={"workflow_id": workflow_id, **detail, **observation.extra},
                at=at,
                hop_key=f"{workflow_id}:{step}",
            )
