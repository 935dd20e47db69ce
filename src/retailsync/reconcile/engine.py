"""One reconciliation run: merge the sources, classify drift, store the report, act on it.

The run streams: pages come in from each source, groups of one key go through the job's pure
classifier, and every ``batch_size`` drifts the hub publishes the corrections (derived event
ids), hands the exceptions to the injected ticket sink and appends the drift rows to the
report. Memory stays bounded by the page and batch sizes, whatever the number of keys.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from retailsync.domain.events import CloudEvent
from retailsync.ports.publisher import EventPublisher
from retailsync.reconcile.corrections import DriftTicket, correction_event, ticket_for
from retailsync.reconcile.drift import (
    ERP,
    PAYMENTS,
    SERVICE_DESK,
    STOREFRONT,
    WMS,
    Classifier,
    Drift,
    classify_orders,
    classify_refunds,
    classify_stock,
    stock_agreement,
)
from retailsync.reconcile.errors import RunAlreadyActive, SourceNotConfigured, UnknownJob
from retailsync.reconcile.merge import Agreement, merge_by_key
from retailsync.reconcile.policy import Action, ReconcilePolicy
from retailsync.reconcile.store import DriftRow, ReportStore, RunStatus, RunSummary

__all__ = [
    "JOBS",
    "Job",
    "ProgressCallback",
    "TicketSink",
    "job_named",
    "run_reconciliation",
]

PUBLISH_BATCH = 500


@dataclass(frozen=True, slots=True)
class Job:
    """A kind of reconciliation: the systems it compares and its classifier."""

    name: str
    sources: tuple[str, ...]
    classify: Classifier
    description: str
    agreement: Callable[[ReconcilePolicy], Agreement] | None = None
    """Builds a fast "no drift here" check for keys every source holds once (optional)."""


JOBS: Mapping[str, Job] = {
    "inventory": Job(
        "inventory",
        (ERP, WMS, STOREFRONT),
        classify_stock,
        "ERP stock vs warehouse on hand vs storefront levels, per SKU and location",
        stock_agreement,
    ),
    "orders": Job(
        "orders",
        (STOREFRONT, ERP),
        classify_orders,
        "storefront orders vs ERP sales: missing, status, amount",
    ),
    "refunds": Job(
        "refunds",
        (SERVICE_DESK, ERP, PAYMENTS),
        classify_refunds,
        "service-desk refund decisions vs ERP credit notes vs payment refunds",
    ),
}


def job_named(name: str) -> Job:
    try:
        return JOBS[name]
    except KeyError:
        raise UnknownJob(name, list(JOBS)) from None


class TicketSink(Protocol):
    """Opens (or finds again) exceptions for a person, a batch at a time; idempotent on id."""

    def __call__(self, tickets: Sequence[DriftTicket]) -> Awaitable[None]: ...


ProgressCallback = Callable[[int, int], None]
"""``progress(keys_compared, drifts_found)`` after each batch."""


def _row(seq: int, drift: Drift, event: CloudEvent | None, ticket: DriftTicket | None) -> DriftRow:
    return DriftRow(
        seq=seq,
        kind=drift.kind.value,
        key=drift.key,
        action=drift.action.value,
        owner=drift.owner,
        target=drift.target,
        expected=drift.expected,
        observed=dict(drift.observed),
        detail=drift.detail,
        correction_event_id=event.id if event is not None else None,
        exception_id=ticket.id if ticket is not None else None,
    )


class _Run:
    def __init__(
        self,
        *,
        run_id: str,
        scope: str,
        store: ReportStore,
        publisher: EventPublisher | None,
        open_exception: TicketSink | None,
        now: datetime,
        dry_run: bool,
    ) -> None:
        self.run_id = run_id
        self.scope = scope
        self.store = store
        self.publisher = publisher
        self.open_exception = open_exception
        self.now = now
        self.dry_run = dry_run
        self.pending: list[Drift] = []
        self.seq = 0
        self.keys = 0
        self.counts: Counter[str] = Counter()
        self.corrections = 0
        self.exceptions = 0

    async def flush(self) -> None:
        drifts, self.pending = self.pending, []
        rows: list[DriftRow] = []
        events: list[CloudEvent] = []
        tickets: list[DriftTicket] = []
        for drift in drifts:
            self.seq += 1
            event = correction_event(self.scope, drift, now=self.now, correlationid=self.run_id)
            ticket = ticket_for(self.scope, self.run_id, drift, now=self.now)
            if event is not None:
                events.append(event)
            if ticket is not None:
                tickets.append(ticket)
            rows.append(_row(self.seq, drift, event, ticket))
            self.counts[drift.kind.value] += 1
        if not self.dry_run:
            if events:
                if self.publisher is None:
                    raise SourceNotConfigured("reconcile", "event publisher")
                for start in range(0, len(events), PUBLISH_BATCH):
                    await self.publisher.publish(events[start : start + PUBLISH_BATCH])
            if tickets and self.open_exception is not None:
                await self.open_exception(tickets)
        self.corrections += len(events)
        self.exceptions += len(tickets)
        await asyncio.to_thread(self.store.add_drifts, self.run_id, rows, keys_compared=self.keys)


async def run_reconciliation(
    job: Job | str,
    sources: Mapping[str, AsyncIterable[Sequence[Any]]],
    *,
    store: ReportStore,
    publisher: EventPublisher | None,
    open_exception: TicketSink | None,
    policy: ReconcilePolicy | None = None,
    scope: str | None = None,
    trigger: str = "manual",
    requested_by: str | None = None,
    progress: ProgressCallback | None = None,
    batch_size: int = 1000,
    now: datetime | None = None,
    dry_run: bool = False,
    run_id: str | None = None,
) -> RunSummary:
    """Run ``job`` over ``sources`` (one async iterable of sorted pages per system name).

    ``scope`` names what is reconciled (default: the job name); correction and ticket ids
    derive from it, so two runs of the same scope never double a correction. With
    ``dry_run`` the report is stored but nothing is published or opened. Returns the stored
    run summary; a failure marks the run failed (with the error) and is raised again.
    """
    job = job_named(job) if isinstance(job, str) else job
    missing = [name for name in job.sources if name not in sources]
    if missing:
        raise SourceNotConfigured(job.name, missing[0])
    policy = policy or ReconcilePolicy()
    scope = scope or job.name
    now = now or datetime.now(UTC)
    active = await asyncio.to_thread(store.running, job.name, scope)
    if active is not None:
        raise RunAlreadyActive(job.name, active)
    run_id = run_id or f"rcn_{uuid.uuid4().hex[:24]}"
    await asyncio.to_thread(
        store.start_run,
        run_id=run_id,
        job=job.name,
        scope=scope,
        trigger=trigger,
        requested_by=requested_by,
        started_at=now,
    )
    run = _Run(
        run_id=run_id,
        scope=scope,
        store=store,
        publisher=publisher,
        open_exception=open_exception,
        now=now,
        dry_run=dry_run,
    )
    classify = job.classify
    ordered = {name: sources[name] for name in job.sources}
    try:
        agree = job.agreement(policy) if job.agreement is not None else None
        async for groups in merge_by_key(ordered, batch_size=batch_size, agree=agree):
            pending = run.pending
            for group in groups:
                found = classify(group, policy, now)
                if found:
                    pending.extend(found)
            run.keys += groups.compared
            if len(pending) >= batch_size:
                await run.flush()
            if progress is not None:
                progress(run.keys, run.seq + len(run.pending))
        await run.flush()
    except BaseException as exc:
        await asyncio.to_thread(
            store.finish_run,
            run_id,
            status=RunStatus.FAILED,
            keys_compared=run.keys,
            drift_count=run.seq,
            corrections=run.corrections,
            exceptions=run.exceptions,
            counts=dict(run.counts),
            finished_at=datetime.now(UTC),
            error=f"{type(exc).__name__}: {exc}"[:4000],
        )
        raise
    await asyncio.to_thread(
        store.finish_run,
        run_id,
        status=RunStatus.COMPLETED,
        keys_compared=run.keys,
        drift_count=run.seq,
        corrections=run.corrections,
        exceptions=run.exceptions,
        counts=dict(run.counts),
        finished_at=datetime.now(UTC),
    )
    if progress is not None:
        progress(run.keys, run.seq)
    return await asyncio.to_thread(store.get_run, run_id)


def actions_of(summary: RunSummary) -> dict[str, int]:
    """How many drifts were corrected, sent to people and only reported."""
    return {
        Action.CORRECT.value: summary.corrections,
        Action.EXCEPTION.value: summary.exceptions,
        Action.REPORT.value: summary.drift_count - summary.corrections - summary.exceptions,
    }
