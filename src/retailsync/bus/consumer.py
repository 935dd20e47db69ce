"""The consumer side every backend shares: inbox, entity versions and the exception queue.

A delivery runs the handler inside one SQL transaction (a savepoint when batched) that first
inserts the idempotent-consumer record (``bus_inbox``); a second delivery of the same event to
the same subscriber finds the record and skips the handler, and two concurrent deliveries
serialize on the record's primary key. Effects a handler writes through ``ctx.connection``
commit or roll back with that record, so they are applied exactly once.

Live delivery goes through :meth:`Consumer.deliver_batch` (both backends): one statement
claims the inbox records of a whole batch, handlers run one after another in the batch's
order, each handler's SQL effects in a savepoint opened only when it first touches
``ctx.connection``, and one statement gives back the records of events that failed or were
held back. The per-batch statements go straight to the driver (no SQLAlchemy parameter
processing per row), see :mod:`retailsync.bus.driver`.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from retailsync.bus import driver
from retailsync.bus import tables as t
from retailsync.bus.backend import (
    AttemptRecord,
    BulkOutcome,
    BusOptions,
    Classification,
    ExceptionAction,
    ExceptionEntry,
    ExceptionFilter,
    ExceptionSelection,
    ExceptionStatus,
    HealthProbe,
    StoredEvent,
    Subscription,
)
from retailsync.bus.errors import (
    ExceptionNotFound,
    classify,
    downstream_of,
    qualified_name,
)
from retailsync.domain.events import CloudEvent
from retailsync.observability import metrics as hub_metrics

AUTO_RETRY_ACTOR = "system:auto-retry"
SYSTEM_ACTOR = "system"
_CHUNK = 100


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; everything the bus stores is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def dedup_hash(event: CloudEvent) -> str:
    """A fixed-size key for ``source`` + ``id`` (the inbox's half of the primary key)."""
    return hashlib.blake2b(event.dedup_key.encode(), digest_size=20).hexdigest()


def version_number(version: int | datetime) -> int:
    if isinstance(version, datetime):
        moment = as_utc(version)
        return int(moment.timestamp()) * 1_000_000 + moment.microsecond
    return int(version)


def upsert_insert(conn: sa.Connection, table: sa.Table) -> Any:
    """A dialect ``INSERT`` that supports ``on_conflict_do_*`` (PostgreSQL or SQLite)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def register_subscription(conn: sa.Connection, subscription: Subscription, now: datetime) -> None:
    """Record (or refresh) a subscription's row; an upsert, since several workers may start
    at once against the same database."""
    filter_json = json.dumps(
        {
            "types": list(subscription.filter.types),
            "subjects": list(subscription.filter.subjects),
        }
    )
    register = upsert_insert(conn, t.subscriptions).values(
        name=subscription.name,
        filter=filter_json,
        downstream=subscription.downstream,
        created_at=now,
        updated_at=now,
    )
    conn.execute(
        register.on_conflict_do_update(
            index_elements=[t.subscriptions.c.name],
            set_={
                "filter": register.excluded.filter,
                "downstream": register.excluded.downstream,
                "updated_at": register.excluded.updated_at,
            },
        )
    )


class DeliveryStatus(StrEnum):
    HANDLED = "handled"
    DUPLICATE = "duplicate"  # the inbox already had it: handler not called
    STALE = "stale"  # handler ran, saw an older entity version and skipped it
    FAILED = "failed"
    HELD = "held"  # deliver_batch: its key is blocked (parked); handler not called
    DEFERRED = "deferred"  # deliver_batch: the batch ran out of time first; not attempted


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    status: DeliveryStatus
    error: BaseException | None = None
    classification: Classification | None = None


current_delivery: ContextVar[SqlDeliveryContext | None] = ContextVar(
    "retailsync_bus_current_delivery", default=None
)
"""The delivery whose handler is running (lets SQLite publish inside its transaction)."""


class SqlDeliveryContext:
    """:class:`~retailsync.bus.backend.DeliveryContext` backed by the delivery transaction.

    One is built per delivered event: slots keep it to one allocation without an instance
    dict (less work for the cyclic garbage collector, which a delivery batch already keeps
    busy)."""

    __slots__ = (
        "_attempt",
        "_connection",
        "_event",
        "_forced",
        "_in_savepoint",
        "_replay",
        "_savepoint",
        "_savepoints",
        "_sequence",
        "_subscriber",
        "stale",
    )

    def __init__(
        self,
        connection: sa.Connection,
        subscriber: str,
        event: CloudEvent,
        *,
        sequence: int,
        attempt: int,
        forced: bool,
        replay: bool,
        savepoints: driver.HandlerSavepoints | None = None,
    ) -> None:
        """With ``savepoints`` (a batch): open a savepoint on first use of the connection, so
        a handler that never touches SQL costs none (see :meth:`finish`). Without: the
        caller isolates the delivery itself."""
        self._connection = connection
        self._savepoints = savepoints
        self._savepoint: Any = None
        self._in_savepoint = False
        self._subscriber = subscriber
        self._event = event
        self._sequence = sequence
        self._attempt = attempt
        self._forced = forced
        self._replay = replay
        self.stale = False

    @property
    def subscriber(self) -> str:
        return self._subscriber

    @property
    def attempt(self) -> int:
        return self._attempt

    @property
    def sequence(self) -> int:
        return self._sequence

    @property
    def forced(self) -> bool:
        return self._forced

    @property
    def replay(self) -> bool:
        return self._replay

    @property
    def connection(self) -> sa.Connection:
        if self._savepoints is not None and not self._in_savepoint:
            self._savepoint = self._savepoints.begin()
            self._in_savepoint = True
        return self._connection

    @property
    def event(self) -> CloudEvent:
        return self._event

    def finish(self, success: bool) -> None:
        """Keep (success) or roll back the effects in the lazily opened savepoint, if any."""
        if self._savepoints is not None and self._in_savepoint:
            self._in_savepoint = False
            self._savepoints.end(self._savepoint, success)

    @property
    def idempotency_key(self) -> str:
        return f"{self._subscriber}:{self._event.source}:{self._event.id}"

    def apply_if_newer(self, entity_key: str, version: int | datetime | None = None) -> bool:
        if version is None:
            version = (
                self._event.entityversion
                if self._event.entityversion is not None
                else self._event.time
            )
        number = version_number(version)
        table = t.entity_versions
        conn = self.connection
        stmt = upsert_insert(conn, table).values(
            subscriber=self._subscriber, entity_key=entity_key, version=number, updated_at=utcnow()
        )
        newer = (
            table.c.version <= stmt.excluded.version
            if self._forced
            else table.c.version < stmt.excluded.version
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.subscriber, table.c.entity_key],
            set_={"version": stmt.excluded.version, "updated_at": stmt.excluded.updated_at},
            where=newer,
        ).returning(table.c.version)
        applied = conn.execute(stmt).first() is not None
        if not applied:
            self.stale = True
        return applied


INBOX_COLUMNS: driver.Columns = (
    ("subscriber", "varchar"),
    ("dedup_hash", "varchar"),
    ("sequence", "bigint"),
    ("outcome", "varchar"),
    ("attempt", "integer"),
    ("handled_at", "timestamptz"),
)
_CLAIM = "ON CONFLICT (subscriber, dedup_hash) DO NOTHING"
_CLAIM_RETURNING = f"{_CLAIM} RETURNING subscriber, dedup_hash"
_CLAIM_SAVEPOINT = "retailsync_claim"
_CLAIM_IN_THREAD = 100  # records: claim bigger batches in a worker thread


def claim_inbox(conn: sa.Connection, rows: Sequence[tuple[Any, ...]]) -> set[tuple[str, str]]:
    """Insert inbox records (tuples in :data:`INBOX_COLUMNS` order, ``handled_at`` converted
    with :func:`retailsync.bus.driver.db_datetime`) in one statement; returns the
    (subscriber, dedup hash) pairs inserted now — the others were recorded before.

    SQLite first tries without ``RETURNING`` inside a savepoint: when every row went in (the
    usual case: records exist ahead of live delivery only after a replay) all are claimed;
    otherwise it rolls back to the savepoint and inserts again with ``RETURNING``.
    """
    if not rows:
        return set()
    if not driver.is_postgres(conn):
        driver.execute(conn, f"SAVEPOINT {_CLAIM_SAVEPOINT}")
        inserted = driver.sqlite_insert_count(conn, t.inbox.name, INBOX_COLUMNS, rows, _CLAIM)
        if inserted == len(rows):
            driver.execute(conn, f"RELEASE SAVEPOINT {_CLAIM_SAVEPOINT}")
            return {(str(row[0]), str(row[1])) for row in rows}
        driver.execute(conn, f"ROLLBACK TO SAVEPOINT {_CLAIM_SAVEPOINT}")
        driver.execute(conn, f"RELEASE SAVEPOINT {_CLAIM_SAVEPOINT}")
    found = driver.insert_rows(conn, t.inbox.name, INBOX_COLUMNS, rows, _CLAIM_RETURNING)
    return {(str(row[0]), str(row[1])) for row in found}


def release_inbox(conn: sa.Connection, records: Sequence[tuple[str, str]]) -> None:
    """Delete the inbox records (subscriber, dedup hash) of this transaction's failed or
    held-back deliveries (PostgreSQL: one statement for all, as a batch deferred at its time
    limit may release hundreds; SQLite: a statement each, no round trips)."""
    if not records:
        return
    if driver.is_postgres(conn):
        driver.execute(
            conn,
            f"DELETE FROM {t.inbox.name} WHERE (subscriber, dedup_hash) IN "
            f"(SELECT * FROM unnest(%b::varchar[], %b::varchar[]))",
            [list(column) for column in zip(*records, strict=True)],
        )
        return
    driver.executemany(
        conn, f"DELETE FROM {t.inbox.name} WHERE subscriber = ? AND dedup_hash = ?", records
    )


def mark_inbox(conn: sa.Connection, records: Sequence[tuple[str, str]], outcome: str) -> None:
    """Set the ``outcome`` of the inbox records (subscriber, dedup hash) (one statement on
    PostgreSQL, see :func:`release_inbox`)."""
    if not records:
        return
    if driver.is_postgres(conn):
        driver.execute(
            conn,
            f"UPDATE {t.inbox.name} AS inbox SET outcome = %b "
            f"FROM unnest(%b::varchar[], %b::varchar[]) AS record(subscriber, dedup_hash) "
            f"WHERE inbox.subscriber = record.subscriber "
            f"AND inbox.dedup_hash = record.dedup_hash",
            [outcome, *(list(column) for column in zip(*records, strict=True))],
        )
        return
    driver.executemany(
        conn,
        f"UPDATE {t.inbox.name} SET outcome = ? WHERE subscriber = ? AND dedup_hash = ?",
        [(outcome, subscriber, digest) for subscriber, digest in records],
    )


@dataclass(slots=True, eq=False)
class BatchItem:
    """One event of a :meth:`Consumer.deliver_batch` batch, and what happened to it.

    ``key`` is the partition key: order is kept per (subscription, key), a failure that
    blocks the key holds back the key's later events of the batch; ``partition`` is the
    backend's shard (SQL) or partition (JetStream) of the key. ``status``, ``error``
    and ``classification`` are filled in by ``deliver_batch``.
    """

    subscription: Subscription
    stored: StoredEvent
    key: str
    attempt: int = 1
    partition: int = 0  # the backend's shard / partition of ``key`` (for parking)
    status: DeliveryStatus | None = None
    error: BaseException | None = None
    classification: Classification | None = None


@dataclass(frozen=True, slots=True)
class HandlerTime:
    """What the handlers of one :meth:`Consumer.deliver_batch` took: how many ran, and the
    wall time from the first to the end of the last (seconds)."""

    attempted: int = 0
    seconds: float = 0.0


FailureHook = Callable[[sa.Connection, BatchItem], bool]
"""Called in the batch's transaction for an item whose handler raised (its SQL effects are
rolled back, ``error`` and ``classification`` are set); parks it or records the exception and
returns True when its key is now blocked (later events of the key in the batch are HELD)."""


class Consumer:
    """Runs handlers under the inbox; records exhausted deliveries as exception entries."""

    def __init__(self, engine: sa.Engine, options: BusOptions) -> None:
        self.engine = engine
        self.options = options

    async def deliver_batch(
        self,
        conn: sa.Connection,
        items: Sequence[BatchItem],
        *,
        blocked: set[tuple[str, str]],
        on_failure: FailureHook,
        claim_off_loop: bool | None = None,
        deadline: float | None = None,
        limit: int | None = None,
    ) -> HandlerTime:
        """Deliver ``items`` in order inside ``conn``'s open transaction (live delivery);
        returns how many handlers ran and how long they took.

        One statement claims the inbox records of every item whose (subscription name, key)
        is not in ``blocked``; an item not claimed was handled before (a replay ran ahead, a
        redelivery after the transaction committed) and becomes DUPLICATE without a handler
        call. Handlers run one after another; the SQL effects of each sit in a savepoint
        opened on its first use of ``ctx.connection`` and rolled back when it raises. Items
        of a blocked key become HELD (``blocked`` grows when ``on_failure`` says so). The
        records of FAILED and HELD items are deleted again before this returns, so they
        commit only for events whose handler succeeded. ``claim_off_loop``: run the claim in
        a worker thread (default: for batches of 100 events or more). ``deadline`` (a
        ``time.monotonic()`` value): once it has passed, the items not yet attempted (never
        the first) become DEFERRED (records released, no handler call); the caller delivers
        them again later. ``limit``: the items from this position on (never the first) are
        DEFERRED at once, without claiming their records (the caller's estimate of how many
        handlers fit before ``deadline``).
        """
        if not items:
            return HandlerTime()
        cut = len(items) if limit is None else max(1, limit)
        for item in items[cut:]:
            item.status = DeliveryStatus.DEFERRED
        items = items[:cut]
        stamp = driver.db_datetime(conn, utcnow())
        handled = DeliveryStatus.HANDLED.value
        digests = [dedup_hash(item.stored.event) for item in items]
        claims = [
            (item.subscription.name, digest, item.stored.sequence, handled, item.attempt, stamp)
            for item, digest in zip(items, digests, strict=True)
            if (item.subscription.name, item.key) not in blocked
        ]
        if claim_off_loop is None:
            claim_off_loop = len(claims) >= _CLAIM_IN_THREAD
        if claim_off_loop and claims:
            # other tasks of the event loop run while the database works
            claimed = await driver.off_loop(claim_inbox, conn, claims)
        else:  # a round trip: less than handing it to a thread and back
            claimed = claim_inbox(conn, claims) if claims else set()
        release: list[tuple[str, str]] = []
        stale: list[tuple[str, str]] = []
        savepoints = driver.HandlerSavepoints(conn)
        out_of_time = False
        attempted = 0
        started = time.perf_counter()
        for position, (item, digest) in enumerate(zip(items, digests, strict=True)):
            name = item.subscription.name
            record = (name, digest)
            skipped: DeliveryStatus | None = None
            if out_of_time or (
                deadline is not None
                and position  # the first item always goes: every batch makes progress
                and time.monotonic() >= deadline
            ):
                out_of_time = True
                skipped = DeliveryStatus.DEFERRED
            elif (name, item.key) in blocked:
                skipped = DeliveryStatus.HELD
            if skipped is not None:  # not attempted: its record must not commit
                item.status = skipped
                if record in claimed:
                    claimed.discard(record)
                    release.append(record)
                continue
            if record not in claimed:
                item.status = DeliveryStatus.DUPLICATE
                continue
            claimed.discard(record)  # a second copy in the same batch is a duplicate
            attempted += 1
            error, was_stale = await self.run_handler(conn, item, savepoints=savepoints)
            if error is None:
                item.status = DeliveryStatus.STALE if was_stale else DeliveryStatus.HANDLED
                if was_stale:
                    stale.append(record)
                continue
            item.status = DeliveryStatus.FAILED
            item.error = error
            item.classification = classify(error)
            release.append(record)
            if on_failure(conn, item):
                blocked.add((name, item.key))
        elapsed = time.perf_counter() - started
        savepoints.finish()
        if release:
            release_inbox(conn, release)
        if stale:
            mark_inbox(conn, stale, DeliveryStatus.STALE.value)
        return HandlerTime(attempted, elapsed)

    async def run_handler(
        self,
        conn: sa.Connection,
        item: BatchItem,
        *,
        forced: bool = False,
        savepoints: driver.HandlerSavepoints | None = None,
    ) -> tuple[BaseException | None, bool]:
        """Run ``item``'s handler once in ``conn``'s transaction, its SQL effects in a lazily
        opened savepoint (of ``savepoints``, the batch's; without, one of its own, released
        before this returns). Returns (the error or None, whether it saw a stale version)."""
        own = savepoints is None
        chain = driver.HandlerSavepoints(conn) if savepoints is None else savepoints
        stored = item.stored
        ctx = SqlDeliveryContext(
            conn,
            item.subscription.name,
            stored.event,
            sequence=stored.sequence,
            attempt=item.attempt,
            forced=forced,
            replay=False,
            savepoints=chain,
        )
        token = current_delivery.set(ctx)
        try:
            await item.subscription.handler(stored.event, ctx)
        except Exception as exc:
            ctx.finish(success=False)
            if own:
                chain.finish()
            return exc, False
        finally:
            current_delivery.reset(token)
        ctx.finish(success=True)
        if own:
            chain.finish()
        return None, ctx.stale

    async def deliver(
        self,
        subscription: Subscription,
        stored: StoredEvent,
        *,
        attempt: int,
        forced: bool = False,
        replay: bool = False,
    ) -> DeliveryResult:
        """One delivery in its own transaction (committed before this returns)."""
        with self.engine.connect() as conn:
            with conn.begin():
                result = await self.deliver_in(
                    conn, subscription, stored, attempt=attempt, forced=forced, replay=replay
                )
            return result

    async def deliver_in(
        self,
        conn: sa.Connection,
        subscription: Subscription,
        stored: StoredEvent,
        *,
        attempt: int,
        forced: bool = False,
        replay: bool = False,
    ) -> DeliveryResult:
        """One delivery inside ``conn``'s open transaction, isolated by a savepoint."""
        event = stored.event
        savepoint = conn.begin_nested()
        try:
            key = dedup_hash(event)
            stmt = upsert_insert(conn, t.inbox).values(
                subscriber=subscription.name,
                dedup_hash=key,
                sequence=stored.sequence,
                outcome=DeliveryStatus.HANDLED.value,
                attempt=attempt,
                handled_at=utcnow(),
            )
            if forced:
                stmt = stmt.on_conflict_do_update(
                    index_elements=[t.inbox.c.subscriber, t.inbox.c.dedup_hash],
                    set_={"attempt": attempt, "handled_at": stmt.excluded.handled_at},
                )
            else:
                stmt = stmt.on_conflict_do_nothing(
                    index_elements=[t.inbox.c.subscriber, t.inbox.c.dedup_hash]
                )
            if conn.execute(stmt.returning(t.inbox.c.subscriber)).first() is None:
                savepoint.commit()
                return DeliveryResult(DeliveryStatus.DUPLICATE)
            ctx = SqlDeliveryContext(
                conn,
                subscription.name,
                event,
                sequence=stored.sequence,
                attempt=attempt,
                forced=forced,
                replay=replay,
            )
            token = current_delivery.set(ctx)
            try:
                await subscription.handler(event, ctx)
            finally:
                current_delivery.reset(token)
            if ctx.stale:
                conn.execute(
                    t.inbox.update()
                    .where(t.inbox.c.subscriber == subscription.name, t.inbox.c.dedup_hash == key)
                    .values(outcome=DeliveryStatus.STALE.value)
                )
            savepoint.commit()
            return DeliveryResult(DeliveryStatus.STALE if ctx.stale else DeliveryStatus.HANDLED)
        except Exception as exc:
            if savepoint.is_active:
                savepoint.rollback()
            return DeliveryResult(DeliveryStatus.FAILED, error=exc, classification=classify(exc))

    def record_exception(
        self,
        conn: sa.Connection,
        subscription: Subscription,
        stored: StoredEvent,
        history: Sequence[AttemptRecord],
        error: BaseException,
    ) -> int:
        """Create (or reopen) the exception entry for an exhausted delivery; returns its id."""
        event = stored.event
        classification = classify(error, exhausted=True)
        now = utcnow()
        table = t.exceptions
        existing = conn.execute(
            sa.select(table.c.id, table.c.history, table.c.manual_retry_count).where(
                table.c.subscriber == subscription.name,
                table.c.event_source == event.source,
                table.c.event_id == event.id,
            )
        ).first()
        values: dict[str, Any] = {
            "classification": classification.value,
            "error_type": qualified_name(error),
            "error_message": str(error)[:4000] or type(error).__name__,
            "system": downstream_of(error) or subscription.downstream,
            "updated_at": now,
        }
        if existing is None:
            result = conn.execute(
                table.insert()
                .values(
                    subscriber=subscription.name,
                    event_source=event.source,
                    event_id=event.id,
                    event_type=event.type,
                    partition_key=event.partitionkey or event.subject,
                    correlation_id=event.correlationid,
                    sequence=stored.sequence,
                    status=ExceptionStatus.OPEN.value,
                    history=_dump_history(history),
                    manual_retry_count=0,
                    envelope=event.model_dump_json(exclude_none=True),
                    created_at=now,
                    **values,
                )
                .returning(table.c.id)
            )
            hub_metrics.event_dead_lettered(event.type, subscription.name)
            return int(result.scalar_one())
        entry_id = int(existing.id)
        poisoned = existing.manual_retry_count >= self.options.max_manual_retries
        status = ExceptionStatus.PERMANENTLY_FAILED if poisoned else ExceptionStatus.OPEN
        conn.execute(
            table.update()
            .where(table.c.id == entry_id)
            .values(
                status=status.value,
                history=_dump_history([*_load_history(existing.history), *history]),
                **values,
            )
        )
        _audit(
            conn,
            entry_id,
            "permanently_failed" if poisoned else "reopen",
            SYSTEM_ACTOR,
            "redelivery failed again"
            + (f" after {existing.manual_retry_count} retries" if poisoned else ""),
        )
        return entry_id

    def mark_redelivered(self, conn: sa.Connection, exception_id: int) -> None:
        """The queued redelivery of an exception succeeded: the entry is resolved."""
        changed = conn.execute(
            t.exceptions.update()
            .where(
                t.exceptions.c.id == exception_id,
                t.exceptions.c.status == ExceptionStatus.RETRYING.value,
            )
            .values(status=ExceptionStatus.RESOLVED.value, updated_at=utcnow())
        ).rowcount
        if changed:
            _audit(conn, exception_id, "resolve", SYSTEM_ACTOR, "redelivery succeeded")


