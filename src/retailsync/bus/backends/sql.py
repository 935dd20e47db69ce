"""The embedded bus on the SQL database (SQLite or PostgreSQL): a transactional outbox/inbox.

Publishing appends to ``bus_events`` in one transaction per batch (under an advisory lock on
PostgreSQL, so sequences become visible in commit order and no reader skips a gap). Each
partition key hashes to one of ``options.shards`` shards; for every subscription and shard a
``bus_cursors`` row holds the last delivered sequence and the lease of the worker that owns
it. A worker delivers one shard batch per transaction: the handlers' SQL effects, the inbox
records, parked retries and the cursor advance commit together, so a crash redelivers the
whole batch and the inbox absorbs it. A failing event is parked with a backoff and later
events of its key are held behind it; other keys move on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import socket
import threading
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event

from retailsync.bus import tables as t
from retailsync.bus.backend import (
    AttemptRecord,
    BackendConfig,
    BusOptions,
    Classification,
    EventBusBackend,
    ExceptionEntry,
    ExceptionQueue,
    ProgressCallback,
    PublishOutcome,
    PublishStatus,
    ReplayProgress,
    ReplayRequest,
    StoredEvent,
    Subscription,
)
from retailsync.bus.consumer import (
    Consumer,
    DeliveryStatus,
    SqlDeliveryContext,
    SqlExceptionQueue,
    as_utc,
    attempt_record,
    current_delivery,
    dedup_hash,
    dump_attempts,
    glob_to_like,
    load_attempts,
    upsert_insert,
    utcnow,
)
from retailsync.bus.errors import (
    BusNotMigrated,
    InvalidSubscriptionName,
    ScaleOutNotSupported,
    UnknownSubscriber,
    classify,
    retry_after_of,
)
from retailsync.bus.validation import partition_key_of, validate_batch
from retailsync.db import create_engine_for
from retailsync.domain.events import CloudEvent
from retailsync.observability import metrics as hub_metrics

PUBLISH_LOCK_KEY = 0x5245_5441_494C  # pg_advisory_xact_lock key serializing appends
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_.-")
_PARKED_SCAN = 1000
_IN_CHUNK = 500
READ_ONLY = "retailsync_read_only"
_WRITE_TURN_POLL = 0.0005  # seconds between tries for the SQLite write turn


def shard_of(partition_key: str, shards: int) -> int:
    """Stable bucket of a partition key (the same on every process and platform)."""
    return zlib.crc32(partition_key.encode()) % shards


def create_backend(config: BackendConfig) -> SqlEventBus:
    return SqlEventBus(config)


def sql_engine(url: str) -> sa.Engine:
    """An engine whose SQLite transactions start with BEGIN IMMEDIATE and support savepoints."""
    engine = create_engine_for(url)
    if engine.dialect.name == "sqlite":

        @sa_event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @sa_event.listens_for(engine, "begin")
        def _begin_immediate(conn: sa.Connection) -> None:
            read_only = conn.get_execution_options().get(READ_ONLY, False)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


@dataclass
class _Round:
    handled: int = 0  # handler runs (success or failure)
    progressed: int = 0  # events the cursor moved past or parked rows settled


@dataclass
class _Batch:
    """Inbox rows and hashes collected while delivering one shard batch."""

    subscriber: str
    existing: set[str] = field(default_factory=set)
    handled: set[str] = field(default_factory=set)
    inbox_rows: list[dict[str, Any]] = field(default_factory=list)


class SqlEventBus(EventBusBackend):
    """:class:`~retailsync.bus.backend.EventBusBackend` on SQLite or PostgreSQL."""

    name = "sql"

    def __init__(self, config: BackendConfig, engine: sa.Engine | None = None) -> None:
        self.config = config
        self.options: BusOptions = config.options
        self.engine = engine or sql_engine(config.database_url)
        self._own_engine = engine is None
        self.worker_id = config.worker_id
        self._subscriptions: dict[str, Subscription] = {}
        self.consumer = Consumer(self.engine, self.options)
        self._exceptions = SqlExceptionQueue(self.engine, self.options, self._redeliver)
        self._owned: set[tuple[str, int]] = set()
        self._lease_renewed_at = 0.0
        self._worker_registered = False
        self._started = False
        self._rng = random.Random()
        self._last_auto_retry = 0.0
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self._write_lock = threading.Lock()  # SQLite: this process's writers take turns
        self._fetch_statements: dict[int, sa.Select[Any]] = {}

    # ----------------------------------------------------------------------------------------
    # lifecycle
    # ----------------------------------------------------------------------------------------

    def subscribe(self, subscription: Subscription) -> None:
        name = subscription.name
        if not (1 <= len(name) <= 100) or not set(name) <= _NAME_CHARS:
            raise InvalidSubscriptionName(name)
        self._subscriptions[name] = subscription

    @property
    def subscriptions(self) -> Mapping[str, Subscription]:
        return dict(self._subscriptions)

    async def start(self) -> None:
        if not sa.inspect(self.engine).has_table(t.events.name):
            raise BusNotMigrated(self.config.database_url)
        now = utcnow()
        with self.engine.begin() as conn:
            head = conn.execute(sa.select(sa.func.max(t.events.c.seq))).scalar() or 0
            for sub in self._subscriptions.values():
                filter_json = json.dumps(
                    {"types": list(sub.filter.types), "subjects": list(sub.filter.subjects)}
                )
                # upserts: several workers may start at once on the same database
                register = upsert_insert(conn, t.subscriptions).values(
                    name=sub.name,
                    filter=filter_json,
                    downstream=sub.downstream,
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
                start_seq = head if sub.start_from == "latest" else 0
                conn.execute(
                    upsert_insert(conn, t.cursors).on_conflict_do_nothing(
                        index_elements=[t.cursors.c.subscriber, t.cursors.c.shard]
                    ),
                    [
                        {"subscriber": sub.name, "shard": s, "last_seq": start_seq}
                        for s in range(self.options.shards)
                    ],
                )
        self._started = True

    async def close(self) -> None:
        if self._worker_registered:
            with contextlib.suppress(sa.exc.SQLAlchemyError), self.engine.begin() as conn:
                conn.execute(
                    t.cursors.update()
                    .where(t.cursors.c.owner == self.worker_id)
                    .values(owner=None, lease_expires_at=None)
                )
                conn.execute(t.workers.delete().where(t.workers.c.worker_id == self.worker_id))
            self._worker_registered = False
            self._owned.clear()
        if self._own_engine:
            self.engine.dispose()

    # ----------------------------------------------------------------------------------------
    # publishing
    # ----------------------------------------------------------------------------------------

    async def publish(
        self, events: Sequence[CloudEvent | Mapping[str, Any]]
    ) -> list[PublishOutcome]:
        valid, rejected = validate_batch(events, self.options.max_batch_size)
        outcomes: list[PublishOutcome] = list(rejected)
        if valid:
            ctx = current_delivery.get()
            if ctx is not None and not self.is_postgres and ctx.connection.engine is self.engine:
                # SQLite has one writer: inside a delivery, append in its transaction (the
                # events then commit or roll back with the handler's other effects).
                outcomes.extend(self._append(ctx.connection, valid))
            else:
                outcomes.extend(await asyncio.to_thread(self._append_committed, valid))
        outcomes.sort(key=lambda o: o.index)
        hub_metrics.events_accepted(events, outcomes)
        return outcomes

    def _append_committed(self, valid: list[tuple[int, CloudEvent]]) -> list[PublishOutcome]:
        if self.is_postgres:
            with self.engine.begin() as conn:
                return self._append(conn, valid)
        with self._write_lock, self.engine.begin() as conn:
            return self._append(conn, valid)

    def _append(
        self, conn: sa.Connection, valid: list[tuple[int, CloudEvent]]
    ) -> list[PublishOutcome]:
        if self.is_postgres:
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(PUBLISH_LOCK_KEY)))
        rows: list[dict[str, Any]] = []
        firsts: list[tuple[int, CloudEvent]] = []
        seen: set[tuple[str, str]] = set()
        repeats: list[tuple[int, CloudEvent]] = []
        now = utcnow()
        for index, ev in valid:
            pair = (ev.source, ev.id)
            if pair in seen:
                repeats.append((index, ev))
                continue
            seen.add(pair)
            key = partition_key_of(ev)
            rows.append(
                {
                    "source": ev.source,
                    "event_id": ev.id,
                    "type": ev.type,
                    "subject": ev.subject,
                    "partition_key": key,
                    "shard": shard_of(key, self.options.shards),
                    "correlation_id": ev.correlationid,
                    "entity_version": ev.entityversion,
                    "time": ev.time,
                    "stored_at": now,
                    "envelope": ev.model_dump_json(exclude_none=True),
                }
            )
            firsts.append((index, ev))
        result: Sequence[Any]
        if self.is_postgres:
            result = _pg_execute(conn, _PG_APPEND, _pg_arrays(_PG_APPEND_COLUMNS, rows))
        else:
            stmt = (
                _dialect_insert(conn, t.events)
                .on_conflict_do_nothing(index_elements=[t.events.c.source, t.events.c.event_id])
                .returning(t.events.c.seq, t.events.c.source, t.events.c.event_id)
            )
            result = conn.execute(stmt, rows).all()
        inserted = {(r.source, r.event_id): int(r.seq) for r in result}
        earlier = self._sequences_of(
            conn, [(ev.source, ev.id) for _, ev in firsts if (ev.source, ev.id) not in inserted]
        )
        outcomes: list[PublishOutcome] = []
        for index, ev in firsts:
            pair = (ev.source, ev.id)
            fresh = pair in inserted
            outcomes.append(
                PublishOutcome(
                    index=index,
                    status=PublishStatus.ACCEPTED if fresh else PublishStatus.DUPLICATE,
                    source=ev.source,
                    id=ev.id,
                    sequence=inserted[pair] if fresh else earlier.get(pair),
                )
            )
        for index, ev in repeats:
            pair = (ev.source, ev.id)
            outcomes.append(
                PublishOutcome(
                    index=index,
                    status=PublishStatus.DUPLICATE,
                    source=ev.source,
                    id=ev.id,
                    sequence=inserted.get(pair, earlier.get(pair)),
                )
            )
        return outcomes

    def _sequences_of(
        self, conn: sa.Connection, pairs: list[tuple[str, str]]
    ) -> dict[tuple[str, str], int]:
        """Sequences of already stored events, looked up per source (uses the unique index)."""
        by_source: dict[str, list[str]] = defaultdict(list)
        for source, event_id in pairs:
            by_source[source].append(event_id)
        found: dict[tuple[str, str], int] = {}
        for source, ids in by_source.items():
            for start in range(0, len(ids), _IN_CHUNK):
                for row in conn.execute(
                    sa.select(t.events.c.event_id, t.events.c.seq).where(
                        t.events.c.source == source,
                        t.events.c.event_id.in_(ids[start : start + _IN_CHUNK]),
                    )
                ):
                    found[(source, row.event_id)] = int(row.seq)
        return found

    async def get_event(self, source: str, id: str) -> StoredEvent | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.events.c.seq, t.events.c.stored_at, t.events.c.envelope).where(
                    t.events.c.source == source, t.events.c.event_id == id
                )
            ).first()
        if row is None:
            return None
        return StoredEvent(
            int(row.seq), as_utc(row.stored_at), CloudEvent.model_validate_json(row.envelope)
        )

    # ----------------------------------------------------------------------------------------
    # workers and leases
    # ----------------------------------------------------------------------------------------

    def _register_worker(self) -> None:
        now = utcnow()
        horizon = now - timedelta(seconds=self.options.lease_ttl)
        with self.engine.begin() as conn:
            if not self.is_postgres:
                others = conn.execute(
                    sa.select(t.workers.c.worker_id, t.workers.c.hostname, t.workers.c.pid).where(
                        t.workers.c.worker_id != self.worker_id,
                        t.workers.c.heartbeat_at > horizon,
                    )
                ).first()
                if others is not None:
                    raise ScaleOutNotSupported(
                        f"Worker {others.worker_id!r} (pid {others.pid} on {others.hostname}) "
                        "is already delivering from this database."
                    )
            values = {
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "started_at": now,
                "heartbeat_at": now,
            }
            updated = conn.execute(
                t.workers.update().where(t.workers.c.worker_id == self.worker_id).values(**values)
            ).rowcount
            if not updated:
                conn.execute(t.workers.insert().values(worker_id=self.worker_id, **values))
        self._worker_registered = True

    def _renew_leases(self, force: bool = False) -> None:
        """Heartbeat, renew owned shard leases and take a fair share of free or expired ones."""
        loop_now = asyncio.get_running_loop().time()
        if not force and loop_now - self._lease_renewed_at < self.options.lease_ttl / 4:
            return
        self._lease_renewed_at = loop_now
        now = utcnow()
        expires = now + timedelta(seconds=self.options.lease_ttl)
        horizon = now - timedelta(seconds=self.options.lease_ttl)
        names = list(self._subscriptions)
        if not names:
            return
        c = t.cursors.c
        with self.engine.begin() as conn:
            conn.execute(
                t.workers.update()
                .where(t.workers.c.worker_id == self.worker_id)
                .values(heartbeat_at=now)
            )
            live = (
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(t.workers)
                    .where(t.workers.c.heartbeat_at > horizon)
                ).scalar_one()
                or 1
            )
            total = len(names) * self.options.shards
            target = math.ceil(total / max(1, live))
            # renew what we own (skipping rows a running batch elsewhere has locked is not
            # needed: only we own them)
            conn.execute(
                t.cursors.update()
                .where(c.owner == self.worker_id, c.subscriber.in_(names))
                .values(lease_expires_at=expires)
            )
            owned = [
                (r.subscriber, int(r.shard))
                for r in conn.execute(
                    sa.select(c.subscriber, c.shard)
                    .where(c.owner == self.worker_id, c.subscriber.in_(names))
                    .order_by(c.subscriber, c.shard)
                )
            ]
            if len(owned) > target:
                for sub, shard in owned[target:]:
                    conn.execute(
                        t.cursors.update()
                        .where(c.subscriber == sub, c.shard == shard, c.owner == self.worker_id)
                        .values(owner=None, lease_expires_at=None)
                    )
                owned = owned[:target]
            elif len(owned) < target:
                query = (
                    sa.select(c.subscriber, c.shard)
                    .where(
                        c.subscriber.in_(names),
                        sa.or_(c.owner.is_(None), c.lease_expires_at < now),
                    )
                    .order_by(c.shard, c.subscriber)
                    .limit(target - len(owned))
                )
                if self.is_postgres:
                    query = query.with_for_update(skip_locked=True)
                for r in list(conn.execute(query)):
                    conn.execute(
                        t.cursors.update()
                        .where(c.subscriber == r.subscriber, c.shard == r.shard)
                        .values(owner=self.worker_id, lease_expires_at=expires)
                    )
                    owned.append((r.subscriber, int(r.shard)))
        self._owned = set(owned)

    # ----------------------------------------------------------------------------------------
    # delivery
    # ----------------------------------------------------------------------------------------

    async def run_delivery(self, stop: asyncio.Event) -> None:
        self._register_worker()
        try:
            while not stop.is_set():
                work = await self._delivery_round()
                await self._maybe_auto_retry()
                if work.progressed == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.options.poll_interval)
        finally:
            await self._release()

    async def _release(self) -> None:
        if not self._worker_registered:
            return
        with contextlib.suppress(sa.exc.SQLAlchemyError), self.engine.begin() as conn:
            conn.execute(
                t.cursors.update()
                .where(t.cursors.c.owner == self.worker_id)
                .values(owner=None, lease_expires_at=None)
            )
            conn.execute(t.workers.delete().where(t.workers.c.worker_id == self.worker_id))
        self._worker_registered = False
        self._owned.clear()

    async def deliver_until_idle(self, *, timeout: float = 30.0) -> int:  # noqa: ASYNC109
        if not self._worker_registered:
            self._register_worker()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        handled = 0
        self._renew_leases(force=True)
        while True:
            work = await self._delivery_round()
            handled += work.handled
            if work.progressed:
                continue
            wait = self._idle_wait()
            if wait is None:
                return handled
            if loop.time() + min(wait, self.options.poll_interval) > deadline:
                raise TimeoutError(
                    f"bus still had work after {timeout:.1f}s (undelivered events or parked "
                    "retries); is another worker holding shard leases?"
                )
            await asyncio.sleep(min(max(wait, 0.001), self.options.poll_interval))

    def _idle_wait(self) -> float | None:
        """None when nothing is left for our subscriptions; else seconds until the next retry
        is due (0 when undelivered events exist)."""
        names = list(self._subscriptions)
        if not names:
            return None
        c = t.cursors.c
        with self.engine.connect() as conn:
            pending = conn.execute(
                sa.select(sa.literal(1))
                .select_from(t.cursors.join(t.events, t.events.c.shard == c.shard))
                .where(c.subscriber.in_(names), t.events.c.seq > c.last_seq)
                .limit(1)
            ).first()
            if pending is not None:
                return 0.0
            next_due = conn.execute(
                sa.select(sa.func.min(t.parked.c.next_attempt_at)).where(
                    t.parked.c.subscriber.in_(names)
                )
            ).scalar()
        if next_due is None:
            return None
        return max(0.0, (as_utc(next_due) - utcnow()).total_seconds())

    def _active_shards(self) -> list[tuple[str, int]]:
        """Owned (subscriber, shard) pairs with new events or due parked retries."""
        if not self._owned:
            return []
        c = t.cursors.c
        e = t.events.c
        p = t.parked.c
        names = sorted({sub for sub, _ in self._owned})
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            fresh = conn.execute(
                sa.select(c.subscriber, c.shard).where(
                    c.owner == self.worker_id,
                    c.subscriber.in_(names),
                    sa.exists().where(e.shard == c.shard, e.seq > c.last_seq),
                )
            )
            active = {(r.subscriber, int(r.shard)) for r in fresh}
            due = conn.execute(
                sa.select(p.subscriber, p.shard)
                .where(p.subscriber.in_(names), p.next_attempt_at <= utcnow())
                .distinct()
            )
            active.update((r.subscriber, int(r.shard)) for r in due)
        return sorted(active & self._owned)

    async def _delivery_round(self) -> _Round:
        self._renew_leases()
        total = _Round()
        by_subscriber: dict[str, list[int]] = defaultdict(list)
        for subscriber, shard in self._active_shards():
            by_subscriber[subscriber].append(shard)
        for subscriber, shards in by_subscriber.items():
            sub = self._subscriptions.get(subscriber)
            if sub is None:
                continue
            work = await self._deliver_shards(sub, shards)
            total.handled += work.handled
            total.progressed += work.progressed
        return total

    @contextlib.asynccontextmanager
    async def _writer(self) -> AsyncIterator[None]:
        """SQLite: take this process's write turn before opening a write transaction.

        The publisher (a thread) and delivery (the event loop) then take turns on a lock that
        wakes the next writer at once, instead of meeting in SQLite's busy handler, which
        sleeps in growing steps. Polling keeps the event loop free while a publish commits.
        PostgreSQL: nothing to do (row locks).
        """
        if self.is_postgres:
            yield
            return
        while True:
            if self._write_lock.acquire(blocking=False):
                break
            await asyncio.sleep(_WRITE_TURN_POLL)
        try:
            yield
        finally:
            self._write_lock.release()

    async def _deliver_shards(self, sub: Subscription, shards: list[int]) -> _Round:
        """One transaction for the given owned shards of ``sub``: settle due parked events,
        then up to ``delivery_batch_size`` new events in sequence order.

        The inbox records of the new events are claimed with one multi-row
        ``INSERT .. ON CONFLICT DO NOTHING RETURNING`` before the handlers run (an event a
        replay already handled comes back as not claimed and is skipped); the few records of
        events that then fail or are held back are deleted again before the commit.
        """
        work = _Round()
        c = t.cursors.c
        async with self._writer():
            with self.engine.connect() as conn, conn.begin():
                query = (
                    sa.select(c.shard, c.last_seq)
                    .where(
                        c.subscriber == sub.name,
                        c.shard.in_(shards),
                        c.owner == self.worker_id,
                    )
                    .order_by(c.shard)
                )
                if self.is_postgres:  # held until commit: a takeover waits for this batch
                    query = query.with_for_update()
                cursors = {int(r.shard): int(r.last_seq) for r in conn.execute(query)}
                for shard in shards:
                    if shard not in cursors:
                        self._owned.discard((sub.name, shard))
                if not cursors:
                    return work
                batch = _Batch(sub.name)
                blocked = await self._settle_parked(conn, sub, list(cursors), batch, work)
                rows = self._fetch_new(conn, cursors)
                advance: dict[int, int] = {}
                selected: list[tuple[Any, StoredEvent, str]] = []
                for r in rows:
                    advance[int(r.shard)] = int(r.seq)
                    work.progressed += 1
                    if not _matches(sub, r.type, r.subject):
                        continue
                    stored = StoredEvent(
                        int(r.seq), as_utc(r.stored_at), CloudEvent.model_validate_json(r.envelope)
                    )
                    selected.append((r, stored, dedup_hash(stored.event)))
                claimed = self._claim_inbox(
                    conn,
                    sub.name,
                    [(h, s.sequence) for r, s, h in selected if r.partition_key not in blocked],
                )
                unclaim: list[str] = []
                stale: list[str] = []
                now = utcnow()
                for row, stored, digest in selected:
                    key = row.partition_key
                    seq = stored.sequence
                    if key in blocked:
                        self._park(
                            conn, sub, int(row.shard), key, seq, attempts=0, due=now, history=[]
                        )
                        if digest in claimed:
                            unclaim.append(digest)
                        continue
                    if digest not in claimed:
                        continue  # handled before (a replay ran ahead of the cursor)
                    error, was_stale = await self._invoke(conn, sub, stored, 1, forced=False)
                    work.handled += 1
                    if error is None:
                        if was_stale:
                            stale.append(digest)
                        continue
                    unclaim.append(digest)
                    classification = classify(error)
                    record = attempt_record(1, error, classification)
                    if sub.retry.attempts_for(classification) <= 1:
                        self.consumer.record_exception(conn, sub, stored, [record], error)
                    else:
                        self._park(
                            conn,
                            sub,
                            int(row.shard),
                            key,
                            seq,
                            attempts=1,
                            due=now + timedelta(seconds=self._delay(sub, 1, error)),
                            history=[record],
                        )
                        blocked.add(key)
                inbox = t.inbox.c
                if unclaim:
                    conn.execute(
                        t.inbox.delete().where(
                            inbox.subscriber == sub.name, inbox.dedup_hash.in_(unclaim)
                        )
                    )
                if stale:
                    conn.execute(
                        t.inbox.update()
                        .where(inbox.subscriber == sub.name, inbox.dedup_hash.in_(stale))
                        .values(outcome=DeliveryStatus.STALE.value)
                    )
                if batch.inbox_rows:
                    conn.execute(t.inbox.insert(), batch.inbox_rows)
                if advance:
                    conn.execute(
                        t.cursors.update()
                        .where(
                            c.subscriber == sa.bindparam("b_subscriber"),
                            c.shard == sa.bindparam("b_shard"),
                        )
                        .values(last_seq=sa.bindparam("b_last_seq")),
                        [
                            {"b_subscriber": sub.name, "b_shard": shard, "b_last_seq": seq}
                            for shard, seq in advance.items()
                        ],
                    )
        return work

    def _fetch_new(self, conn: sa.Connection, cursors: Mapping[int, int]) -> list[Any]:
        """The next ``delivery_batch_size`` events after each shard's cursor, in sequence order
        (one statement: a per-shard index range scan for each shard, merged)."""
        statement = self._fetch_statements.get(len(cursors))
        if statement is None:
            statement = self._fetch_statements[len(cursors)] = _fetch_statement(len(cursors))
        params: dict[str, int] = {"b_limit": self.options.delivery_batch_size}
        for n, (shard, last) in enumerate(cursors.items()):
            params[f"b_shard_{n}"] = shard
            params[f"b_after_{n}"] = last
        return list(conn.execute(statement, params))

    def _claim_inbox(
        self, conn: sa.Connection, subscriber: str, items: list[tuple[str, int]]
    ) -> set[str]:
        """Insert inbox records for ``(dedup hash, sequence)``; returns the hashes inserted
        now (the others were recorded before)."""
        if not items:
            return set()
        now = utcnow()
        rows = [
            {
                "subscriber": subscriber,
                "dedup_hash": digest,
                "sequence": seq,
                "outcome": DeliveryStatus.HANDLED.value,
                "attempt": 1,
                "handled_at": now,
            }
            for digest, seq in items
        ]
        if self.is_postgres:
            return {
                row[0] for row in _pg_execute(conn, _PG_CLAIM, _pg_arrays(_PG_CLAIM_COLUMNS, rows))
            }
        stmt = (
            upsert_insert(conn, t.inbox)
            .on_conflict_do_nothing(index_elements=[t.inbox.c.subscriber, t.inbox.c.dedup_hash])
            .returning(t.inbox.c.dedup_hash)
        )
        return set(conn.execute(stmt, rows).scalars())

    async def _settle_parked(
        self, conn: sa.Connection, sub: Subscription, shards: list[int], batch: _Batch, work: _Round
    ) -> set[str]:
        """Retry due heads of parked keys (and the events held behind them that can now go);
        returns the keys still blocked."""
        p = t.parked.c
        now = utcnow()
        rows = list(
            conn.execute(
                sa.select(t.parked, t.events.c.stored_at, t.events.c.envelope)
                .select_from(t.parked.join(t.events, t.events.c.seq == p.seq))
                .where(p.subscriber == sub.name, p.shard.in_(shards))
                .order_by(p.seq)
                .limit(_PARKED_SCAN)
            )
        )
        if not rows:
            return set()
        by_key: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            by_key[row.partition_key].append(row)
        due_heads = [
            key for key, items in by_key.items() if as_utc(items[0].next_attempt_at) <= now
        ]
        parsed = {
            int(r.seq): StoredEvent(
                int(r.seq), as_utc(r.stored_at), CloudEvent.model_validate_json(r.envelope)
            )
            for key in due_heads
            for r in by_key[key]
        }
        self._prefetch_inbox(conn, batch, [s.event for s in parsed.values()])
        for key in due_heads:
            for row in by_key[key]:
                if as_utc(row.next_attempt_at) > now:
                    break
                stored = parsed[int(row.seq)]
                attempt = int(row.attempts) + 1
                outcome = await self._attempt(conn, sub, stored, attempt, batch, row.forced)
                work.progressed += 1
                if outcome is not None:
                    work.handled += 1
                error, classification = outcome or (None, Classification.TRANSIENT)
                if error is None:
                    conn.execute(t.parked.delete().where(p.id == row.id))
                    if row.exception_id is not None:
                        self.consumer.mark_redelivered(conn, int(row.exception_id))
                    continue
                history = [
                    *load_attempts(row.history),
                    attempt_record(attempt, error, classification),
                ]
                if attempt >= sub.retry.attempts_for(classification):
                    conn.execute(t.parked.delete().where(p.id == row.id))
                    self.consumer.record_exception(conn, sub, stored, history, error)
                    continue  # the key is released: the next held event may go now
                conn.execute(
                    t.parked.update()
                    .where(p.id == row.id)
                    .values(
                        attempts=attempt,
                        history=dump_attempts(history),
                        next_attempt_at=now + timedelta(seconds=self._delay(sub, attempt, error)),
                    )
                )
                break
        if len(rows) >= _PARKED_SCAN:
            return set(
                conn.execute(
                    sa.select(p.partition_key)
                    .where(p.subscriber == sub.name, p.shard.in_(shards))
                    .distinct()
                ).scalars()
            )
        return set(
            conn.execute(
                sa.select(p.partition_key)
                .where(
                    p.subscriber == sub.name,
                    p.shard.in_(shards),
                    p.partition_key.in_(list(by_key)),
                )
                .distinct()
            ).scalars()
        )

    def _prefetch_inbox(self, conn: sa.Connection, batch: _Batch, events: list[CloudEvent]) -> None:
        hashes = [dedup_hash(e) for e in events]
        for start in range(0, len(hashes), _IN_CHUNK):
            batch.existing.update(
                conn.execute(
                    sa.select(t.inbox.c.dedup_hash).where(
                        t.inbox.c.subscriber == batch.subscriber,
                        t.inbox.c.dedup_hash.in_(hashes[start : start + _IN_CHUNK]),
                    )
                ).scalars()
            )

    async def _invoke(
        self,
        conn: sa.Connection,
        sub: Subscription,
        stored: StoredEvent,
        attempt: int,
        *,
        forced: bool,
    ) -> tuple[BaseException | None, bool]:
        """Run the handler once inside the batch transaction; its SQL effects sit in a
        savepoint opened on first use of ``ctx.connection`` (rolled back when it raises).
        Returns (error or None, whether it saw a stale entity version)."""
        ctx = SqlDeliveryContext(
            conn,
            sub.name,
            stored.event,
            sequence=stored.sequence,
            attempt=attempt,
            forced=forced,
            replay=False,
            isolated=False,
        )
        token = current_delivery.set(ctx)
        try:
            await sub.handler(stored.event, ctx)
        except Exception as exc:
            ctx.finish(success=False)
            return exc, False
        finally:
            current_delivery.reset(token)
        ctx.finish(success=True)
        return None, ctx.stale

    async def _attempt(
        self,
        conn: sa.Connection,
        sub: Subscription,
        stored: StoredEvent,
        attempt: int,
        batch: _Batch,
        forced: bool = False,
    ) -> tuple[BaseException | None, Classification] | None:
        """A parked event's next attempt. None: already handled (inbox); else (error or None,
        classification)."""
        key = dedup_hash(stored.event)
        if not forced and (key in batch.existing or key in batch.handled):
            return None
        error, stale = await self._invoke(conn, sub, stored, attempt, forced=forced)
        if error is not None:
            return error, classify(error)
        batch.handled.add(key)
        outcome = (DeliveryStatus.STALE if stale else DeliveryStatus.HANDLED).value
        if forced and key in batch.existing:
            conn.execute(
                t.inbox.update()
                .where(t.inbox.c.subscriber == sub.name, t.inbox.c.dedup_hash == key)
                .values(attempt=attempt, handled_at=utcnow(), outcome=outcome)
            )
        else:
            batch.inbox_rows.append(
                {
                    "subscriber": sub.name,
                    "dedup_hash": key,
                    "sequence": stored.sequence,
                    "outcome": outcome,
                    "attempt": attempt,
                    "handled_at": utcnow(),
                }
            )
        return None, Classification.TRANSIENT

    def _delay(self, sub: Subscription, attempt: int, error: BaseException) -> float:
        delay = sub.retry.delay(attempt, self._rng)
        after = retry_after_of(error)
        return max(delay, after) if after is not None else delay

    def _park(
        self,
        conn: sa.Connection,
        sub: Subscription,
        shard: int,
        key: str,
        seq: int,
        *,
        attempts: int,
        due: datetime,
        history: list[AttemptRecord],
        exception_id: int | None = None,
        forced: bool = False,
    ) -> None:
        stmt = (
            _dialect_insert(conn, t.parked)
            .values(
                subscriber=sub.name,
                shard=shard,
                partition_key=key,
                seq=seq,
                attempts=attempts,
                next_attempt_at=due,
                history=dump_attempts(history),
                exception_id=exception_id,
                forced=forced,
            )
            .on_conflict_do_nothing(index_elements=[t.parked.c.subscriber, t.parked.c.seq])
        )
        conn.execute(stmt)

    # ----------------------------------------------------------------------------------------
    # exceptions and automatic retry
    # ----------------------------------------------------------------------------------------

    @property
    def exceptions(self) -> ExceptionQueue:
        return self._exceptions

    @property
    def sql_exceptions(self) -> SqlExceptionQueue:
        return self._exceptions

    async def _redeliver(self, conn: sa.Connection, entries: Sequence[ExceptionEntry]) -> None:
        """Queue each entry's event as a parked delivery (durable with the status change)."""
        now = utcnow()
        for entry in entries:
            row = conn.execute(
                sa.select(t.events.c.shard, t.events.c.partition_key).where(
                    t.events.c.seq == entry.sequence
                )
            ).first()
            if row is None:  # pragma: no cover - events are never deleted
                continue
            p = t.parked.c
            conn.execute(
                t.parked.delete().where(p.subscriber == entry.subscriber, p.seq == entry.sequence)
            )
            conn.execute(
                t.parked.insert().values(
                    subscriber=entry.subscriber,
                    shard=int(row.shard),
                    partition_key=row.partition_key,
                    seq=entry.sequence,
                    attempts=0,
                    next_attempt_at=now,
                    history="[]",
                    exception_id=entry.id,
                    forced=False,
                )
            )

    async def _maybe_auto_retry(self) -> None:
        probe = self.config.health_probe
        if probe is None:
            return
        loop_now = asyncio.get_running_loop().time()
        if loop_now - self._last_auto_retry < self.options.auto_retry_interval:
            return
        self._last_auto_retry = loop_now
        limit = max(1, int(self.options.auto_retry_rate * self.options.auto_retry_interval))
        await self._exceptions.auto_retry(probe, limit)

    # ----------------------------------------------------------------------------------------
    # replay
    # ----------------------------------------------------------------------------------------

    async def replay(
        self, request: ReplayRequest, progress: ProgressCallback | None = None
    ) -> ReplayProgress:
        sub = self._subscriptions.get(request.subscriber)
        if sub is None:
            raise UnknownSubscriber(request.subscriber, list(self._subscriptions))
        e = t.events.c
        where: list[sa.ColumnElement[bool]] = []
        if request.since is not None:
            where.append(e.stored_at >= request.since)
        if request.until is not None:
            where.append(e.stored_at < request.until)
        if request.event_types:
            where.append(
                sa.or_(*(e.type.like(glob_to_like(p), escape="\\") for p in request.event_types))
            )
        if request.partition_key is not None:
            where.append(e.partition_key == request.partition_key)
        if request.correlation_id is not None:
            where.append(e.correlation_id == request.correlation_id)
        with self.engine.connect() as conn:
            total = int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(t.events).where(*where)
                ).scalar_one()
            )
        tally = ReplayProgress(total=total, delivered=0, skipped=0, failed=0)
        if progress:
            progress(tally)
        after = 0
        delivered = skipped = failed = 0
        while True:
            with self.engine.connect() as conn:
                rows = list(
                    conn.execute(
                        sa.select(e.seq, e.stored_at, e.envelope, e.shard, e.partition_key)
                        .where(*where, e.seq > after)
                        .order_by(e.seq)
                        .limit(200)
                    )
                )
            if not rows:
                break
            for row in rows:
                after = int(row.seq)
                stored = StoredEvent(
                    after, as_utc(row.stored_at), CloudEvent.model_validate_json(row.envelope)
                )
                if not sub.filter.matches(stored.event):
                    skipped += 1
                    continue
                with self.engine.connect() as conn, conn.begin():
                    if self.is_postgres:  # serialize with the live owner of this key's shard
                        conn.execute(
                            sa.select(t.cursors.c.last_seq)
                            .where(
                                t.cursors.c.subscriber == sub.name,
                                t.cursors.c.shard == int(row.shard),
                            )
                            .with_for_update()
                        )
                    result = await self.consumer.deliver_in(
                        conn, sub, stored, attempt=1, forced=request.force, replay=True
                    )
                    if result.status is DeliveryStatus.DUPLICATE:
                        skipped += 1
                    elif result.status is DeliveryStatus.FAILED:
                        failed += 1
                        assert result.error is not None
                        classification = result.classification or Classification.TRANSIENT
                        self._park(
                            conn,
                            sub,
                            int(row.shard),
                            row.partition_key,
                            after,
                            attempts=1,
                            due=utcnow() + timedelta(seconds=self._delay(sub, 1, result.error)),
                            history=[attempt_record(1, result.error, classification)],
                            forced=request.force,
                        )
                    else:
                        delivered += 1
                tally = ReplayProgress(total, delivered, skipped, failed)
                if progress:
                    progress(tally)
        return ReplayProgress(total, delivered, skipped, failed)


