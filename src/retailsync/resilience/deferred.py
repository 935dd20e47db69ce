"""The durable queue of writes that could not be sent while a downstream was failing.

Rows are claimed with a status column and a claim token (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL), so each write is sent by one worker at a time; it keeps its idempotency key, so
a resend after a crash is absorbed by the downstream.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from retailsync.resilience.tables import deferred_writes

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DeferredWrite:
    id: int
    downstream: str
    operation: str
    idempotency_key: str
    payload: dict[str, Any]
    lane: str
    attempts: int
    claim_token: str
    created_at: datetime


class DeferredWriteQueue:
    """SQL-backed (SQLite or PostgreSQL) queue of deferred writes for every downstream."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self.engine = engine
        self._clock = clock

    def defer(
        self,
        *,
        downstream: str,
        operation: str,
        idempotency_key: str,
        payload: dict[str, Any],
        lane: str,
        reason: str,
        correlation_id: str | None = None,
    ) -> bool:
        """Store a write; False when the same idempotency key is already queued."""
        now = self._clock()
        values = {
            "downstream": downstream,
            "operation": operation,
            "idempotency_key": idempotency_key,
            "payload": payload,
            "lane": lane,
            "status": PENDING,
            "reason": reason[:2000],
            "attempts": 0,
            "correlation_id": correlation_id,
            "next_attempt_at": now,
            "created_at": now,
        }
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        statement = (
            insert(deferred_writes)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["downstream", "idempotency_key"])
        )
        with self.engine.begin() as connection:
            result = connection.execute(statement)
        return bool(result.rowcount)

    def claim(self, downstream: str, *, limit: int, lease_seconds: float) -> list[DeferredWrite]:
        """Take up to ``limit`` due writes (oldest first) for this worker."""
        now = self._clock()
        t = deferred_writes
        due = sa.or_(
            sa.and_(t.c.status == PENDING, t.c.next_attempt_at <= now),
            sa.and_(t.c.status == SENDING, t.c.claimed_until < now),
        )
        candidates = (
            sa.select(t.c.id)
            .where(t.c.downstream == downstream, due)
            .order_by(t.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        token = uuid.uuid4().hex
        statement = (
            sa.update(t)
            .where(t.c.id.in_(candidates.scalar_subquery()), due)
            .values(
                status=SENDING,
                claim_token=token,
                claimed_until=now + timedelta(seconds=lease_seconds),
            )
            .returning(
                t.c.id,
                t.c.downstream,
                t.c.operation,
                t.c.idempotency_key,
                t.c.payload,
                t.c.lane,
                t.c.attempts,
                t.c.created_at,
            )
        )
        with self.engine.begin() as connection:
            rows = connection.execute(statement).all()
        writes = [
            DeferredWrite(
                id=row.id,
                downstream=row.downstream,
                operation=row.operation,
                idempotency_key=row.idempotency_key,
                payload=row.payload,
                lane=row.lane,
                attempts=row.attempts,
                claim_token=token,
                created_at=row.created_at,
            )
            for row in rows
        ]
        return sorted(writes, key=lambda write: write.id)

    def _finish(self, write: DeferredWrite, **values: Any) -> bool:
        t = deferred_writes
        statement = (
            sa.update(t)
            .where(t.c.id == write.id, t.c.claim_token == write.claim_token, t.c.status == SENDING)
            .values(**values)
        )
        with self.engine.begin() as connection:
            return bool(connection.execute(statement).rowcount)

    def mark_sent(self, write: DeferredWrite) -> bool:
        return self._finish(
            write,
            status=SENT,
            attempts=write.attempts + 1,
            sent_at=self._clock(),
            claim_token=None,
            claimed_until=None,
            last_error=None,
        )

    def mark_failed(self, write: DeferredWrite, error: str) -> bool:
        """A business refusal: the write stays for a person to resolve (never resent)."""
        return self._finish(
            write,
            status=FAILED,
            attempts=write.attempts + 1,
            last_error=error[:2000],
            claim_token=None,
            claimed_until=None,
        )

    def release(
        self, write: DeferredWrite, *, error: str | None = None, backoff_seconds: float = 0.0
    ) -> bool:
        """Put a claimed write back; ``error`` counts an attempt, ``None`` means not tried."""
        values: dict[str, Any] = {
            "status": PENDING,
            "claim_token": None,
            "claimed_until": None,
            "next_attempt_at": self._clock() + timedelta(seconds=backoff_seconds),
        }
        if error is not None:
            values["attempts"] = write.attempts + 1
            values["last_error"] = error[:2000]
        return self._finish(write, **values)

    def depth(self, downstream: str) -> dict[str, int]:
        """How many writes are in each status for ``downstream``."""
        t = deferred_writes
        statement = (
            sa.select(t.c.status, sa.func.count())
            .where(t.c.downstream == downstream)
            .group_by(t.c.status)
        )
        with self.engine.connect() as connection:
            counts = {status: int(count) for status, count in connection.execute(statement)}
        return {status: counts.get(status, 0) for status in (PENDING, SENDING, SENT, FAILED)}