def attempt_record(
    attempt: int, error: BaseException, classification: Classification
) -> AttemptRecord:
    return AttemptRecord(
        attempt=attempt,
        at=utcnow(),
        error_type=qualified_name(error),
        message=str(error)[:1000] or type(error).__name__,
        classification=classification,
    )


def dump_attempts(history: Sequence[AttemptRecord]) -> str:
    return _dump_history(history)


def load_attempts(raw: str) -> list[AttemptRecord]:
    return _load_history(raw)


def _dump_history(history: Sequence[AttemptRecord]) -> str:
    return json.dumps(
        [
            {
                "attempt": h.attempt,
                "at": h.at.isoformat(),
                "error_type": h.error_type,
                "message": h.message,
                "classification": h.classification.value,
            }
            for h in history
        ]
    )


def _load_history(raw: str) -> list[AttemptRecord]:
    return [
        AttemptRecord(
            attempt=int(item["attempt"]),
            at=datetime.fromisoformat(item["at"]),
            error_type=item["error_type"],
            message=item["message"],
            classification=Classification(item["classification"]),
        )
        for item in json.loads(raw or "[]")
    ]


def _audit(conn: sa.Connection, entry_id: int, action: str, actor: str, reason: str | None) -> None:
    conn.execute(
        t.exception_actions.insert().values(
            entry_id=entry_id, action=action, actor=actor, reason=reason, at=utcnow()
        )
    )


