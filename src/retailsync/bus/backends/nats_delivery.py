"""Live delivery for the JetStream backend: pull, hand to the SQL consumer, ack.

Per (subscription, partition) a fetcher keeps one pull request open on its durable consumer
(:class:`PartitionPull`; ``MaxAckPending=1``: the server hands a partition's next event to
one worker only after the previous one is acked, whichever process holds it). One processor
takes what the fetchers hold and delivers it in a single SQL transaction
(:meth:`~retailsync.bus.consumer.Consumer.deliver_batch`: one inbox claim for the batch, a
savepoint only for handlers that write), commits, then acks. A heartbeat
keeps held events from timing out (``in_progress``) while they wait or run. Failing events
are parked in SQL (:mod:`.nats_parking`) and retried by the parked-retry loop;
MAX_DELIVERIES advisories become exception entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import nats.errors
import sqlalchemy as sa
from nats.aio.msg import Msg
from pydantic import ValidationError

from retailsync.bus import driver
from retailsync.bus import tables as t
from retailsync.bus.backend import AttemptRecord, Classification, StoredEvent, Subscription
from retailsync.bus.backends import nats_parking as parking
from retailsync.bus.backends.nats_errors import EventNoLongerStored, MaxDeliveriesExceeded
from retailsync.bus.consumer import (
    BatchItem,
    DeliveryStatus,
    as_utc,
    attempt_record,
    dedup_hash,
    load_attempts,
    utcnow,
)
from retailsync.bus.errors import qualified_name, retry_after_of
from retailsync.bus.validation import partition_key_of
from retailsync.domain.events import CloudEvent

if TYPE_CHECKING:
    from nats.aio.client import Client

    from retailsync.bus.backends.nats import NatsEventBus

log = logging.getLogger(__name__)

_JS_API = "$JS.API"
_PARKED_BATCH = 50
_DB_RETRY_MAX = 5.0
_FETCH_ERROR_PAUSE = 0.5


class PartitionPull:
    """A continuous pull on one partition consumer.

    One pull request for up to ``batch`` events stays open (until ``expires``); with
    ``MaxAckPending=1`` the server sends the partition's next event as soon as the previous one
    is acked, without a new request per event. A new request goes out when the open one is
    used up, expired or refused.
    """

    def __init__(
        self, nc: Client, stream: str, consumer: str, *, batch: int = 256, expires: float = 1.0
    ) -> None:
        self._nc = nc
        self._subject = f"{_JS_API}.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._batch = batch
        self._expires = expires
        self._queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._inbox = ""
        self._sub: Any = None
        self._remaining = 0
        self._deadline = 0.0

    async def open(self) -> None:
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox, cb=self._arrived)

    async def _arrived(self, msg: Msg) -> None:
        self._queue.put_nowait(msg)

    async def _request(self) -> None:
        loop = asyncio.get_running_loop()
        self._remaining = self._batch
        self._deadline = loop.time() + self._expires
        request = {"batch": self._batch, "expires": int(self._expires * 1_000_000_000)}
        await self._nc.publish(self._subject, json.dumps(request).encode(), reply=self._inbox)

    async def next(self) -> Msg:
        """The partition's next event (waits as long as it takes)."""
        loop = asyncio.get_running_loop()
        while True:
            if self._queue.empty() and (self._remaining <= 0 or loop.time() >= self._deadline):
                await self._request()
            try:
                async with asyncio.timeout_at(max(self._deadline, loop.time() + 0.01) + 0.1):
                    msg = await self._queue.get()
            except TimeoutError:
                self._remaining = 0
                continue
            status = (msg.headers or {}).get("Status") if not msg.data else None
            if status is None:
                self._remaining -= 1
                return msg
            if status == "100":  # heartbeat / flow control
                continue
            self._remaining = 0  # 404 / 408: request over; 409: refused (retry shortly)
            if status == "409":
                await asyncio.sleep(_FETCH_ERROR_PAUSE)

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None


@dataclass(eq=False)
class _Held:
    """An event a fetcher holds from its partition consumer until it is acked."""

    subscriber: str
    partition: int
    msg: Msg
    done: asyncio.Future[None]


@dataclass
class DeliveryCounters:
    handler_runs: int = 0
    acked: int = 0
    parked: int = 0
    exceptions: int = 0


