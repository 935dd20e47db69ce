"""The scale-out bus on NATS JetStream; the consumer side stays in the hub's SQL database.

Publishing awaits JetStream's PubAck for every event (stored in a file-backed stream before
``publish`` returns), with ``Nats-Msg-Id`` = the event's source + id hash so a repeat inside
the stream's duplicate window is answered DUPLICATE and not stored twice; a repeat after the
window is stored again and absorbed by the SQL inbox at delivery. Delivery, ordering, retries
and poison events are described in :mod:`.nats_delivery`, :mod:`.nats_parking` and
``docs/decisions/0004-nats-jetstream-backend.md``.
"""

from __future__ import annotations

import asyncio
import atexit
import builtins
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

import nats
import nats.errors
import nats.js.errors
import sqlalchemy as sa
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, PubAck
from nats.js.client import JetStreamContext
from pydantic import ValidationError

from retailsync.bus import tables as t
from retailsync.bus.backend import (
    BackendConfig,
    BulkOutcome,
    BusOptions,
    Classification,
    EventBusBackend,
    ExceptionAction,
    ExceptionEntry,
    ExceptionFilter,
    ExceptionQueue,
    ExceptionSelection,
    HealthProbe,
    ProgressCallback,
    PublishOutcome,
    PublishStatus,
    ReplayProgress,
    ReplayRequest,
    StoredEvent,
    Subscription,
)
from retailsync.bus.backends import nats_parking as parking
from retailsync.bus.backends.nats_delivery import DeliveryRun, wait_until_idle
from retailsync.bus.backends.nats_errors import (
    NatsSettingInvalid,
    NatsUnavailable,
    PublishNotAcknowledged,
)
from retailsync.bus.backends.nats_layout import (
    MSG_ID_HEADER,
    NatsSettings,
    StreamLayout,
    identity_hash,
)
from retailsync.bus.backends.sql import sql_engine
from retailsync.bus.consumer import (
    Consumer,
    DeliveryStatus,
    SqlExceptionQueue,
    attempt_record,
    dedup_hash,
    register_subscription,
    utcnow,
)
from retailsync.bus.errors import (
    BusNotMigrated,
    InvalidSubscriptionName,
    UnknownSubscriber,
    retry_after_of,
)
from retailsync.bus.validation import partition_key_of, validate_batch
from retailsync.domain.events import CloudEvent
from retailsync.observability import metrics as hub_metrics

log = logging.getLogger(__name__)

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")
_SCAN_BATCH = 256
ADVISORY_CONSUMER = "max-deliveries"


def create_backend(config: BackendConfig) -> NatsEventBus:
    """The JetStream backend for ``config`` (``config.nats_url`` is required)."""
    return NatsEventBus(config)