# --------------------------------------------------------------------------------------------
# The exception queue
# --------------------------------------------------------------------------------------------

Redeliver = Callable[[sa.Connection, Sequence[ExceptionEntry]], Awaitable[None]]
"""Makes the redelivery of ``entries`` durable inside (or before the commit of) ``conn``'s
transaction, in which the entries are being marked RETRYING."""


def glob_to_like(pattern: str) -> str:
    escaped = re.sub(r"([\\%_])", r"\\\1", pattern)
    return escaped.replace("*", "%").replace("?", "_")


def _where(filter: ExceptionFilter) -> list[sa.ColumnElement[bool]]:
    c = t.exceptions.c
    clauses: list[sa.ColumnElement[bool]] = []
    if filter.statuses:
        clauses.append(c.status.in_([s.value for s in filter.statuses]))
    if filter.subscriber is not None:
        clauses.append(c.subscriber == filter.subscriber)
    if filter.event_type is not None:
        clauses.append(c.event_type.like(glob_to_like(filter.event_type), escape="\\"))
    if filter.system is not None:
        clauses.append(c.system == filter.system)
    if filter.classification is not None:
        clauses.append(c.classification == filter.classification.value)
    if filter.older_than is not None:
        clauses.append(c.created_at < filter.older_than)
    if filter.newer_than is not None:
        clauses.append(c.created_at >= filter.newer_than)
    if filter.partition_key is not None:
        clauses.append(c.partition_key == filter.partition_key)
    if filter.correlation_id is not None:
        clauses.append(c.correlation_id == filter.correlation_id)
    return clauses