@dataclass
class DeliveryRun:
    """The tasks of one ``run_delivery`` / ``deliver_until_idle`` call."""

    bus: NatsEventBus
    counters: DeliveryCounters = field(default_factory=DeliveryCounters)
    queue: asyncio.Queue[_Held | None] = field(default_factory=asyncio.Queue)
    held: set[_Held] = field(default_factory=set)
    busy: int = 0
    stopping: bool = False
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # a fetcher queued an event
    _connection: sa.Connection | None = None  # the live path's connection (see below)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    fetchers: list[asyncio.Task[None]] = field(default_factory=list)
    _rng: random.Random = field(default_factory=random.Random)

    # ------------------------------------------------------------------------------------
    # lifecycle
    # ------------------------------------------------------------------------------------

    def start(self, *, auto_retry: bool) -> None:
        bus = self.bus
        for (subscriber, partition), pull in bus.partition_pulls.items():
            self.fetchers.append(
                asyncio.create_task(
                    self._fetch_loop(subscriber, partition, pull),
                    name=f"nats-fetch-{subscriber}-{partition}",
                )
            )
        self.tasks.append(asyncio.create_task(self._process_loop(), name="nats-process"))
        self.tasks.append(asyncio.create_task(self._heartbeat_loop(), name="nats-heartbeat"))
        self.tasks.append(asyncio.create_task(self._parked_loop(), name="nats-parked"))
        if bus.advisory_subscription is not None:
            self.tasks.append(asyncio.create_task(self._advisory_loop(), name="nats-advisory"))
        if auto_retry and bus.config.health_probe is not None:
            self.tasks.append(asyncio.create_task(self._auto_retry_loop(), name="nats-auto"))

    async def stop(self) -> None:
        """Stop fetching, finish the batch in hand, give back anything not delivered."""
        self.stopping = True
        for task in self.fetchers:
            task.cancel()
        if self.fetchers:
            await asyncio.wait(self.fetchers, timeout=5.0)
        self.queue.put_nowait(None)
        for task in self.tasks:
            if task.get_name() != "nats-process":
                task.cancel()
        _, late = await asyncio.wait(self.tasks, timeout=max(5.0, 2 * self.bus.ack_wait))
        for task in late:  # a handler that does not finish: give its events back
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.close_connection()
        leftovers = [item for item in self.held if not item.done.done()]
        for item in leftovers:
            with contextlib.suppress(Exception):
                await item.msg.nak()
            item.done.set_result(None)
        self.held.clear()

    @property
    def locally_idle(self) -> bool:
        return self.queue.empty() and self.busy == 0 and not self.held

    # ------------------------------------------------------------------------------------
    # live path
    # ------------------------------------------------------------------------------------

    async def _fetch_loop(self, subscriber: str, partition: int, pull: PartitionPull) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping:
            try:
                msg = await pull.next()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection trouble: the client reconnects by itself
                log.warning("bus.nats.fetch_failed", extra={"error": repr(exc)})
                await asyncio.sleep(_FETCH_ERROR_PAUSE)
                continue
            item = _Held(subscriber, partition, msg, loop.create_future())
            self.held.add(item)
            self.queue.put_nowait(item)
            self.arrived.set()
            await item.done

    async def _process_loop(self) -> None:
        limit = max(1, self.bus.options.delivery_batch_size)
        expected: set[tuple[str, int]] = set()
        while True:
            first = await self.queue.get()
            if first is None:
                return
            batch = [first]
            stop_after = self._take_queued(batch, limit)
            if not stop_after:
                stop_after = await self._linger(batch, limit, expected)
            self.busy += 1
            try:
                await self._deliver_live(batch)
            finally:
                self.busy -= 1
            expected = {(item.subscriber, item.partition) for item in batch}
            if stop_after:
                return

    def _take_queued(self, batch: list[_Held], limit: int) -> bool:
        """Move queued events into ``batch``; True when the stop marker was met."""
        while len(batch) < limit and not self.queue.empty():
            item = self.queue.get_nowait()
            if item is None:
                return True
            batch.append(item)
        return False

    async def _linger(self, batch: list[_Held], limit: int, expected: set[tuple[str, int]]) -> bool:
        """Let other partitions' events join this batch (one transaction and commit for all):
        wait at most ``batch_linger`` seconds, less once every partition of the previous
        batch (acked together, so their next events arrive together) is here. True when the
        stop marker was met."""
        linger = self.bus.settings.batch_linger
        if not linger or len(batch) >= len(self.fetchers):
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + linger
        while len(batch) < limit:
            if expected and expected <= {(item.subscriber, item.partition) for item in batch}:
                return False
            remaining = deadline - loop.time()
            if remaining <= 0 or len(batch) >= len(self.fetchers):
                return False
            self.arrived.clear()
            if self.queue.empty():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self.arrived.wait()
            if self._take_queued(batch, limit):
                return True
        return False

    async def _deliver_live(self, batch: list[_Held]) -> None:
        bus = self.bus
        pause = bus.options.poll_interval
        while True:
            try:
                async with bus.sql_lock:
                    outcomes = await self._deliver_in_transaction(batch)
                break
            except sa.exc.DBAPIError as exc:
                # The database is unreachable or refused the batch: nothing committed; keep
                # the events (the heartbeat stops them timing out) and try again.
                log.warning("bus.nats.sql_failed", extra={"error": repr(exc)})
                if self.stopping:
                    outcomes = {id(item): "nak" for item in batch}
                    break
                await asyncio.sleep(pause)
                pause = min(_DB_RETRY_MAX, pause * 2 + 0.01)
        for item in batch:
            action = outcomes.get(id(item), "ack")
            try:
                if action == "nak":
                    await item.msg.nak()
                elif action == "term":
                    await item.msg.term()
                else:
                    await item.msg.ack()
                    self.counters.acked += 1
            except Exception as exc:  # the ack is lost: JetStream redelivers, the inbox absorbs
                log.warning("bus.nats.ack_failed", extra={"error": repr(exc)})
            finally:
                self.held.discard(item)
                if not item.done.done():
                    item.done.set_result(None)

    async def _deliver_in_transaction(self, batch: list[_Held]) -> dict[int, str]:
        """One transaction for ``batch`` on the live path's own connection (kept between
        batches: no pool checkout and liveness ping per batch; dropped after an error, the
        next batch connects again). Round trips to the database (claim, commit) run in a
        worker thread, so fetchers, acks and publishers keep going meanwhile."""
        conn = self._connection
        if conn is None:
            conn = self._connection = await driver.off_loop(self.bus.engine.connect)
        transaction = conn.begin()
        try:
            outcomes = await self._deliver_batch(conn, batch)
            await driver.off_loop(transaction.commit)
        except BaseException:
            self._connection = None
            with contextlib.suppress(Exception):
                if transaction.is_active:
                    transaction.rollback()
            with contextlib.suppress(Exception):
                conn.close()
            raise
        return outcomes

    def close_connection(self) -> None:
        conn, self._connection = self._connection, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    async def _deliver_batch(self, conn: sa.Connection, batch: list[_Held]) -> dict[int, str]:
        """Deliver what the fetchers hold in ``conn``'s transaction through
        :meth:`~retailsync.bus.consumer.Consumer.deliver_batch` (one statement claims the
        inbox records of the whole batch); returns the ack action per held item that is not
        a plain ack."""
        bus = self.bus
        outcomes: dict[int, str] = {}
        work: list[BatchItem] = []
        for item in batch:
            sub = bus.subscription(item.subscriber)
            try:
                event = CloudEvent.model_validate_json(item.msg.data)
            except ValidationError as exc:
                log.error(
                    "bus.nats.undecodable_event",
                    extra={"sequence": item.msg.metadata.sequence.stream, "error": str(exc)},
                )
                outcomes[id(item)] = "term"
                continue
            if sub is None or not sub.filter.matches(event):
                continue
            meta = item.msg.metadata
            work.append(
                BatchItem(
                    sub,
                    StoredEvent(meta.sequence.stream, meta.timestamp, event),
                    partition_key_of(event),
                    attempt=max(1, meta.num_delivered),
                    partition=item.partition,
                )
            )
        if not work:
            return outcomes
        # The batch's first round trip (it also opens the transaction): in a worker thread, so
        # fetchers, acks and publishers go on meanwhile.
        blocked = await driver.off_loop(
            parking.blocked_keys, conn, {(w.subscription.name, w.key) for w in work}
        )
        parked_before = self.counters.parked
        now = utcnow()

        def failed(conn: sa.Connection, delivery: BatchItem) -> bool:
            error = delivery.error
            assert error is not None
            sub = delivery.subscription
            classification = delivery.classification or Classification.TRANSIENT
            record = attempt_record(delivery.attempt, error, classification)
            if delivery.attempt >= sub.retry.attempts_for(classification):
                bus.consumer.record_exception(conn, sub, delivery.stored, [record], error)
                self.counters.exceptions += 1
                return False
            parking.park(
                conn,
                subscriber=sub.name,
                partition=delivery.partition,
                partition_key=delivery.key,
                seq=delivery.stored.sequence,
                attempts=delivery.attempt,
                due=now + timedelta(seconds=self._delay(sub, delivery.attempt, error)),
                history=[record],
            )
            self.counters.parked += 1
            return True

        await bus.consumer.deliver_batch(
            conn, work, blocked=blocked, on_failure=failed, claim_off_loop=True
        )
        for delivery in work:
            if delivery.status is DeliveryStatus.HELD:
                parking.park(
                    conn,
                    subscriber=delivery.subscription.name,
                    partition=delivery.partition,
                    partition_key=delivery.key,
                    seq=delivery.stored.sequence,
                    attempts=0,
                    due=now,
                )
                self.counters.parked += 1
            elif delivery.status is not DeliveryStatus.DUPLICATE:
                self.counters.handler_runs += 1
        if parked_before != self.counters.parked:
            bus.parked_changed.set()
        return outcomes

    async def _heartbeat_loop(self) -> None:
        interval = max(0.1, self.bus.ack_wait / 3)
        while True:
            await asyncio.sleep(interval)
            for item in list(self.held):
                if not item.done.done():
                    with contextlib.suppress(Exception):
                        await item.msg.in_progress()

    def _delay(self, sub: Subscription, attempt: int, error: BaseException) -> float:
        delay = sub.retry.delay(attempt, self._rng)
        after = retry_after_of(error)
        return max(delay, after) if after is not None else delay

    # ------------------------------------------------------------------------------------
    # parked retries
    # ------------------------------------------------------------------------------------

    async def _parked_loop(self) -> None:
        """Settle parked rows when due. Rows this process parks wake it at once; rows parked
        by other workers (or queued by an operator elsewhere) are seen within ``idle``."""
        bus = self.bus
        idle = max(bus.options.poll_interval, min(1.0, bus.ack_wait / 4))
        while True:
            bus.parked_changed.clear()
            if await self.settle_parked_once():
                continue
            async with bus.sql_lock:
                with bus.engine.connect() as conn:
                    due_in = parking.next_due_in(conn, bus.subscription_names)
            wait = idle if due_in is None else min(idle, max(due_in, bus.options.poll_interval))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await bus.parked_changed.wait()

    async def settle_parked_once(self) -> int:
        """Retry due heads of parked keys (and what they held back); returns rows settled."""
        bus = self.bus
        names = list(bus.subscription_names)
        async with bus.sql_lock:
            with bus.engine.connect() as conn:
                heads = parking.due_heads(conn, names, utcnow(), _PARKED_BATCH)
        settled = 0
        for head in heads:
            settled += await self._settle_chain(head)
        return settled

    async def _settle_chain(self, row: Any) -> int:
        bus = self.bus
        settled = 0
        while row is not None and not self.stopping:
            sub = bus.subscription(row.subscriber)
            if sub is None:
                return settled
            async with bus.sql_lock:
                with bus.engine.connect() as conn, conn.begin():
                    now = utcnow()
                    won = parking.claim(conn, row, parking.lease_until(now, bus.options.lease_ttl))
            if not won:
                return settled
            stored = await bus.load_event(int(row.seq))
            async with bus.sql_lock:
                with bus.engine.connect() as conn, conn.begin():
                    row = await self._settle_one(conn, sub, row, stored)
            settled += 1
        return settled

    async def _settle_one(
        self, conn: sa.Connection, sub: Subscription, row: Any, stored: StoredEvent | None
    ) -> Any:
        """One attempt of a claimed head; returns the key's next head when it is due now."""
        bus = self.bus
        now = utcnow()
        if stored is None:
            missing = EventNoLongerStored(bus.layout.stream, int(row.seq))
            log.error("bus.nats.parked_event_missing", extra={"error": str(missing)})
            parking.settle(conn, int(row.id))
            return None
        attempt = int(row.attempts) + 1
        result = await bus.consumer.deliver_in(
            conn, sub, stored, attempt=attempt, forced=bool(row.forced)
        )
        if result.status is not DeliveryStatus.DUPLICATE:
            self.counters.handler_runs += 1
        if result.status is DeliveryStatus.FAILED:
            error = result.error
            assert error is not None
            classification = result.classification or Classification.TRANSIENT
            history = [*load_attempts(row.history), attempt_record(attempt, error, classification)]
            if attempt < sub.retry.attempts_for(classification):
                parking.reschedule(
                    conn,
                    int(row.id),
                    attempts=attempt,
                    history=history,
                    due=now + timedelta(seconds=self._delay(sub, attempt, error)),
                )
                return None
            parking.settle(conn, int(row.id))
            bus.consumer.record_exception(conn, sub, stored, history, error)
            self.counters.exceptions += 1
        else:
            parking.settle(conn, int(row.id))
            if row.exception_id is not None:
                bus.consumer.mark_redelivered(conn, int(row.exception_id))
        following = parking.next_head(conn, sub.name, row.partition_key)
        if following is None or following.next_attempt_at is None:
            return None
        return following if as_utc(following.next_attempt_at) <= now else None

    # ------------------------------------------------------------------------------------
    # poison events (max deliveries) and automatic retry
    # ------------------------------------------------------------------------------------

    async def _advisory_loop(self) -> None:
        psub = self.bus.advisory_subscription
        assert psub is not None
        while True:
            try:
                msgs: list[Msg] = await psub.fetch(10, timeout=self.bus.fetch_timeout)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("bus.nats.advisory_fetch_failed", extra={"error": repr(exc)})
                await asyncio.sleep(_FETCH_ERROR_PAUSE)
                continue
            for msg in msgs:
                await self._on_max_deliveries(msg)

    async def _on_max_deliveries(self, msg: Msg) -> None:
        bus = self.bus
        try:
            advisory = json.loads(msg.data)
            consumer = str(advisory["consumer"])
            seq = int(advisory["stream_seq"])
            deliveries = int(advisory.get("deliveries", 0))
        except (ValueError, KeyError, TypeError):
            await msg.term()
            return
        owner = bus.consumer_owner(consumer)
        if owner is None:
            await msg.nak(delay=5.0)  # another worker serves that subscription
            return
        subscriber, partition = owner
        sub = bus.subscription(subscriber)
        stored = await bus.load_event(seq)
        if sub is None or stored is None:
            await msg.ack()
            return
        error = MaxDeliveriesExceeded(deliveries)
        async with bus.sql_lock:
            with bus.engine.connect() as conn, conn.begin():
                handled = conn.execute(
                    sa.select(t.inbox.c.outcome).where(
                        t.inbox.c.subscriber == subscriber,
                        t.inbox.c.dedup_hash == dedup_hash(stored.event),
                    )
                ).first()
                waiting = conn.execute(
                    sa.select(t.parked.c.id).where(
                        t.parked.c.subscriber == subscriber, t.parked.c.seq == seq
                    )
                ).first()
                if handled is None and waiting is None and sub.filter.matches(stored.event):
                    record = AttemptRecord(
                        attempt=deliveries,
                        at=utcnow(),
                        error_type=qualified_name(error),
                        message=str(error),
                        classification=Classification.UNKNOWN,
                    )
                    bus.consumer.record_exception(conn, sub, stored, [record], error)
                    self.counters.exceptions += 1
                    log.error(
                        "bus.nats.max_deliveries",
                        extra={"subscriber": subscriber, "partition": partition, "sequence": seq},
                    )
        await msg.ack()

    async def _auto_retry_loop(self) -> None:
        bus = self.bus
        probe = bus.config.health_probe
        assert probe is not None
        interval = max(0.01, bus.options.auto_retry_interval)
        limit = max(1, int(bus.options.auto_retry_rate * interval))
        while True:
            await asyncio.sleep(interval)
            try:
                await bus.exceptions.auto_retry(probe, limit)  # type: ignore[attr-defined]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("bus.nats.auto_retry_failed", extra={"error": repr(exc)})