class NatsEventBus(EventBusBackend):
    """:class:`~retailsync.bus.backend.EventBusBackend` on NATS JetStream + the SQL consumer."""

    name = "nats"

    def __init__(self, config: BackendConfig, engine: sa.Engine | None = None) -> None:
        if not config.nats_url:
            raise NatsSettingInvalid(
                "nats_url", "is required for the NATS bus (e.g. nats://127.0.0.1:4222)"
            )
        self.config = config
        self.options: BusOptions = config.options
        self.settings = NatsSettings.from_extra(config.extra)
        self.layout = StreamLayout.for_config(config)
        self.engine = engine or sql_engine(config.database_url)
        self._own_engine = engine is None
        self.consumer = Consumer(self.engine, self.options)
        self.sql_lock = asyncio.Lock()
        self.parked_changed = asyncio.Event()  # wakes the parked-retry loop of this process
        self._exceptions = _SerializedExceptionQueue(
            SqlExceptionQueue(self.engine, self.options, self._redeliver),
            self.sql_lock,
            self.parked_changed,
        )
        self.ack_wait = max(1.0, self.options.lease_ttl)
        self.fetch_timeout = self.settings.fetch_timeout or min(2.0, max(0.25, self.ack_wait / 4))
        self._subscriptions: dict[str, Subscription] = {}
        self.advisory_subscription: JetStreamContext.PullSubscription | None = None
        self._consumer_owner: dict[str, tuple[str, int]] = {}
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._run: DeliveryRun | None = None
        self._run_lock = asyncio.Lock()
        self._closed = False

    # ----------------------------------------------------------------------------------------
    # lifecycle
    # ----------------------------------------------------------------------------------------

    def subscribe(self, subscription: Subscription) -> None:
        name = subscription.name
        if not (1 <= len(name) <= 100) or not set(name) <= _NAME_CHARS:
            raise InvalidSubscriptionName(name)
        self._subscriptions[name] = subscription

    def subscription(self, name: str) -> Subscription | None:
        return self._subscriptions.get(name)

    @property
    def subscription_names(self) -> list[str]:
        return sorted(self._subscriptions)

    def consumer_owner(self, consumer: str) -> tuple[str, int] | None:
        """The (subscription, partition) a durable consumer name belongs to, if ours."""
        return self._consumer_owner.get(consumer)

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise RuntimeError("the NATS bus is not started: call `await bus.start()` first")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("the NATS bus is not started: call `await bus.start()` first")
        return self._js

    async def start(self) -> None:
        if not sa.inspect(self.engine).has_table(t.inbox.name):
            raise BusNotMigrated(self.config.database_url)
        _forget_pending_deletion(self.config.nats_url or "", self.layout.namespace)
        await _delete_pending_namespaces(keep=self.layout.namespace)
        url = self.config.nats_url or ""
        limit = self.settings.connect_timeout
        try:
            self._nc = await asyncio.wait_for(
                nats.connect(
                    url,
                    name=f"retailsync-bus-{self.config.worker_id}",
                    connect_timeout=limit,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    error_cb=_log_error,
                    disconnected_cb=_log_disconnect,
                ),
                limit,
            )
        except TimeoutError as exc:
            raise NatsUnavailable(url, f"no connection within {limit:g}s") from exc
        except (OSError, nats.errors.Error) as exc:
            raise NatsUnavailable(url, repr(exc)) from exc
        self._js = self._nc.jetstream(timeout=10)
        try:
            await self._js.account_info()
        except nats.js.errors.Error as exc:
            await self._nc.close()
            raise NatsUnavailable(url, f"JetStream is not enabled ({exc})") from exc
        await self._ensure_stream(self.layout.stream_config(self.settings), check=True)
        await self._ensure_stream(self.layout.advisory_stream_config(self.settings), check=False)
        self._register_subscriptions()
        for sub in self._subscriptions.values():
            for partition in range(self.layout.partitions):
                name = await self._ensure_consumer(sub, partition)
                self._consumer_owner[name] = (sub.name, partition)
        if self._subscriptions:
            await self._ensure_advisory_consumer()
        _open_namespaces[(url, self.layout.namespace)] = (
            _open_namespaces.get((url, self.layout.namespace), 0) + 1
        )
        self._closed = False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        run = self._run
        if run is not None:
            await run.stop()
            self._run = None
        nc, self._nc = self._nc, None
        if nc is not None:
            key = (self.config.nats_url or "", self.layout.namespace)
            count = _open_namespaces.get(key, 0) - 1
            if count > 0:
                _open_namespaces[key] = count
            else:
                _open_namespaces.pop(key, None)
            if self.advisory_subscription is not None:
                with contextlib.suppress(Exception):
                    await self.advisory_subscription.unsubscribe()
            with contextlib.suppress(Exception):
                await nc.close()  # not drain(): see the note on pull subscriptions
            if self.settings.delete_on_close:
                _schedule_deletion(*key)
        self.advisory_subscription = None
        self._js = None
        if self._own_engine:
            self.engine.dispose()

    async def _ensure_stream(self, config: Any, *, check: bool) -> None:
        js = self.js
        try:
            info = await js.stream_info(config.name)
        except nats.js.errors.NotFoundError:
            try:
                info = await js.add_stream(config)
            except nats.js.errors.BadRequestError:
                info = await js.stream_info(config.name)  # created meanwhile by another worker
        if check:
            self.layout.check_partitions(info.config.description)
            current = info.config
            if current.duplicate_window != config.duplicate_window or (current.max_age or 0) != (
                config.max_age or 0
            ):
                await js.update_stream(
                    current.evolve(duplicate_window=config.duplicate_window, max_age=config.max_age)
                )

    async def _ensure_consumer(self, sub: Subscription, partition: int) -> str:
        wanted = self.layout.consumer_config(
            sub.name,
            partition,
            ack_wait=self.ack_wait,
            settings=self.settings,
            start_latest=sub.start_from == "latest",
        )
        name = wanted.durable_name or ""
        try:
            info = await self.js.consumer_info(self.layout.stream, name)
        except nats.js.errors.NotFoundError:
            try:
                await self.js.add_consumer(self.layout.stream, wanted)
            except nats.js.errors.BadRequestError:
                await self.js.consumer_info(self.layout.stream, name)
            return name
        current = info.config
        if (
            current.ack_wait != wanted.ack_wait
            or current.max_deliver != wanted.max_deliver
            or current.max_ack_pending != wanted.max_ack_pending
        ):
            try:
                await self.js.add_consumer(
                    self.layout.stream,
                    wanted.evolve(
                        deliver_policy=current.deliver_policy,
                        opt_start_seq=current.opt_start_seq,
                        opt_start_time=current.opt_start_time,
                    ),
                )
            except nats.js.errors.APIError as exc:
                log.warning("bus.nats.consumer_update_failed", extra={"error": repr(exc)})
        return name

    async def _ensure_advisory_consumer(self) -> None:
        stream = self.layout.advisory_stream
        try:
            await self.js.consumer_info(stream, ADVISORY_CONSUMER)
        except nats.js.errors.NotFoundError:
            with contextlib.suppress(nats.js.errors.BadRequestError):
                await self.js.add_consumer(
                    stream,
                    ConsumerConfig(
                        name=ADVISORY_CONSUMER,
                        durable_name=ADVISORY_CONSUMER,
                        ack_policy=AckPolicy.EXPLICIT,
                        ack_wait=max(5.0, self.ack_wait),
                        max_ack_pending=100,
                    ),
                )
        self.advisory_subscription = await self.js.pull_subscribe_bind(
            ADVISORY_CONSUMER, stream=stream
        )

    def _register_subscriptions(self) -> None:
        now = utcnow()
        with self.engine.begin() as conn:
            for sub in self._subscriptions.values():
                register_subscription(conn, sub, now)

    # ----------------------------------------------------------------------------------------
    # publishing and reading
    # ----------------------------------------------------------------------------------------

    async def publish(
        self, events: Sequence[CloudEvent | Mapping[str, Any]]
    ) -> list[PublishOutcome]:
        valid, rejected = validate_batch(events, self.options.max_batch_size)
        outcomes: list[PublishOutcome] = list(rejected)
        if valid:
            acks = await self._store(valid)
            for (index, event), ack in zip(valid, acks, strict=True):
                outcomes.append(
                    PublishOutcome(
                        index=index,
                        status=PublishStatus.DUPLICATE if ack.duplicate else PublishStatus.ACCEPTED,
                        source=event.source,
                        id=event.id,
                        sequence=ack.seq,
                    )
                )
        outcomes.sort(key=lambda o: o.index)
        hub_metrics.events_accepted(events, outcomes)
        return outcomes

    async def _store(self, valid: list[tuple[int, CloudEvent]]) -> list[PubAck]:
        """Publish every event and wait for every PubAck (in input order)."""
        js = self.js
        stream = self.layout.stream
        layout = self.layout
        futures: list[asyncio.Future[PubAck]] = []
        try:
            # One time limit for the whole batch rather than ``wait_stall`` per message: with
            # a timeout, nats-py waits for its pending-publish semaphore in a new task, i.e.
            # yields to the event loop after every message, and the client then flushes each
            # message with its own write (measured: ~4x the CPU per published event).
            async with asyncio.timeout(self.settings.publish_timeout):
                for _, event in valid:
                    digest = dedup_hash(event)
                    # No Nats-Expected-Stream header: JetStream stores every header with the
                    # message and each delivery parses them again (in Python, per character);
                    # the PubAck names the stream instead, checked below.
                    futures.append(
                        await js.publish_async(
                            layout.subject_for(event, digest),
                            event.model_dump_json(exclude_none=True).encode(),
                            headers={MSG_ID_HEADER: digest},
                        )
                    )
        except TimeoutError as exc:
            for future in futures:
                future.cancel()
            raise PublishNotAcknowledged(
                len(valid), f"publishing stalled for {self.settings.publish_timeout:g}s"
            ) from exc
        except nats.errors.Error as exc:
            for future in futures:
                future.cancel()
            raise PublishNotAcknowledged(len(valid), repr(exc)) from exc
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*futures, return_exceptions=True), self.settings.publish_timeout
            )
        except TimeoutError as exc:
            for future in futures:
                future.cancel()
            raise PublishNotAcknowledged(
                sum(1 for f in futures if not f.done() or f.cancelled()),
                f"no answer within {self.settings.publish_timeout:g}s",
            ) from exc
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise PublishNotAcknowledged(len(failures), repr(failures[0])) from failures[0]
        acks = [r for r in results if isinstance(r, PubAck)]
        elsewhere = [ack.stream for ack in acks if ack.stream != stream]
        if elsewhere:
            raise PublishNotAcknowledged(
                len(elsewhere), f"stored by stream {elsewhere[0]!r}, not {stream!r}"
            )
        return acks

    async def load_event(self, sequence: int) -> StoredEvent | None:
        """The stored event at ``sequence``, or None when the stream no longer has it."""
        try:
            raw = await self.js.get_msg(self.layout.stream, sequence)
        except nats.js.errors.NotFoundError:
            return None
        if raw.data is None:
            return None
        stored_at = raw.time or utcnow()
        return StoredEvent(sequence, stored_at, CloudEvent.model_validate_json(raw.data))

    async def get_event(self, source: str, id: str) -> StoredEvent | None:
        wanted = identity_hash(source, id)
        async for msg in self.scan(self.layout.lookup_filter(source, id)):
            if (msg.headers or {}).get(MSG_ID_HEADER) != wanted:
                continue
            stored = _stored(msg)
            if stored is not None and (stored.event.source, stored.event.id) == (source, id):
                return stored
        return None

    async def scan(
        self,
        filter_subject: str | None = None,
        *,
        start_sequence: int | None = None,
        since: datetime | None = None,
        end_sequence: int | None = None,
    ) -> AsyncIterator[Msg]:
        """Every stored message matching ``filter_subject`` in stream order, read through a
        short-lived consumer (replay and lookups; it never touches the durable consumers)."""
        js = self.js
        stream = self.layout.stream
        if end_sequence is None:
            end_sequence = (await js.stream_info(stream)).state.last_seq
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            mem_storage=True,
            inactive_threshold=60.0,
            max_ack_pending=-1,
        )
        if start_sequence is not None:
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = max(1, start_sequence)
        elif since is not None:
            config.deliver_policy = DeliverPolicy.BY_START_TIME
            config.opt_start_time = since
        consumer = f"scan-{uuid.uuid4().hex}"
        config.name = consumer
        config.filter_subject = filter_subject or self.layout.subjects
        await js.add_consumer(stream, config)
        psub = await js.pull_subscribe_bind(consumer, stream=stream)
        try:
            info = await psub.consumer_info()
            remaining = info.num_pending or 0
            while remaining > 0:
                try:
                    msgs = await psub.fetch(_SCAN_BATCH, timeout=5.0)
                except nats.errors.TimeoutError:
                    break
                for msg in msgs:
                    meta = msg.metadata
                    if meta.sequence.stream > end_sequence:
                        return
                    yield msg
                    remaining = meta.num_pending
                if not msgs:
                    break
        finally:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
            with contextlib.suppress(Exception):
                await js.delete_consumer(stream, consumer)

    # ----------------------------------------------------------------------------------------
    # delivery
    # ----------------------------------------------------------------------------------------

    async def run_delivery(self, stop: asyncio.Event) -> None:
        async with self._run_lock:
            run = self._begin_run(auto_retry=True)
            try:
                await stop.wait()
            finally:
                await run.stop()
                self._run = None

    async def deliver_until_idle(self, *, timeout: float = 30.0) -> int:  # noqa: ASYNC109
        async with self._run_lock:
            run = self._begin_run(auto_retry=False)
            try:
                await wait_until_idle(
                    run,
                    self._server_idle,
                    self._parked_wait,
                    within=timeout,
                    poll=self.options.poll_interval,
                )
            finally:
                await run.stop()
                self._run = None
            return run.counters.handler_runs

    def _begin_run(self, *, auto_retry: bool) -> DeliveryRun:
        if self._closed or self._nc is None:
            raise RuntimeError("the NATS bus is not started (or already closed)")
        run = DeliveryRun(self)
        self._run = run
        run.start(auto_retry=auto_retry)
        return run

    async def _server_idle(self) -> bool:
        js = self.js
        for consumer in self._consumer_owner:
            info = await js.consumer_info(self.layout.stream, consumer)
            if info.num_pending or info.num_ack_pending:
                return False
        if self.advisory_subscription is not None:
            info = await js.consumer_info(self.layout.advisory_stream, ADVISORY_CONSUMER)
            if info.num_pending or info.num_ack_pending:
                return False
        return True

    async def _parked_wait(self) -> float | None:
        async with self.sql_lock:
            with self.engine.connect() as conn:
                return parking.next_due_in(conn, self.subscription_names)

    # ----------------------------------------------------------------------------------------
    # exceptions and replay
    # ----------------------------------------------------------------------------------------

    @property
    def exceptions(self) -> ExceptionQueue:
        return self._exceptions

    async def _redeliver(self, conn: sa.Connection, entries: Sequence[ExceptionEntry]) -> None:
        """Queue each entry's event as a parked delivery, in the status change's transaction."""
        now = utcnow()
        for entry in entries:
            key = partition_key_of(entry.event) if entry.event is not None else None
            if key is None:
                key = entry.partition_key or f"{entry.event_source}\x1f{entry.event_id}"
            parking.requeue(
                conn,
                subscriber=entry.subscriber,
                partition=self.layout.partition_of_key(key),
                partition_key=key,
                seq=entry.sequence,
                due=now,
                exception_id=entry.id,
            )

    async def replay(
        self,
        request: ReplayRequest,
        progress: ProgressCallback | None = None,
        *,
        start_sequence: int | None = None,
        end_sequence: int | None = None,
    ) -> ReplayProgress:
        """Replay by the request's criteria; on JetStream also by stream sequence range
        (``start_sequence`` / ``end_sequence``, inclusive), combined with the rest (AND)."""
        sub = self._subscriptions.get(request.subscriber)
        if sub is None:
            raise UnknownSubscriber(request.subscriber, list(self._subscriptions))
        filter_subject = None
        if request.partition_key is not None:
            filter_subject = self.layout.partition_filter(
                self.layout.partition_of_key(request.partition_key)
            )
        end = (await self.js.stream_info(self.layout.stream)).state.last_seq
        if end_sequence is not None:
            end = min(end, end_sequence)
        selected: list[int] = []
        async for msg in self.scan(
            filter_subject, start_sequence=start_sequence, since=request.since, end_sequence=end
        ):
            stored = _stored(msg)
            if stored is not None and _selected(request, stored):
                selected.append(stored.sequence)
            elif request.until is not None and msg.metadata.timestamp >= request.until:
                break
        total = len(selected)
        delivered = skipped = failed = 0
        if progress:
            progress(ReplayProgress(total, 0, 0, 0))
        if not selected:
            return ReplayProgress(total, 0, 0, 0)
        wanted = set(selected)
        async for msg in self.scan(
            filter_subject, start_sequence=selected[0], end_sequence=selected[-1]
        ):
            if msg.metadata.sequence.stream not in wanted:
                continue
            stored = _stored(msg)
            if stored is None:
                continue
            if not sub.filter.matches(stored.event):
                skipped += 1
            else:
                status = await self._replay_one(sub, stored, force=request.force)
                if status is DeliveryStatus.DUPLICATE:
                    skipped += 1
                elif status is DeliveryStatus.FAILED:
                    failed += 1
                else:
                    delivered += 1
            if progress:
                progress(ReplayProgress(total, delivered, skipped, failed))
        return ReplayProgress(total, delivered, skipped, failed)

    async def _replay_one(
        self, sub: Subscription, stored: StoredEvent, *, force: bool
    ) -> DeliveryStatus:
        async with self.sql_lock:
            with self.engine.connect() as conn, conn.begin():
                result = await self.consumer.deliver_in(
                    conn, sub, stored, attempt=1, forced=force, replay=True
                )
                if result.status is DeliveryStatus.FAILED:
                    assert result.error is not None
                    classification = result.classification or Classification.TRANSIENT
                    delay = sub.retry.delay(1)
                    after = retry_after_of(result.error)
                    key = partition_key_of(stored.event)
                    parking.park(
                        conn,
                        subscriber=sub.name,
                        partition=self.layout.partition_of_key(key),
                        partition_key=key,
                        seq=stored.sequence,
                        attempts=1,
                        due=utcnow() + timedelta(seconds=max(delay, after or 0.0)),
                        history=[attempt_record(1, result.error, classification)],
                        forced=force,
                    )
                    self.parked_changed.set()
                return result.status