# PostgreSQL: batches go in as one array per column (``unnest``), one short statement per
# batch. A multi-row VALUES list of 500 x 11 parameters is a new, long statement text every
# time, which the driver re-parses in Python (~0.1 s per batch) and the server re-plans.
_PG_APPEND_COLUMNS = (
    ("source", "varchar"),
    ("event_id", "varchar"),
    ("type", "varchar"),
    ("subject", "varchar"),
    ("partition_key", "varchar"),
    ("shard", "integer"),
    ("correlation_id", "varchar"),
    ("entity_version", "bigint"),
    ("time", "timestamptz"),
    ("stored_at", "timestamptz"),
    ("envelope", "text"),
)
_PG_CLAIM_COLUMNS = (
    ("subscriber", "varchar"),
    ("dedup_hash", "varchar"),
    ("sequence", "bigint"),
    ("outcome", "varchar"),
    ("attempt", "integer"),
    ("handled_at", "timestamptz"),
)


def _pg_unnest_insert(table: str, columns: tuple[tuple[str, str], ...], tail: str) -> str:
    names = ", ".join(name for name, _ in columns)
    arrays = ", ".join(f"%b::{kind}[]" for _, kind in columns)  # %b: binary
    # WITH ORDINALITY + ORDER BY: rows (and sequence values) follow the batch order
    return (
        f"INSERT INTO {table} ({names}) SELECT {names} FROM unnest({arrays}) "
        f"WITH ORDINALITY AS batch({names}, position) ORDER BY position {tail}"
    )