async def wait_until_idle(
    run: DeliveryRun,
    server_idle: Callable[[], Awaitable[bool]],
    parked_wait: Callable[[], Awaitable[float | None]],
    *,
    within: float,
    poll: float,
) -> None:
    """Return once nothing is held here, nothing is pending on the server and nothing is
    parked; raise TimeoutError after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    poll = max(0.005, poll)
    try:
        async with asyncio.timeout_at(deadline + 1.0):
            await _idle_loop(run, server_idle, parked_wait, deadline, within, poll)
    except TimeoutError as exc:
        raise TimeoutError(
            f"bus still had work after {within:.1f}s (events pending in JetStream, held "
            "by another worker, or parked for a retry)"
        ) from exc


async def _idle_loop(
    run: DeliveryRun,
    server_idle: Callable[[], Awaitable[bool]],
    parked_wait: Callable[[], Awaitable[float | None]],
    deadline: float,
    within: float,
    poll: float,
) -> None:
    loop = asyncio.get_running_loop()
    while True:
        if run.locally_idle and await parked_wait() is None and await server_idle():
            # a second look closes the gap between a fetch returning and the check
            await asyncio.sleep(poll)
            if run.locally_idle and await parked_wait() is None and await server_idle():
                return
        if loop.time() >= deadline:
            raise TimeoutError(
                f"bus still had work after {within:.1f}s (events pending in JetStream, held "
                "by another worker, or parked for a retry)"
            )
        await asyncio.sleep(poll)