def _stored(msg: Msg) -> StoredEvent | None:
    try:
        event = CloudEvent.model_validate_json(msg.data)
    except ValidationError:
        return None
    meta = msg.metadata
    return StoredEvent(meta.sequence.stream, meta.timestamp, event)


def _selected(request: ReplayRequest, stored: StoredEvent) -> bool:
    event = stored.event
    if request.since is not None and stored.stored_at < request.since:
        return False
    if request.until is not None and stored.stored_at >= request.until:
        return False
    if request.event_types and not any(fnmatchcase(event.type, p) for p in request.event_types):
        return False
    if request.partition_key is not None and partition_key_of(event) != request.partition_key:
        return False
    return request.correlation_id is None or event.correlationid == request.correlation_id


class _SerializedExceptionQueue:
    """The shared SQL exception queue, run under the bus's SQL lock so an operator action
    never interleaves with a delivery transaction of the same process."""

    def __init__(
        self, inner: SqlExceptionQueue, lock: asyncio.Lock, changed: asyncio.Event
    ) -> None:
        self._inner = inner
        self._lock = lock
        self._changed = changed

    async def list(
        self, filter: ExceptionFilter = ExceptionFilter(), *, limit: int = 100, offset: int = 0
    ) -> builtins.list[ExceptionEntry]:
        async with self._lock:
            return await self._inner.list(filter, limit=limit, offset=offset)

    async def count(self, filter: ExceptionFilter = ExceptionFilter()) -> int:
        async with self._lock:
            return await self._inner.count(filter)

    async def get(self, entry_id: int) -> ExceptionEntry:
        async with self._lock:
            return await self._inner.get(entry_id)

    async def retry(
        self, selection: ExceptionSelection, *, actor: str, reason: str | None = None
    ) -> BulkOutcome:
        async with self._lock:
            outcome = await self._inner.retry(selection, actor=actor, reason=reason)
        self._changed.set()
        return outcome

    async def resolve(self, selection: ExceptionSelection, *, actor: str, note: str) -> BulkOutcome:
        async with self._lock:
            return await self._inner.resolve(selection, actor=actor, note=note)

    async def discard(
        self, selection: ExceptionSelection, *, actor: str, reason: str
    ) -> BulkOutcome:
        async with self._lock:
            return await self._inner.discard(selection, actor=actor, reason=reason)

    async def actions(self, entry_id: int) -> builtins.list[ExceptionAction]:
        async with self._lock:
            return await self._inner.actions(entry_id)

    async def auto_retry(self, probe: HealthProbe, limit: int) -> int:
        async with self._lock:
            queued = await self._inner.auto_retry(probe, limit)
        if queued:
            self._changed.set()
        return queued