def _entry(row: sa.Row[Any], with_event: bool = False) -> ExceptionEntry:
    return ExceptionEntry(
        id=int(row.id),
        subscriber=row.subscriber,
        event_source=row.event_source,
        event_id=row.event_id,
        event_type=row.event_type,
        partition_key=row.partition_key,
        correlation_id=row.correlation_id,
        sequence=int(row.sequence),
        system=row.system,
        classification=Classification(row.classification),
        status=ExceptionStatus(row.status),
        error_type=row.error_type,
        error_message=row.error_message,
        history=tuple(_load_history(row.history)),
        manual_retry_count=int(row.manual_retry_count),
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        event=CloudEvent.model_validate_json(row.envelope) if with_event else None,
    )


class SqlExceptionQueue:
    """:class:`~retailsync.bus.backend.ExceptionQueue` on the SQL tables."""

    def __init__(self, engine: sa.Engine, options: BusOptions, redeliver: Redeliver) -> None:
        self.engine = engine
        self.options = options
        self._redeliver = redeliver

    async def list(
        self, filter: ExceptionFilter = ExceptionFilter(), *, limit: int = 100, offset: int = 0
    ) -> builtins.list[ExceptionEntry]:
        query = (
            sa.select(t.exceptions)
            .where(*_where(filter))
            .order_by(t.exceptions.c.id)
            .limit(limit)
            .offset(offset)
        )
        with self.engine.connect() as conn:
            return [_entry(row) for row in conn.execute(query)]

    async def count(self, filter: ExceptionFilter = ExceptionFilter()) -> int:
        query = sa.select(sa.func.count()).select_from(t.exceptions).where(*_where(filter))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    async def get(self, entry_id: int) -> ExceptionEntry:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.exceptions).where(t.exceptions.c.id == entry_id)).first()
        if row is None:
            raise ExceptionNotFound(entry_id)
        return _entry(row, with_event=True)

    async def actions(self, entry_id: int) -> builtins.list[ExceptionAction]:
        a = t.exception_actions
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(a).where(a.c.entry_id == entry_id).order_by(a.c.id))
            return [
                ExceptionAction(
                    entry_id=int(r.entry_id),
                    action=r.action,
                    actor=r.actor,
                    reason=r.reason,
                    at=as_utc(r.at),
                )
                for r in rows
            ]

    async def retry(
        self, selection: ExceptionSelection, *, actor: str, reason: str | None = None
    ) -> BulkOutcome:
        return await self._apply(selection, "retry", actor, reason)

    async def resolve(self, selection: ExceptionSelection, *, actor: str, note: str) -> BulkOutcome:
        _require_text(note, "a note saying how it was resolved")
        return await self._apply(selection, "resolve", actor, note)

    async def discard(
        self, selection: ExceptionSelection, *, actor: str, reason: str
    ) -> BulkOutcome:
        _require_text(reason, "a reason for discarding")
        return await self._apply(selection, "discard", actor, reason)

    async def auto_retry(self, probe: HealthProbe, limit: int) -> int:
        """Retry open transient entries of downstreams the probe reports healthy (at most
        ``limit``); returns how many were queued."""
        c = t.exceptions.c
        with self.engine.connect() as conn:
            systems = [
                row[0]
                for row in conn.execute(
                    sa.select(c.system)
                    .where(
                        c.status == ExceptionStatus.OPEN.value,
                        c.classification == Classification.TRANSIENT.value,
                        c.system.is_not(None),
                    )
                    .distinct()
                )
            ]
        queued = 0
        for system in systems:
            if queued >= limit or not await probe(system):
                continue
            with self.engine.connect() as conn:
                ids = list(
                    conn.execute(
                        sa.select(c.id)
                        .where(
                            c.status == ExceptionStatus.OPEN.value,
                            c.classification == Classification.TRANSIENT.value,
                            c.system == system,
                        )
                        .order_by(c.id)
                        .limit(limit - queued)
                    ).scalars()
                )
            outcome = await self._apply(
                ids, "auto_retry", AUTO_RETRY_ACTOR, f"downstream {system!r} is healthy again"
            )
            queued += len(outcome.changed)
        return queued

    async def _apply(
        self, selection: ExceptionSelection, action: str, actor: str, reason: str | None
    ) -> BulkOutcome:
        _require_text(actor, "who is acting (actor)")
        changed: builtins.list[int] = []
        skipped: builtins.list[tuple[int, str]] = []
        if isinstance(selection, ExceptionFilter):
            after = 0
            while True:
                with self.engine.connect() as conn:
                    ids = list(
                        conn.execute(
                            sa.select(t.exceptions.c.id)
                            .where(*_where(selection), t.exceptions.c.id > after)
                            .order_by(t.exceptions.c.id)
                            .limit(_CHUNK)
                        ).scalars()
                    )
                if not ids:
                    break
                after = ids[-1]
                await self._apply_chunk(ids, action, actor, reason, changed, skipped)
        else:
            ids = [selection] if isinstance(selection, int) else list(selection)
            for start in range(0, len(ids), _CHUNK):
                await self._apply_chunk(
                    ids[start : start + _CHUNK], action, actor, reason, changed, skipped
                )
        return BulkOutcome(changed=tuple(changed), skipped=tuple(skipped))

    async def _apply_chunk(
        self,
        ids: Sequence[int],
        action: str,
        actor: str,
        reason: str | None,
        changed: builtins.list[int],
        skipped: builtins.list[tuple[int, str]],
    ) -> None:
        """One transaction per chunk: status changes, audit rows and durable redelivery."""
        table = t.exceptions
        now = utcnow()
        with self.engine.connect() as conn, conn.begin():
            query = sa.select(table).where(table.c.id.in_(ids)).order_by(table.c.id)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            rows = {int(r.id): r for r in conn.execute(query)}
            to_redeliver: builtins.list[ExceptionEntry] = []
            chunk_changed: builtins.list[int] = []
            for entry_id in ids:
                row = rows.get(entry_id)
                if row is None:
                    skipped.append((entry_id, "no such exception entry"))
                    continue
                status = ExceptionStatus(row.status)
                if action in ("retry", "auto_retry"):
                    if status is not ExceptionStatus.OPEN:
                        skipped.append((entry_id, f"status is {status.value}; only open retry"))
                        continue
                    if row.manual_retry_count >= self.options.max_manual_retries:
                        conn.execute(
                            table.update()
                            .where(table.c.id == entry_id)
                            .values(status=ExceptionStatus.PERMANENTLY_FAILED.value, updated_at=now)
                        )
                        _audit(
                            conn,
                            entry_id,
                            "permanently_failed",
                            actor,
                            f"retried {row.manual_retry_count} times already "
                            f"(limit {self.options.max_manual_retries})",
                        )
                        skipped.append((entry_id, "permanently failed: retry limit reached"))
                        continue
                    conn.execute(
                        table.update()
                        .where(table.c.id == entry_id)
                        .values(
                            status=ExceptionStatus.RETRYING.value,
                            manual_retry_count=table.c.manual_retry_count + 1,
                            updated_at=now,
                        )
                    )
                    to_redeliver.append(_entry(row, with_event=True))
                else:
                    final = (
                        ExceptionStatus.RESOLVED
                        if action == "resolve"
                        else ExceptionStatus.DISCARDED
                    )
                    if status in (ExceptionStatus.RESOLVED, ExceptionStatus.DISCARDED):
                        skipped.append((entry_id, f"already {status.value}"))
                        continue
                    conn.execute(
                        table.update()
                        .where(table.c.id == entry_id)
                        .values(status=final.value, updated_at=now)
                    )
                _audit(conn, entry_id, action, actor, reason)
                chunk_changed.append(entry_id)
            if to_redeliver:
                await self._redeliver(conn, to_redeliver)
        changed.extend(chunk_changed)


def _require_text(value: str | None, what: str) -> None:
    if value is None or not value.strip():
        raise ValueError(f"{what} is required")
