"""Throughput of the JetStream backend next to plain JetStream, measured in the same run.

Three numbers, each "events/s from the first publish until the last event was handled", with
publishing and consuming running at the same time:

- ``raw``: plain JetStream — ``publish_async`` in batches awaiting every PubAck, one pull
  consumer fetching 256 at a time and acking each (no order per key, no SQL): the ceiling.
- ``partitioned``: the same events through this backend's transport without SQL — one
  continuous pull per partition consumer (``MaxAckPending`` = the default ``max_in_flight``),
  as the worker holding the partitions' leases pulls them: what the partition layout costs
  on the wire.
- ``pipeline``: ``bus.publish`` + ``bus.run_delivery`` with a trivial handler: JetStream plus
  the SQL inbox record per event (the real thing).

Used by ``bench/bus_nats.py`` (and callable from ``bench/bus.py``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import nats
import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

from retailsync.bus.backend import BackendConfig, BusOptions, DeliveryContext, Subscription
from retailsync.bus.backends.nats import create_backend, delete_namespace
from retailsync.bus.backends.nats_delivery import PartitionPull
from retailsync.bus.backends.nats_layout import MSG_ID_HEADER, NatsSettings, StreamLayout
from retailsync.bus.consumer import dedup_hash
from retailsync.bus.testkit import keyed_event
from retailsync.domain.events import CloudEvent

KEYS = 200


@dataclass(frozen=True, slots=True)
class NatsBenchResult:
    events: int
    partitions: int
    raw: float
    partitioned: float
    pipeline: float

    @property
    def ratio(self) -> float:
        """pipeline / raw ceiling (goal >= 0.5)."""
        return self.pipeline / self.raw

    def lines(self) -> list[str]:
        def row(name: str, value: float) -> str:
            return f"{name:<34} {value:>9,.0f} ev/s   ratio to raw {value / self.raw:.2f}"

        return [
            f"{self.events} events, {KEYS} keys, {self.partitions} partitions",
            row("raw JetStream (ceiling)", self.raw),
            row("partitioned transport, no SQL", self.partitioned),
            row("nats bus pipeline (+SQL inbox)", self.pipeline),
        ]


def make_events(count: int) -> list[CloudEvent]:
    run = uuid.uuid4().hex[:6]
    return [keyed_event(f"{run}-k{n % KEYS}", n) for n in range(count)]


async def raw_ceiling(nats_url: str, events: list[CloudEvent], batch: int) -> float:
    """Plain JetStream publish + pull consume + ack of the same payloads."""
    name = f"BENCHRAW{uuid.uuid4().hex[:8].upper()}"
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(
            name=name, subjects=[f"{name}.>"], storage=StorageType.FILE, duplicate_window=120
        )
    )
    payloads = [
        (f"{name}.e", e.model_dump_json(exclude_none=True).encode(), dedup_hash(e)) for e in events
    ]
    await js.add_consumer(
        name, ConsumerConfig(name="raw", durable_name="raw", ack_policy=AckPolicy.EXPLICIT)
    )
    psub = await js.pull_subscribe_bind("raw", stream=name)
    consumed = 0

    async def consume() -> None:
        nonlocal consumed
        while consumed < len(events):
            try:
                msgs = await psub.fetch(256, timeout=1)
            except nats.errors.TimeoutError:
                continue
            for msg in msgs:
                await msg.ack()
            consumed += len(msgs)

    try:
        started = time.perf_counter()
        consumer = asyncio.create_task(consume())
        for start in range(0, len(payloads), batch):
            futures = [
                await js.publish_async(subject, data, headers={MSG_ID_HEADER: msg_id})
                for subject, data, msg_id in payloads[start : start + batch]
            ]
            await asyncio.gather(*futures)
        await consumer
        return len(events) / (time.perf_counter() - started)
    finally:
        await psub.unsubscribe()
        await js.delete_stream(name)
        await nc.close()


async def partitioned_ceiling(
    nats_url: str, events: list[CloudEvent], batch: int, partitions: int
) -> float:
    """The backend's consumer topology (one consumer per partition, each pulled continuously
    by one worker), no SQL."""
    layout = StreamLayout(f"BENCHPART{uuid.uuid4().hex[:8].upper()}", partitions)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(
            name=layout.stream,
            subjects=[layout.subjects],
            storage=StorageType.FILE,
            duplicate_window=120,
        )
    )
    pulls = []
    for partition in range(partitions):
        name = f"bench-p{partition}"
        await js.add_consumer(
            layout.stream,
            ConsumerConfig(
                name=name,
                durable_name=name,
                max_ack_pending=NatsSettings().max_in_flight,
                filter_subject=layout.partition_filter(partition),
            ),
        )
        pull = PartitionPull(nc, layout.stream, name)
        await pull.open()
        pulls.append(pull)
    consumed = 0
    finished = asyncio.Event()

    async def consume(pull: PartitionPull) -> None:
        nonlocal consumed
        while True:
            msg = await pull.next()
            await msg.ack()
            consumed += 1
            if consumed >= len(events):
                finished.set()

    try:
        started = time.perf_counter()
        consumers = [asyncio.create_task(consume(pull)) for pull in pulls]
        for start in range(0, len(events), batch):
            futures = [
                await js.publish_async(
                    layout.subject_for(e),
                    e.model_dump_json(exclude_none=True).encode(),
                    headers={MSG_ID_HEADER: dedup_hash(e)},
                )
                for e in events[start : start + batch]
            ]
            await asyncio.gather(*futures)
        await finished.wait()
        return len(events) / (time.perf_counter() - started)
    finally:
        for task in consumers:
            task.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
        for pull in pulls:
            await pull.close()
        await js.delete_stream(layout.stream)
        await nc.close()


async def pipeline(
    nats_url: str, database_url: str, events: list[CloudEvent], batch: int, partitions: int
) -> float:
    """``publish`` while ``run_delivery`` hands every event to a trivial handler."""
    handled = 0
    done = asyncio.Event()

    async def count(event: CloudEvent, ctx: DeliveryContext) -> None:
        nonlocal handled
        handled += 1
        if handled >= len(events):
            done.set()

    namespace = f"BENCHBUS{uuid.uuid4().hex[:8].upper()}"
    bus = create_backend(
        BackendConfig(
            database_url=database_url,
            nats_url=nats_url,
            namespace=namespace,
            worker_id="bench",
            options=BusOptions(
                shards=partitions, delivery_batch_size=500, max_batch_size=max(500, batch)
            ),
        )
    )
    bus.subscribe(Subscription("bench", count, start_from="latest"))
    await bus.start()
    stop = asyncio.Event()
    try:
        started = time.perf_counter()
        runner = asyncio.create_task(bus.run_delivery(stop))
        for start in range(0, len(events), batch):
            outcomes = await bus.publish(events[start : start + batch])
            assert all(o.ok for o in outcomes)
        await asyncio.wait_for(done.wait(), 600)
        elapsed = time.perf_counter() - started
        stop.set()
        await runner
        return len(events) / elapsed
    finally:
        await bus.close()
        await delete_namespace(nats_url, namespace)


async def measure(
    nats_url: str,
    database_url: str,
    *,
    events: int = 10_000,
    batch: int = 500,
    partitions: int = 16,
) -> NatsBenchResult:
    """All three numbers in one run (``database_url`` must be migrated)."""
    return NatsBenchResult(
        events=events,
        partitions=partitions,
        raw=await raw_ceiling(nats_url, make_events(events), batch),
        partitioned=await partitioned_ceiling(nats_url, make_events(events), batch, partitions),
        pipeline=await pipeline(nats_url, database_url, make_events(events), batch, partitions),
    )
