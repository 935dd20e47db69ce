"""One correlation id per order journey: new work about a known order joins its trace.

A journey crosses many entry points that bring no trace of their own: the storefront's next
webhook about the order, the ERP's change capture noticing the shipment, the warehouse's
receipt webhook, an agent starting a return through the process API. Each would start a new
trace, and the order's story would split into pieces. So work that arrives *without* a
correlation id (no ``traceparent`` from the caller, no ``correlationid`` on the event) and
is about an order, a case, a return, a refund or a shipment the hub already traces joins
that journey's correlation: the one the entity's earliest durable record carries. Work that
brings its own correlation id keeps it; work about nothing known keeps the trace it started
(or, outside any trace, gets a new one).

- :func:`correlate_events` stamps events before they are stored (the webhook ingress, the
  change-capture publishers through :class:`CorrelatingPublisher`);
- :func:`joined_correlation` picks the correlation of a new workflow (the process API);
- :func:`known_correlations` is the lookup: ``trace_records`` by order / case, then the bus's
  ``bus_events`` by partition key (by name only: observability does not import the bus).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from retailsync.domain.events import CloudEvent
from retailsync.domain.identifiers import EntityKind, is_valid_id
from retailsync.observability.instrument import business_ids, trace_store
from retailsync.observability.logging import get_logger
from retailsync.observability.tables import trace_records
from retailsync.observability.tracecontext import (
    TraceParent,
    caller_correlation_id,
    correlation_id,
)

log = get_logger("retailsync.observability")

_events = sa.table(
    "bus_events",
    sa.column("seq", sa.BigInteger),
    sa.column("partition_key"),
    sa.column("correlation_id"),
)


JOURNEY_KINDS = (
    EntityKind.ORDER,
    EntityKind.CASE,
    EntityKind.RETURN,
    EntityKind.REFUND,
    EntityKind.SHIPMENT,
)
"""Entities that belong to one journey: an event keyed by one joins that journey's trace.
(A customer or a SKU spans many journeys: events keyed by them are not joined by key.)"""


def known_correlations(target: Engine | Connection, entities: Iterable[str]) -> dict[str, str]:
    """The correlation id each entity id in ``entities`` first appeared with.

    From the hub's durable records only: the earliest trace record naming it (orders and
    cases), else the earliest stored event keyed by it (partition key). Entities never seen
    are left out.
    """
    wanted = sorted({entity for entity in entities if entity})
    if not wanted:
        return {}
    if isinstance(target, Engine):
        with target.connect() as connection:
            return _known(connection, wanted)
    return _known(target, wanted)


def _known(connection: Connection, wanted: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for entity in wanted:
        if is_valid_id(entity, EntityKind.ORDER):
            column = trace_records.c.order_id
        elif is_valid_id(entity, EntityKind.CASE):
            column = trace_records.c.case_id
        else:
            continue
        correlation = connection.execute(
            sa.select(trace_records.c.correlation_id)
            .where(column == entity, trace_records.c.correlation_id.is_not(None))
            .order_by(trace_records.c.seq)
            .limit(1)
        ).scalar_one_or_none()
        if correlation is not None:
            found[entity] = str(correlation)
    missing = [entity for entity in wanted if entity not in found]
    if missing and sa.inspect(connection).has_table("bus_events"):
        for entity in missing:
            correlation = connection.execute(
                sa.select(_events.c.correlation_id)
                .where(_events.c.partition_key == entity, _events.c.correlation_id.is_not(None))
                .order_by(_events.c.seq)
                .limit(1)
            ).scalar_one_or_none()
            if correlation is not None:
                found[entity] = str(correlation)
    return found


async def _lookup(entities: set[str], store: Engine | None) -> dict[str, str]:
    if not entities or store is None:
        return {}
    try:
        return await asyncio.to_thread(known_correlations, store, entities)
    except sa.exc.SQLAlchemyError as exc:  # a trace that splits is better than a lost message
        log.warning("known correlation not looked up", error=str(exc))
        return {}


def journey_keys(event: CloudEvent) -> tuple[str, ...]:
    """The journey entities an event is about, most telling first: the order and the case
    it names, then its partition key when that is a journey entity's id (a return, a
    refund, a shipment)."""
    order, case = business_ids([event])
    keys = [key for key in (order, case) if key]
    key = event.partitionkey or event.subject
    if key and key not in keys and any(is_valid_id(key, kind) for kind in JOURNEY_KINDS):
        keys.append(key)
    return tuple(keys)


async def correlate_events(
    events: Sequence[CloudEvent], *, store: Engine | None = None
) -> list[CloudEvent]:
    """``events``, each one without a ``correlationid`` given the one it belongs to.

    In order: the correlation the work in progress was handed (a caller's ``traceparent``,
    the event being handled); else the known correlation of the journey the event is about
    (:func:`journey_keys`: its order, its case, the return / refund / shipment it is keyed
    by); else the trace this process started for the work; else a new one. Events of one
    batch about the same entity share it. Events with a correlation id keep it.
    """
    if all(event.correlationid for event in events):
        return list(events)
    handed = caller_correlation_id()
    if handed is not None:
        return [
            event if event.correlationid else event.model_copy(update={"correlationid": handed})
            for event in events
        ]
    keys = [() if event.correlationid else journey_keys(event) for event in events]
    chosen = await _lookup(
        {key for event_keys in keys for key in event_keys}, store or trace_store()
    )
    current = correlation_id()
    stamped = []
    for event, event_keys in zip(events, keys, strict=True):
        if event.correlationid:
            stamped.append(event)
            continue
        correlation = next((chosen[key] for key in event_keys if key in chosen), None)
        if correlation is None:
            correlation = current or TraceParent.generate().trace_id
        for key in event_keys:  # later events of this batch about the same entities follow
            chosen.setdefault(key, correlation)
        stamped.append(event.model_copy(update={"correlationid": correlation}))
    return stamped


async def joined_correlation(
    *, order_id: str | None = None, case_id: str | None = None, store: Engine | None = None
) -> str | None:
    """The correlation new work about ``order_id`` / ``case_id`` runs under.

    The one the work was handed (a caller's ``traceparent``), else the order's (else the
    case's) known correlation, else the current trace's (None outside any trace).
    """
    handed = caller_correlation_id()
    if handed is not None:
        return handed
    known = await _lookup({e for e in (order_id, case_id) if e}, store or trace_store())
    for entity in (order_id, case_id):
        if entity and entity in known:
            return known[entity]
    return correlation_id()


class EventPublisher(Protocol):
    """What :class:`CorrelatingPublisher` wraps (``retailsync.ports.publisher``'s shape)."""

    async def publish(self, events: Sequence[CloudEvent]) -> object: ...


class CorrelatingPublisher:
    """An event publisher whose events join their order's trace (see :func:`correlate_events`).

    For sources that publish outside any request or delivery: the ERP's change capture, the
    CSV drop folder. ``CorrelatingPublisher(hub.bus)``.
    """

    def __init__(self, publisher: EventPublisher, *, store: Engine | None = None) -> None:
        self._publisher = publisher
        self._store = store

    async def publish(self, events: Sequence[CloudEvent]) -> object:
        return await self._publisher.publish(await correlate_events(events, store=self._store))
