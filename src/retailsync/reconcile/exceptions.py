"""Drift a person must decide, put where operators look: the bus exception queue.

:class:`ExceptionQueueTicketSink` records each ticket twice, both idempotent on the ticket id:
in ``reconcile_exceptions`` (the ticket record: first and last run that saw it) and as an
exception-queue entry of system ``reconcile`` (subscriber ``intake:reconcile``, classified
``business``), which the console and ``retailsync exceptions`` list, resolve and discard. A
ticket seen again by a later run with the same figures keeps its one queue entry; a resolved
entry is not reopened by the same figures.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import sqlalchemy as sa

from retailsync.bus.intake import record_intake_failure
from retailsync.reconcile.corrections import DriftTicket
from retailsync.reconcile.store import SqlTicketSink

__all__ = ["EXCEPTION_SYSTEM", "ExceptionQueueTicketSink", "queue_entry_reason"]

EXCEPTION_SYSTEM = "reconcile"


def queue_entry_reason(ticket: DriftTicket) -> str:
    """The one line an operator reads in the exception queue."""
    return f"[{ticket.kind}] for {ticket.assignee}: {ticket.summary}"


class ExceptionQueueTicketSink:
    """The default ticket sink: ``reconcile_exceptions`` plus the bus exception queue."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.table = SqlTicketSink(engine)

    async def __call__(self, tickets: Sequence[DriftTicket]) -> None:
        await asyncio.to_thread(self.record, tickets)

    def record(self, tickets: Sequence[DriftTicket]) -> int:
        """Store the tickets; returns how many exception-queue entries are new."""
        self.table.record(tickets)
        new = 0
        for ticket in tickets:
            raw = json.dumps(
                {
                    "ticket_id": ticket.id,
                    "job": ticket.job,
                    "scope": ticket.scope,
                    "run_id": ticket.run_id,
                    "kind": ticket.kind,
                    "key": ticket.key,
                    "assignee": ticket.assignee,
                    "observed": ticket.observed,
                    "report": f"retailsync reconcile report {ticket.run_id}",
                },
                sort_keys=True,
            )
            if record_intake_failure(
                self.engine,
                EXCEPTION_SYSTEM,
                reference=ticket.id,
                reason=queue_entry_reason(ticket),
                raw=raw,
                correlation_id=ticket.run_id,
            ):
                new += 1
        return new