_PG_APPEND = _pg_unnest_insert(
    t.events.name,
    _PG_APPEND_COLUMNS,
    "ON CONFLICT (source, event_id) DO NOTHING RETURNING seq, source, event_id",
)
_PG_CLAIM = _pg_unnest_insert(
    t.inbox.name,
    _PG_CLAIM_COLUMNS,
    "ON CONFLICT (subscriber, dedup_hash) DO NOTHING RETURNING dedup_hash",
)


def _pg_arrays(
    columns: tuple[tuple[str, str], ...], rows: list[dict[str, Any]]
) -> tuple[list[Any], ...]:
    return tuple([row[name] for row in rows] for name, _ in columns)


def _pg_execute(conn: sa.Connection, sql: str, params: tuple[list[Any], ...]) -> list[Any]:
    """Run ``sql`` on the driver's cursor, in ``conn``'s transaction, with parameters sent in
    binary (arrays of text need no escaping then) and return all rows as named tuples."""
    from psycopg.rows import namedtuple_row

    driver = conn.connection.driver_connection
    with driver.cursor(row_factory=namedtuple_row) as cursor:  # type: ignore[union-attr]
        cursor.execute(sql, params, binary=True)
        return list(cursor.fetchall())


def _fetch_statement(shards: int) -> sa.Select[Any]:
    """``SELECT`` of the next events of ``shards`` shards after their cursors (bound as
    ``b_shard_<n>`` / ``b_after_<n>``), at most ``b_limit``, in sequence order.

    Each shard's candidates come from a range scan of the (shard, seq) index that reads no
    event rows; only the ``b_limit`` lowest sequences are then fetched with their envelopes.
    """
    e = t.events.c
    limit = sa.bindparam("b_limit", type_=sa.Integer)
    parts = [
        sa.select(e.seq)
        .where(e.shard == sa.bindparam(f"b_shard_{n}"), e.seq > sa.bindparam(f"b_after_{n}"))
        .order_by(e.seq)
        .limit(limit)
        for n in range(shards)
    ]
    if shards == 1:
        picked = parts[0].subquery()
    else:
        merged = sa.union_all(*(sa.select(part.subquery()) for part in parts)).subquery()
        picked = sa.select(merged.c.seq).order_by(merged.c.seq).limit(limit).subquery()
    return (
        sa.select(e.seq, e.shard, e.stored_at, e.envelope, e.partition_key, e.type, e.subject)
        .join_from(t.events, picked, picked.c.seq == e.seq)
        .order_by(e.seq)
    )


def _matches(sub: Subscription, type_: str, subject: str | None) -> bool:
    f = sub.filter
    if not f.types and not f.subjects:
        return True
    from fnmatch import fnmatchcase

    if f.types and not any(fnmatchcase(type_, p) for p in f.types):
        return False
    if f.subjects:
        return subject is not None and any(fnmatchcase(subject, p) for p in f.subjects)
    return True


def _dialect_insert(conn: sa.Connection, table: sa.Table) -> Any:
    return upsert_insert(conn, table)
