"""Live delivery for the JetStream backend: pull, hand to the SQL consumer, ack.

A run serves the (subscription, partition) consumers whose leases it holds
(:mod:`.nats_leases`: a fair share of the namespace's partitions among its live workers). Per
served partition a fetcher keeps one pull request open (:class:`PartitionPull`; up to
``max_in_flight`` events of the partition in hand, in stream order). One processor takes
what the fetchers hold and delivers it in a single SQL transaction
(:meth:`~retailsync.bus.consumer.Consumer.deliver_batch`: one inbox claim for the batch, a
savepoint only for handlers that write), checks the batch's leases (fencing), commits, then
acks. A heartbeat keeps held events from timing out (``in_progress``) while they wait or
run, as long as the leases are known to be valid. Failing events
are parked in SQL (:mod:`.nats_parking`) and retried by the parked-retry loop;
MAX_DELIVERIES advisories become exception entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
from retailsync.bus.backends.nats_leases import Acquired, PartitionKey, PartitionLeases
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
PULL_BATCH = 256
_SHORTEST_PULL = 0.05


class PartitionPull:
    """A continuous pull on one partition consumer.

    One pull request for up to ``batch`` events stays open (until ``expires``); the server
    sends the partition's events on it as they arrive, as long as fewer than the consumer's
    ``MaxAckPending`` are unacknowledged, without a new request per event. A new request goes
    out when the open one is used up, expired or refused.
    """

    def __init__(
        self,
        nc: Client,
        stream: str,
        consumer: str,
        *,
        batch: int = PULL_BATCH,
        expires: float = 1.0,
        open_until: Callable[[], float] | None = None,
    ) -> None:
        self._nc = nc
        self._subject = f"{_JS_API}.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self.batch = batch  # events asked for by the next pull request
        self._expires = expires
        self._open_until = open_until  # event-loop time no pull request may outlast
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
        expires = self._expires
        if self._open_until is not None:
            expires = min(expires, self._open_until() - loop.time())
            if expires < _SHORTEST_PULL:  # not allowed to pull now: look again shortly
                self._remaining = 0
                self._deadline = loop.time() + _SHORTEST_PULL
                return
        self._remaining = self.batch
        self._deadline = loop.time() + expires
        request = {"batch": self.batch, "expires": int(expires * 1_000_000_000)}
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
    sequence: int
    msg: Msg
    received_at: float  # event-loop time

    @property
    def key(self) -> PartitionKey:
        return (self.subscriber, self.partition)


@dataclass(eq=False)
class _Served:
    """A (subscription, partition) whose lease this run holds: its pull, the task feeding
    it to the processor and the events it holds (by stream sequence)."""

    key: PartitionKey
    pull: PartitionPull
    fetcher: asyncio.Task[None] | None = None
    held: dict[int, _Held] = field(default_factory=dict)
    emptied: asyncio.Event = field(default_factory=asyncio.Event)
    releasing: bool = False

    def discard(self, item: _Held) -> None:
        if self.held.get(item.sequence) is item:
            del self.held[item.sequence]
            if not self.held:
                self.emptied.set()


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
    served: dict[PartitionKey, _Served] = field(default_factory=dict)
    busy: int = 0
    stopping: bool = False
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # a fetcher queued an event
    lease_valid_until: float = 0.0  # event-loop time: heartbeats stop here unless renewed
    _connection: sa.Connection | None = None  # the live path's connection (see below)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _handbacks: set[asyncio.Task[None]] = field(default_factory=set)
    _rng: random.Random = field(default_factory=random.Random)
    leases: PartitionLeases = field(init=False)

    def __post_init__(self) -> None:
        bus = self.bus
        self.leases = PartitionLeases(
            bus.engine,
            namespace=bus.layout.namespace,
            owner=f"{bus.config.worker_id}/{uuid.uuid4().hex[:12]}",
            partitions=bus.layout.partitions,
            ttl=bus.options.lease_ttl,
        )

    # ------------------------------------------------------------------------------------
    # lifecycle
    # ------------------------------------------------------------------------------------

    def start(self, *, auto_retry: bool) -> None:
        bus = self.bus
        self.tasks.append(asyncio.create_task(self._lease_loop(), name="nats-leases"))
        self.tasks.append(asyncio.create_task(self._process_loop(), name="nats-process"))
        self.tasks.append(asyncio.create_task(self._heartbeat_loop(), name="nats-heartbeat"))
        self.tasks.append(asyncio.create_task(self._parked_loop(), name="nats-parked"))
        if bus.advisory_subscription is not None:
            self.tasks.append(asyncio.create_task(self._advisory_loop(), name="nats-advisory"))
        if auto_retry and bus.config.health_probe is not None:
            self.tasks.append(asyncio.create_task(self._auto_retry_loop(), name="nats-auto"))

    async def stop(self) -> None:
        """Stop pulling, deliver what is in hand, give back anything not delivered and hand
        the leases back (cleanly where nothing of ours is pending on the server)."""
        self.stopping = True
        lease_work = [task for task in self.tasks if task.get_name() == "nats-leases"]
        lease_work += self._handbacks
        for task in lease_work:
            task.cancel()
        await asyncio.gather(*lease_work, return_exceptions=True)
        for served in list(self.served.values()):
            await self._stop_fetching(served)
        self.queue.put_nowait(None)
        for task in self.tasks:
            if task.get_name() != "nats-process":
                task.cancel()
        _, late = await asyncio.wait(self.tasks, timeout=max(5.0, 2 * self.bus.ack_wait))
        for task in late:  # a handler that does not finish: give its events back
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.close_connection()
        for item in list(self.held):
            with contextlib.suppress(Exception):
                await item.msg.nak()
        self.held.clear()
        clean = [key for key, served in self.served.items() if await self._settled(served)]
        unclean = [key for key in self.served if key not in clean]
        with contextlib.suppress(Exception):
            async with self.bus.sql_lock:
                await driver.off_loop(self.leases.release, clean, True)
                await driver.off_loop(self.leases.release, unclean, False)
                await driver.off_loop(self.leases.leave)
        self.served.clear()

    @property
    def locally_idle(self) -> bool:
        return self.queue.empty() and self.busy == 0 and not self.held

    # ------------------------------------------------------------------------------------
    # partition leases
    # ------------------------------------------------------------------------------------

    async def _lease_loop(self) -> None:
        interval = max(0.05, self.bus.options.lease_ttl / 4)
        while True:
            await self.renew_leases()
            await asyncio.sleep(interval)

    async def renew_leases(self) -> None:
        """Renew what this run serves, take a fair share of free partitions, hand back a
        surplus (drained first) and drop what another worker took over."""
        bus = self.bus
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:  # not behind sql_lock: a long batch must not keep the leases from renewing
            lease_round = await driver.off_loop(
                self.leases.renew, bus.subscription_names, set(self.served)
            )
        except sa.exc.DBAPIError as exc:
            log.warning("bus.nats.lease_renewal_failed", extra={"error": repr(exc)})
            if loop.time() >= self.lease_valid_until:
                for key in list(self.served):
                    await self._drop(key)
            return
        ttl = bus.options.lease_ttl
        self.lease_valid_until = started + ttl - min(1.0, ttl / 10)
        for key in lease_round.lost:
            log.warning("bus.nats.partition_lost", extra={"partition": key})
            await self._drop(key)
        for acquired in lease_round.acquired:
            if not self.stopping:
                self._serve(acquired)
        for key in lease_round.surplus:
            self._hand_back(key)

    def _serve(self, acquired: Acquired) -> None:
        bus = self.bus
        subscriber, partition = acquired.key
        name = bus.layout.consumer_name(subscriber, partition)
        pull = PartitionPull(
            bus.nc,
            bus.layout.stream,
            name,
            expires=bus.fetch_timeout,
            open_until=lambda: self.lease_valid_until,
        )
        served = _Served(acquired.key, pull)
        served.emptied.set()
        self.served[acquired.key] = served
        served.fetcher = asyncio.create_task(
            self._fetch_loop(served, acquired.previous_expiry),
            name=f"nats-fetch-{subscriber}-{partition}",
        )

    def _hand_back(self, key: PartitionKey) -> None:
        served = self.served.get(key)
        if served is None or served.releasing:
            return
        served.releasing = True
        task = asyncio.create_task(self._release_when_drained(served), name="nats-handback")
        self._handbacks.add(task)
        task.add_done_callback(self._handbacks.discard)

    async def _release_when_drained(self, served: _Served) -> None:
        """Stop pulling, let the processor finish what the partition holds, then release
        its lease: cleanly when nothing of it is pending on the server."""
        await self._stop_fetching(served)
        await served.emptied.wait()
        clean = await self._settled(served)
        async with self.bus.sql_lock:
            await driver.off_loop(self.leases.release, [served.key], clean)
        self.served.pop(served.key, None)

    async def _drop(self, key: PartitionKey) -> None:
        """Stop serving a partition whose lease is gone (or can no longer be trusted): what
        it holds is neither acked nor given back (the processor skips it); the server hands
        it out again after AckWait, before newer events, to whoever holds the lease next
        (see ``_wait_for_previous`` and ``_take_back``)."""
        served = self.served.pop(key, None)
        if served is None:
            return
        await self._stop_fetching(served)
        for item in list(served.held.values()):
            self.held.discard(item)
        served.held.clear()
        served.emptied.set()

    async def _stop_fetching(self, served: _Served) -> None:
        """No further events for ``served``: its fetcher ends and its pull inbox is
        unsubscribed (the server serves no pull request without interest)."""
        fetcher, served.fetcher = served.fetcher, None
        if fetcher is not None:
            fetcher.cancel()
            await asyncio.gather(fetcher, return_exceptions=True)
        await served.pull.close()

    async def _pending(self, served: _Served) -> int | None:
        """How many events the partition's consumer has delivered and not seen acknowledged
        (None: the server could not say)."""
        bus = self.bus
        name = bus.layout.consumer_name(*served.key)
        try:
            info = await bus.js.consumer_info(bus.layout.stream, name)
        except Exception:
            return None
        return int(info.num_ack_pending or 0)

    async def _settled(self, served: _Served) -> bool:
        """True when the partition's consumer has nothing delivered and unacknowledged."""
        return await self._pending(served) == 0

    async def _wait_for_previous(self, served: _Served, previous_expiry: datetime) -> int:
        """The previous holder stopped without handing the partition back cleanly: events it
        held are still pending and the server hands them out again only after AckWait — if
        this run pulled now, it would get newer events first. Wait until they are all due
        again (the server then hands them out before anything newer). Returns how many were
        pending (the consumer's maximum when the server could not say)."""
        pending = await self._pending(served)
        if pending == 0:
            return 0
        due = previous_expiry + timedelta(seconds=self.bus.ack_wait + self.bus.fetch_timeout)
        delay = (due - utcnow()).total_seconds()
        if delay > 0:
            log.info(
                "bus.nats.partition_takeover_wait",
                extra={"partition": served.key, "seconds": round(delay, 3)},
            )
            await asyncio.sleep(delay)
        return self.bus.settings.max_in_flight if pending is None else pending

    async def _take_back(self, served: _Served, pending: int) -> list[Msg]:
        """The events the previous holder left (``pending`` of them), in stream order.

        The server hands them out again before anything newer, but in the order their
        acknowledgement deadlines ran out, not in stream order: an event its holder kept
        alive with ``in_progress`` heartbeats comes back after newer ones it had not
        heartbeaten yet (seen in the SIGKILL scale-out test as a key's later events applied
        before its earlier ones). So all of them are taken first and handed on sorted.
        Taking stops at the first event delivered for the first time (nothing older is
        left: it is handed on last), or when none arrives within a pull's length (an event
        was acknowledged after the count, or the count was a guess).
        """
        served.pull.batch = max(1, min(pending, PULL_BATCH))
        taken: dict[int, Msg] = {}
        while len(taken) < pending:
            try:
                async with asyncio.timeout(self.bus.fetch_timeout):
                    msg = await served.pull.next()
            except TimeoutError:
                break
            taken[msg.metadata.sequence.stream] = msg
            if msg.metadata.num_delivered <= 1:
                break
        served.pull.batch = PULL_BATCH
        return [taken[sequence] for sequence in sorted(taken)]

    # ------------------------------------------------------------------------------------
    # live path
    # ------------------------------------------------------------------------------------

    async def _fetch_loop(self, served: _Served, previous_expiry: datetime | None) -> None:
        left_behind = 0
        if previous_expiry is not None:
            left_behind = await self._wait_for_previous(served, previous_expiry)
        opened = False
        while not self.stopping:
            try:
                if not opened:
                    await served.pull.open()
                    opened = True
                if left_behind:
                    # What the previous holder left comes back first; an event that killed
                    # it may be among them, and each is handed out once more here (a
                    # worker dying on one of them again costs every one of them a
                    # delivery of their max_deliver budget).
                    taken = await self._take_back(served, left_behind)
                    left_behind = 0
                    for msg in taken:
                        self._hold(served, msg)
                    continue
                msg = await served.pull.next()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection trouble: the client reconnects by itself
                log.warning("bus.nats.fetch_failed", extra={"error": repr(exc)})
                await asyncio.sleep(_FETCH_ERROR_PAUSE)
                continue
            self._hold(served, msg)

    def _hold(self, served: _Served, msg: Msg) -> None:
        """Hand ``msg`` to the processor (unless this run already holds it)."""
        sequence = msg.metadata.sequence.stream
        if sequence in served.held:  # handed out again while we hold it: keep the first
            return
        subscriber, partition = served.key
        item = _Held(subscriber, partition, sequence, msg, asyncio.get_running_loop().time())
        served.held[sequence] = item
        served.emptied.clear()
        self.held.add(item)
        self.queue.put_nowait(item)
        self.arrived.set()

    def _forget(self, item: _Held) -> None:
        self.held.discard(item)
        served = self.served.get(item.key)
        if served is not None:
            served.discard(item)

    def _serving(self, item: _Held) -> bool:
        served = self.served.get(item.key)
        return served is not None and served.held.get(item.sequence) is item

    async def _process_loop(self) -> None:
        limit = max(1, self.bus.options.delivery_batch_size)
        while True:
            first = await self.queue.get()
            if first is None:
                return
            batch = [first]
            stop_after = self._take_queued(batch, limit)
            if not stop_after:
                stop_after = await self._linger(batch, limit)
            live = [item for item in batch if self._serving(item)]
            if live:
                self.busy += 1
                try:
                    await self._deliver_live(live)
                finally:
                    self.busy -= 1
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

    async def _linger(self, batch: list[_Held], limit: int) -> bool:
        """Let more events join this batch (one transaction and commit for all): wait at
        most ``batch_linger`` seconds for the queue to fill it. True when the stop marker was
        met."""
        linger = self.bus.settings.batch_linger
        if not linger:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + linger
        while len(batch) < limit:
            remaining = deadline - loop.time()
            if remaining <= 0:
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
                    outcomes, lost = await self._deliver_in_transaction(batch)
            except sa.exc.DBAPIError as exc:
                # The database is unreachable or refused the batch: nothing committed; keep
                # the events (the heartbeat stops them timing out) and try again.
                log.warning("bus.nats.sql_failed", extra={"error": repr(exc)})
                if self.stopping:
                    outcomes = {id(item): "nak" for item in batch}
                    break
                await asyncio.sleep(pause)
                pause = min(_DB_RETRY_MAX, pause * 2 + 0.01)
                continue
            if not lost:
                break
            # Fenced: another worker holds (or may hold) these partitions now; nothing was
            # committed. Deliver the rest again without them.
            for key in lost:
                log.warning("bus.nats.partition_fenced", extra={"partition": key})
                await self._drop(key)
            batch = [item for item in batch if item.key not in lost]
            if not batch:
                return
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
                self._forget(item)

    async def _deliver_in_transaction(
        self, batch: list[_Held]
    ) -> tuple[dict[int, str], set[PartitionKey]]:
        """One transaction for ``batch`` on the live path's own connection (kept between
        batches: no pool checkout and liveness ping per batch; dropped after an error, the
        next batch connects again). Round trips to the database (claim, fence, commit) run
        in a worker thread, so fetchers, acks and publishers keep going meanwhile. Before
        the commit, the leases of the batch's partitions are checked (fencing); partitions
        no longer held are returned and the transaction is rolled back."""
        conn = self._connection
        if conn is None:
            conn = self._connection = await driver.off_loop(self.bus.engine.connect)
        transaction = conn.begin()
        counted = dataclasses.replace(self.counters)
        try:
            outcomes = await self._deliver_batch(conn, batch)
            lost = await driver.off_loop(self.leases.fence, conn, {i.key for i in batch})
            if lost:
                transaction.rollback()
                self.counters = counted
                return {}, lost
            await driver.off_loop(transaction.commit)
        except BaseException:
            self._connection = None
            with contextlib.suppress(Exception):
                if transaction.is_active:
                    transaction.rollback()
            with contextlib.suppress(Exception):
                conn.close()
            raise
        return outcomes, set()

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
        """Keep held events from timing out while they wait or run — only while this run's
        leases are known to be valid (a worker cut off from the database stops extending
        them, so a worker taking over gets them back after AckWait)."""
        interval = max(0.1, self.bus.ack_wait / 3)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            if now >= self.lease_valid_until:
                continue
            for item in list(self.held):
                if now - item.received_at >= interval and self._serving(item):
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