# --------------------------------------------------------------------------------------------
# namespace clean-up (tests and throw-away namespaces)
# --------------------------------------------------------------------------------------------

_open_namespaces: dict[tuple[str, str], int] = {}
_pending_deletions: set[tuple[str, str]] = set()


async def delete_namespace(nats_url: str, namespace: str) -> None:
    """Delete a namespace's streams (events, advisories) and with them their consumers."""
    nc = await nats.connect(nats_url, connect_timeout=5, allow_reconnect=False)
    try:
        js = nc.jetstream()
        for stream in (f"{namespace}_EVENTS", f"{namespace}_ADVISORIES"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(stream)
    finally:
        await nc.close()


def _schedule_deletion(nats_url: str, namespace: str) -> None:
    """Delete later: a backend of the same namespace may start again (a restart in a test)."""
    if not _pending_deletions:
        atexit.register(_delete_pending_at_exit)
    _pending_deletions.add((nats_url, namespace))


def _forget_pending_deletion(nats_url: str, namespace: str) -> None:
    _pending_deletions.discard((nats_url, namespace))


async def _delete_pending_namespaces(keep: str) -> None:
    for url, namespace in sorted(_pending_deletions):
        if namespace == keep or (url, namespace) in _open_namespaces:
            continue
        _pending_deletions.discard((url, namespace))
        try:
            await delete_namespace(url, namespace)
        except Exception as exc:
            log.warning("bus.nats.namespace_cleanup_failed", extra={"error": repr(exc)})


def _delete_pending_at_exit() -> None:
    if not _pending_deletions:
        return
    with contextlib.suppress(Exception):
        asyncio.run(_delete_pending_namespaces(keep=""))


async def _log_error(exc: Exception) -> None:
    log.warning("bus.nats.connection_error", extra={"error": repr(exc)})


async def _log_disconnect() -> None:
    log.info("bus.nats.disconnected")
