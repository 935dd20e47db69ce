"""Drift reports in SQL: one row per run, drift rows streamed in batches, exception tickets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from retailsync.reconcile import tables as t
from retailsync.reconcile.corrections import DriftTicket
from retailsync.reconcile.errors import RunNotFound

__all__ = ["DriftRow", "ReportStore", "RunStatus", "RunSummary", "SqlTicketSink"]


class RunStatus:
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class RunSummary(BaseModel):
    """One reconciliation run: what was compared, what drift was found, what was done."""

    id: str
    job: str
    scope: str
    status: str
    trigger: str
    requested_by: str | None
    started_at: datetime
    finished_at: datetime | None
    keys_compared: int
    drift_count: int
    corrections: int
    exceptions: int
    counts: dict[str, int]
    error: str | None


@dataclass(frozen=True, slots=True)
class DriftRow:
    """One stored drift, as exported."""

    seq: int
    kind: str
    key: str
    action: str
    owner: str
    target: str | None
    expected: str | None
    observed: dict[str, str]
    detail: str
    correction_event_id: str | None
    exception_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "key": self.key,
            "action": self.action,
            "owner": self.owner,
            "target": self.target,
            "expected": self.expected,
            "observed": self.observed,
            "detail": self.detail,
            "correction_event_id": self.correction_event_id,
            "exception_id": self.exception_id,
        }


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _summary(row: sa.Row[Any]) -> RunSummary:
    return RunSummary(
        id=row.id,
        job=row.job,
        scope=row.scope,
        status=row.status,
        trigger=row.trigger,
        requested_by=row.requested_by,
        started_at=_aware(row.started_at),
        finished_at=_aware(row.finished_at),
        keys_compared=row.keys_compared,
        drift_count=row.drift_count,
        corrections=row.corrections,
        exceptions=row.exceptions,
        counts=json.loads(row.counts),
        error=row.error,
    )


class ReportStore:
    """Reads and writes drift reports through a SQLAlchemy engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def start_run(
        self,
        *,
        run_id: str,
        job: str,
        scope: str,
        trigger: str,
        requested_by: str | None,
        started_at: datetime,
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                t.runs.insert().values(
                    id=run_id,
                    job=job,
                    scope=scope,
                    status=RunStatus.RUNNING,
                    trigger=trigger,
                    requested_by=requested_by,
                    started_at=started_at,
                    keys_compared=0,
                    drift_count=0,
                    corrections=0,
                    exceptions=0,
                    counts="{}",
                )
            )

    def add_drifts(self, run_id: str, rows: Sequence[DriftRow], *, keys_compared: int) -> None:
        """Append a batch of drift rows and the progress so far, in one transaction."""
        with self.engine.begin() as connection:
            if rows:
                connection.execute(
                    t.drifts.insert(),
                    [
                        {
                            "run_id": run_id,
                            "seq": row.seq,
                            "kind": row.kind,
                            "key": row.key[:300],
                            "action": row.action,
                            "owner": row.owner,
                            "target": row.target,
                            "expected": row.expected,
                            "observed": json.dumps(row.observed, sort_keys=True),
                            "detail": row.detail,
                            "correction_event_id": row.correction_event_id,
                            "exception_id": row.exception_id,
                        }
                        for row in rows
                    ],
                )
            connection.execute(
                t.runs.update()
                .where(t.runs.c.id == run_id)
                .values(keys_compared=keys_compared, drift_count=t.runs.c.drift_count + len(rows))
            )

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        keys_compared: int,
        drift_count: int,
        corrections: int,
        exceptions: int,
        counts: dict[str, int],
        finished_at: datetime,
        error: str | None = None,
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                t.runs.update()
                .where(t.runs.c.id == run_id)
                .values(
                    status=status,
                    keys_compared=keys_compared,
                    drift_count=drift_count,
                    corrections=corrections,
                    exceptions=exceptions,
                    counts=json.dumps(counts, sort_keys=True),
                    finished_at=finished_at,
                    error=error,
                )
            )

    def get_run(self, run_id: str) -> RunSummary:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(t.runs).where(t.runs.c.id == run_id)).first()
        if row is None:
            raise RunNotFound(run_id)
        return _summary(row)

    def list_runs(self, *, job: str | None = None, limit: int = 50) -> list[RunSummary]:
        query = sa.select(t.runs).order_by(t.runs.c.started_at.desc(), t.runs.c.id.desc())
        if job is not None:
            query = query.where(t.runs.c.job == job)
        with self.engine.connect() as connection:
            return [_summary(row) for row in connection.execute(query.limit(limit))]

    def running(self, job: str, scope: str) -> str | None:
        """The id of a run of ``job``/``scope`` still marked running, if any."""
        with self.engine.connect() as connection:
            return connection.execute(
                sa.select(t.runs.c.id).where(
                    t.runs.c.job == job,
                    t.runs.c.scope == scope,
                    t.runs.c.status == RunStatus.RUNNING,
                )
            ).scalar()

    def iter_drifts(self, run_id: str, *, page_size: int = 1000) -> Iterator[DriftRow]:
        """Every drift row of a run in order, read a page at a time."""
        self.get_run(run_id)
        last = -1
        while True:
            with self.engine.connect() as connection:
                rows = connection.execute(
                    sa.select(t.drifts)
                    .where(t.drifts.c.run_id == run_id, t.drifts.c.seq > last)
                    .order_by(t.drifts.c.seq)
                    .limit(page_size)
                ).all()
            for row in rows:
                yield DriftRow(
                    seq=row.seq,
                    kind=row.kind,
                    key=row.key,
                    action=row.action,
                    owner=row.owner,
                    target=row.target,
                    expected=row.expected,
                    observed=json.loads(row.observed),
                    detail=row.detail,
                    correction_event_id=row.correction_event_id,
                    exception_id=row.exception_id,
                )
            if len(rows) < page_size:
                return
            last = rows[-1].seq


class SqlTicketSink:
    """Keeps exception tickets in ``reconcile_exceptions``: one row per ticket id.

    A ticket seen again by a later run only moves ``last_run_id``; a person's status
    (resolved, discarded) is kept.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    async def __call__(self, tickets: Sequence[DriftTicket]) -> None:
        await asyncio.to_thread(self.record, tickets)

    def record(self, batch: Sequence[DriftTicket]) -> int:
        """Store the tickets; returns how many were new."""
        new = 0
        with self.engine.begin() as connection:
            for ticket in batch:
                updated = connection.execute(
                    t.tickets.update()
                    .where(t.tickets.c.id == ticket.id)
                    .values(last_run_id=ticket.run_id, updated_at=ticket.opened_at)
                ).rowcount
                if updated:
                    continue
                connection.execute(
                    t.tickets.insert().values(
                        id=ticket.id,
                        job=ticket.job,
                        scope=ticket.scope,
                        kind=ticket.kind,
                        key=ticket.key[:300],
                        assignee=ticket.assignee,
                        summary=ticket.summary,
                        observed=json.dumps(ticket.observed, sort_keys=True),
                        status="open",
                        first_run_id=ticket.run_id,
                        last_run_id=ticket.run_id,
                        created_at=ticket.opened_at,
                        updated_at=ticket.opened_at,
                    )
                )
                new += 1
        return new

    def open_tickets(self) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(t.tickets).where(t.tickets.c.status == "open").order_by(t.tickets.c.id)
            ).all()
        return [dict(row._mapping) for row in rows]
