"""The embedded bus on the SQL database (SQLite or PostgreSQL): a transactional outbox/inbox.

Publishing appends to ``bus_events`` in one transaction per batch (under an advisory lock on
PostgreSQL, so sequences become visible in commit order and no reader skips a gap). Each
partition key hashes to one of ``options.shards`` shards; for every subscription and shard a
``bus_cursors`` row holds the sequence up to which the shard's events have been dealt with and
the lease of the worker that owns it. A worker delivers the batch of its shards of a
subscription in one transaction: the handlers' SQL effects, the inbox records, parked retries
and the cursor advance commit together, so a crash redelivers the whole batch and the inbox
absorbs it. A failing event is parked with a backoff and later events of its key are held
behind it; other keys move on. Batches are read, written and claimed through
:mod:`retailsync.bus.driver` (see ``docs/decisions/0002-event-delivery.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import random
import socket
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event

from retailsync.bus import driver
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
    BatchItem,
    Consumer,
    DeliveryStatus,
    HandlerTime,
    SqlExceptionQueue,
    as_utc,
    attempt_record,
    claim_inbox,
    current_delivery,
    dedup_hash,
    dump_attempts,
    glob_to_like,
    load_attempts,
    register_subscription,
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


SQLITE_WAL_AUTOCHECKPOINT = 10_000  # pages (4 KiB): checkpoint when the WAL passes ~40 MB


def sql_engine(url: str) -> sa.Engine:
    """An engine whose SQLite transactions start with BEGIN IMMEDIATE and support savepoints.

    SQLite also checkpoints its write-ahead log less often than its default (every 1,000
    pages): each append and delivery batch rewrites pages all over the bus's indexes (dedup,
    partition key, inbox — their keys are not in insertion order), so the same pages are
    logged again and again; a checkpoint copies each page once and syncs the database file,
    and doing that every few batches cost more wall time than the inserts (measured with
    ``bench/bus.py``).
    """
    engine = create_engine_for(url)
    if engine.dialect.name == "sqlite":

        @sa_event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT}")

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
class _Fetched:
    """New events read for a subscription's shards: the cursors they were read after, how
    many rows were read and the last sequence among them (every cursor may move there), and
    the deliveries (rows the filter selects, parsed)."""

    cursors: dict[int, int]
    last: int | None
    count: int
    items: list[BatchItem]


class BatchPace:
    """How many events a delivery batch of one subscription takes on, from how long its
    handlers have been taking.

    A batch starts no handler once its transaction is ``delivery_hold_limit`` old; the
    events it leaves were read, parsed and claimed in the inbox for nothing (their records
    are deleted again, and the next batch does it all once more). With handlers slower than
    the limit allows for a whole batch — a projection on PostgreSQL makes two round trips an
    event — most of each batch was such work. So a batch takes on only as many events as
    its handlers are expected to run in :data:`HANDLER_SHARE` of the limit, at the smoothed
    time a handler took in the batches before; the limit itself still stops a batch whose
    handlers turn out slower.
    """

    HANDLER_SHARE = 0.8  # of the hold limit; the rest: claiming, parked keys, the commit
    SMOOTHING = 0.5  # weight of the latest batch in the smoothed time per handler

    def __init__(self, hold_limit: float) -> None:
        self.hold_limit = hold_limit
        self.seconds_per_handler: float | None = None  # None: no handler has run yet

    def record(self, timing: HandlerTime) -> None:
        if timing.attempted <= 0:
            return
        latest = timing.seconds / timing.attempted
        before = self.seconds_per_handler
        self.seconds_per_handler = (
            latest if before is None else self.SMOOTHING * latest + (1 - self.SMOOTHING) * before
        )

    def limit(self) -> int | None:
        """Events the next batch takes on (at least one); None: no estimate yet."""
        per_handler = self.seconds_per_handler
        if per_handler is None or per_handler <= 0:
            return None
        return max(1, int(self.hold_limit * self.HANDLER_SHARE / per_handler))


@dataclass
class _Batch:
    """Inbox rows and hashes collected while delivering one shard batch."""

    subscriber: str
    existing: set[str] = field(default_factory=set)
    handled: set[str] = field(default_factory=set)
    inbox_rows: list[tuple[Any, ...]] = field(default_factory=list)  # INBOX_COLUMNS order


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
        self._fetch_statements: dict[int, driver.Compiled] = {}
        self._pace: dict[str, BatchPace] = {}  # per subscription
        self._busy = False  # the last delivery round moved something (or a publish woke it)
        self._wakeup: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

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
                register_subscription(conn, sub, now)
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
                self._wake_delivery()
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
            driver.execute(conn, "SELECT pg_advisory_xact_lock(%s)", (PUBLISH_LOCK_KEY,))
        rows: list[tuple[Any, ...]] = []
        firsts: list[tuple[int, CloudEvent]] = []
        seen: set[tuple[str, str]] = set()
        repeats: list[tuple[int, CloudEvent]] = []
        shards = self.options.shards
        convert = _same if self.is_postgres else driver.sqlite_datetime
        stored_at = convert(utcnow())
        for index, ev in valid:
            pair = (ev.source, ev.id)
            if pair in seen:
                repeats.append((index, ev))
                continue
            seen.add(pair)
            key = partition_key_of(ev)
            rows.append(
                (
                    ev.source,
                    ev.id,
                    ev.type,
                    ev.subject,
                    key,
                    shard_of(key, shards),
                    ev.correlationid,
                    ev.entityversion,
                    convert(ev.time),
                    stored_at,
                    ev.model_dump_json(exclude_none=True),
                )
            )
            firsts.append((index, ev))
        result: list[Any]
        if self.is_postgres:
            result = driver.insert_rows(
                conn, t.events.name, _APPEND_COLUMNS, rows, f"{_APPEND_TAIL} {_APPEND_RETURNING}"
            )
        else:
            # One writer (this transaction holds SQLite's write lock): the rows inserted now are
            # exactly those above the highest sequence before; reading them back costs less
            # than RETURNING.
            before = driver.execute(conn, f"SELECT max(seq) FROM {t.events.name}")[0][0] or 0
            count = driver.sqlite_insert_count(
                conn, t.events.name, _APPEND_COLUMNS, rows, _APPEND_TAIL
            )
            result = (
                driver.execute(
                    conn,
                    f"SELECT seq, source, event_id FROM {t.events.name} WHERE seq > ?",
                    (before,),
                )
                if count
                else []
            )
        inserted = {(source, event_id): int(seq) for seq, source, event_id in result}
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
        """Deliver until ``stop``. Between batches other tasks of the loop get their turn (a
        batch runs its SQL synchronously on the loop); when idle, it polls every
        ``poll_interval`` and wakes at once when this process publishes."""
        self._register_worker()
        wake = asyncio.Event()
        self._wakeup = (asyncio.get_running_loop(), wake)
        try:
            while not stop.is_set():
                work = await self._delivery_round()
                await self._maybe_auto_retry()
                if work.progressed:
                    await asyncio.sleep(0)
                    continue
                await _first_of(stop, wake, timeout=self.options.poll_interval)
                if wake.is_set():
                    wake.clear()
                    self._busy = True
        finally:
            self._wakeup = None
            await self._release()

    def _wake_delivery(self) -> None:
        """Tell this process's ``run_delivery`` that events were appended (any thread)."""
        wakeup = self._wakeup
        if wakeup is None:
            return
        loop, wake = wakeup
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nothing to wake
                loop.call_soon_threadsafe(wake.set)

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
        """Deliver every subscription that has work, on all the shards this worker owns (one
        transaction each; the fetch finds what is new). After a round that moved something
        the next one goes straight there (checking first costs two queries per round while
        busy); after an idle round only subscriptions with an active shard are opened (no
        write transaction while idle)."""
        self._renew_leases()
        total = _Round()
        by_subscriber: dict[str, list[int]] = defaultdict(list)
        if self._busy:
            wanted = set(self._subscriptions)
        else:
            wanted = {subscriber for subscriber, _ in self._active_shards()}
        for subscriber, shard in sorted(self._owned):
            if subscriber in wanted:
                by_subscriber[subscriber].append(shard)
        for subscriber, shards in by_subscriber.items():
            sub = self._subscriptions.get(subscriber)
            if sub is None:
                continue
            work = await self._deliver_shards(sub, shards)
            total.handled += work.handled
            total.progressed += work.progressed
        self._busy = total.progressed > 0
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
        then up to ``delivery_batch_size`` new events in sequence order, through
        :meth:`Consumer.deliver_batch` (one statement claims their inbox records); the
        cursors advance past them in the same transaction.

        The new events are read and parsed before the write transaction, in a worker
        thread (:meth:`_prefetch`): on SQLite a publish can write meanwhile, on PostgreSQL
        the event loop stays free. Under the cursor lock the cursors are compared with the
        ones the batch was read after; when another worker moved them in between, the
        batch is read again.
        """
        work = _Round()
        fetched = await asyncio.to_thread(self._prefetch, sub, shards)
        if fetched is None:
            return work
        async with self._writer():
            with self.engine.connect() as conn, conn.begin():
                deadline = time.monotonic() + self.options.delivery_hold_limit
                cursors = self._owned_cursors(conn, sub.name, shards, lock=True)
                for shard in shards:
                    if shard not in cursors:
                        self._owned.discard((sub.name, shard))
                if not cursors:
                    return work
                batch = _Batch(sub.name)
                blocked = await self._settle_parked(conn, sub, list(cursors), batch, work, deadline)
                if fetched.cursors != cursors:
                    fetched = self._read_new(conn, sub, cursors)
                items = fetched.items
                work.progressed += fetched.count
                if batch.inbox_rows:  # parked events handled above: recorded before the batch
                    claim_inbox(conn, batch.inbox_rows)
                now = utcnow()

                def failed(conn: sa.Connection, item: BatchItem) -> bool:
                    error = item.error
                    assert error is not None
                    classification = item.classification or Classification.TRANSIENT
                    record = attempt_record(1, error, classification)
                    if sub.retry.attempts_for(classification) <= 1:
                        self.consumer.record_exception(conn, sub, item.stored, [record], error)
                        return False
                    self._park(
                        conn,
                        sub,
                        item.partition,
                        item.key,
                        item.stored.sequence,
                        attempts=1,
                        due=now + timedelta(seconds=self._delay(sub, 1, error)),
                        history=[record],
                    )
                    return True

                pace = self._pace.get(sub.name)
                if pace is None:
                    pace = self._pace[sub.name] = BatchPace(self.options.delivery_hold_limit)
                timing = await self.consumer.deliver_batch(
                    conn,
                    items,
                    blocked={(sub.name, key) for key in blocked},
                    on_failure=failed,
                    deadline=deadline,
                    limit=pace.limit(),
                )
                pace.record(timing)
                last = fetched.last
                for item in items:
                    status = item.status
                    if status is DeliveryStatus.DEFERRED:
                        # out of time: the cursors stop just before it (every event of these
                        # shards below it was delivered or is not for this subscription)
                        last = item.stored.sequence - 1
                        break
                    if status is DeliveryStatus.HELD:
                        self._park(
                            conn,
                            sub,
                            item.partition,
                            item.key,
                            item.stored.sequence,
                            attempts=0,
                            due=now,
                            history=[],
                        )
                    elif status is not DeliveryStatus.DUPLICATE:
                        work.handled += 1
                if last is not None:
                    # Every event of these shards up to the batch's last sequence is in the
                    # batch (see _fetch_new): each cursor moves there, also past other shards'
                    # events, so the cursors stay level and the next fetch is one range scan.
                    mark = driver.placeholder(conn)
                    driver.executemany(
                        conn,
                        f"UPDATE {t.cursors.name} SET last_seq = {mark} "
                        f"WHERE subscriber = {mark} AND shard = {mark}",
                        [(last, sub.name, shard) for shard, seq in cursors.items() if seq < last],
                    )
        return work

    def _owned_cursors(
        self, conn: sa.Connection, name: str, shards: list[int], *, lock: bool = False
    ) -> dict[int, int]:
        """The cursors of the given shards of ``name`` that this worker owns.
        ``lock``: on PostgreSQL the cursor rows stay locked until the commit, so a takeover
        after an expired lease waits for this batch."""
        mark = driver.placeholder(conn)
        sql = (
            f"SELECT shard, last_seq FROM {t.cursors.name} "
            f"WHERE subscriber = {mark} AND owner = {mark} "
            f"AND shard IN ({', '.join([mark] * len(shards))}) ORDER BY shard"
        )
        if lock and self.is_postgres:
            sql += " FOR UPDATE"
        rows = driver.execute(conn, sql, (name, self.worker_id, *shards))
        return {int(shard): int(last) for shard, last in rows}

    def _prefetch(self, sub: Subscription, shards: list[int]) -> _Fetched | None:
        """The next batch of ``sub``'s owned ``shards``, read without a write transaction
        (runs in a worker thread); None when there is nothing to do (no new events, no
        parked retry due)."""
        reader = self.engine.connect().execution_options(**{READ_ONLY: True})
        with reader as conn, conn.begin():
            cursors = self._owned_cursors(conn, sub.name, shards)
            if not cursors:
                return None
            rows = self._fetch_new(conn, cursors)
            if not rows and not self._parked_due(conn, sub.name, list(cursors)):
                return None
        return self._parse(sub, cursors, rows)

    def _read_new(
        self, conn: sa.Connection, sub: Subscription, cursors: dict[int, int]
    ) -> _Fetched:
        return self._parse(sub, cursors, self._fetch_new(conn, cursors))

    def _parse(self, sub: Subscription, cursors: dict[int, int], rows: list[Any]) -> _Fetched:
        """The deliveries among ``rows`` (those ``sub``'s filter selects), envelopes parsed."""
        items: list[BatchItem] = []
        select_all = not sub.filter.types and not sub.filter.subjects
        validate = CloudEvent.model_validate_json
        read_time = functools.lru_cache(maxsize=16)(driver.read_datetime)  # one per publish
        for seq, shard, stored_at, envelope, key, type_, subject in rows:
            if not select_all and not _matches(sub, type_, subject):
                continue
            stored = StoredEvent(seq, read_time(stored_at), validate(envelope))
            items.append(BatchItem(sub, stored, key, partition=shard))
        return _Fetched(dict(cursors), rows[-1][0] if rows else None, len(rows), items)

    def _parked_due(self, conn: sa.Connection, name: str, shards: list[int]) -> bool:
        p = t.parked.c
        due = conn.execute(
            sa.select(sa.literal(1))
            .where(p.subscriber == name, p.shard.in_(shards), p.next_attempt_at <= utcnow())
            .limit(1)
        ).first()
        return due is not None

    def _fetch_new(self, conn: sa.Connection, cursors: Mapping[int, int]) -> list[Any]:
        """The next events after the given shards' cursors, at most ``delivery_batch_size``,
        in sequence order, as tuples (seq, shard, stored_at, envelope, partition_key, type,
        subject).

        Every event of these shards with a sequence between its shard's cursor and the last
        sequence returned is included, so each cursor may move to that last sequence.
        Sequences become visible in order (one writer on SQLite, the advisory lock on
        PostgreSQL), so no event appears later below a cursor.

        When the worker reads every shard and the cursors are close together (the usual
        case: they move to the same sequence after each batch) it is one range scan of the
        primary key, skipping the few rows at or below their shard's cursor. Otherwise one
        statement merges a range scan of the (shard, seq) index per shard.
        """
        limit = self.options.delivery_batch_size
        low = min(cursors.values())
        spread = max(cursors.values()) - low
        if len(cursors) == self.options.shards and spread <= limit:
            mark = driver.placeholder(conn)
            rows = driver.execute(
                conn,
                f"SELECT seq, shard, stored_at, envelope, partition_key, type, subject "
                f"FROM {t.events.name} WHERE seq > {mark} ORDER BY seq LIMIT {mark}",
                (low, limit + spread),
            )
            if spread:
                rows = [row for row in rows if row[0] > cursors[row[1]]]
            return rows
        statement = self._fetch_statements.get(len(cursors))
        if statement is None:
            statement = driver.Compiled.of(_fetch_statement(len(cursors)), conn.dialect)
            self._fetch_statements[len(cursors)] = statement
        params: dict[str, int] = {"b_limit": limit}
        for n, (shard, last) in enumerate(cursors.items()):
            params[f"b_shard_{n}"] = shard
            params[f"b_after_{n}"] = last
        return statement.run(conn, params)

    async def _settle_parked(
        self,
        conn: sa.Connection,
        sub: Subscription,
        shards: list[int],
        batch: _Batch,
        work: _Round,
        deadline: float | None = None,
    ) -> set[str]:
        """Retry due heads of parked keys (and the events held behind them that can now go);
        returns the keys still blocked. After ``deadline`` (``time.monotonic()``) no further
        key is started: the rest stay parked and due for the next batch."""
        mark = driver.placeholder(conn)
        anything = driver.execute(
            conn, f"SELECT 1 FROM {t.parked.name} WHERE subscriber = {mark} LIMIT 1", (sub.name,)
        )
        if not anything:  # the usual case: one index probe instead of building the scan
            return set()
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
        for position, key in enumerate(due_heads):
            if position and deadline is not None and time.monotonic() >= deadline:
                break
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
        item = BatchItem(sub, stored, partition_key_of(stored.event), attempt)
        error, stale = await self.consumer.run_handler(conn, item, forced=forced)
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
                (
                    sub.name,
                    key,
                    stored.sequence,
                    outcome,
                    attempt,
                    driver.db_datetime(conn, utcnow()),
                )
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


# Columns of an append (driver order) and what the insert returns; see retailsync.bus.driver.
_APPEND_COLUMNS: driver.Columns = (
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
_APPEND_TAIL = "ON CONFLICT (source, event_id) DO NOTHING"
_APPEND_RETURNING = "RETURNING seq, source, event_id"


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


def _same(value: datetime) -> datetime:
    return value


async def _first_of(*events: asyncio.Event, timeout: float) -> None:  # noqa: ASYNC109
    """Wait until one of ``events`` is set or ``timeout`` seconds passed."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


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
