"""A bus worker or publisher as its own OS process, for the crash and scale-out tests.

    python bus_process.py worker URL WORKER_ID LEASE_TTL HANDLER_SLEEP
    python bus_process.py publish URL COUNT KEYS ACK_FILE

The worker delivers to subscription "effects" (one effect row per event, written in the
delivery transaction) until killed. The publisher appends each event id to ACK_FILE only
after ``publish`` returned, i.e. after the event was acknowledged as durable.
"""

from __future__ import annotations

import asyncio
import sys

from retailsync.bus.backend import BackendConfig, BusOptions, Subscription
from retailsync.bus.backends.sql import create_backend
from retailsync.bus.testkit import RecordingHandler, keyed_event
from retailsync.domain.events import CloudEvent


async def work(url: str, worker_id: str, lease_ttl: float, sleep: float) -> None:
    recorder = RecordingHandler(write_effects=True)

    async def handler(event: CloudEvent, ctx) -> None:  # type: ignore[no-untyped-def]
        await recorder(event, ctx)
        if sleep:
            await asyncio.sleep(sleep)

    options = BusOptions(poll_interval=0.01, lease_ttl=lease_ttl, delivery_batch_size=50)
    bus = create_backend(BackendConfig(database_url=url, worker_id=worker_id, options=options))
    bus.subscribe(Subscription("effects", handler))
    await bus.start()
    print("ready", flush=True)
    await bus.run_delivery(asyncio.Event())


async def publish(url: str, count: int, keys: int, ack_file: str) -> None:
    bus = create_backend(BackendConfig(database_url=url, worker_id="publisher"))
    await bus.start()
    for start in range(0, count, 20):
        batch = [keyed_event(f"k{n % keys}", n) for n in range(start, min(count, start + 20))]
        outcomes = await bus.publish(batch)
        assert all(o.ok for o in outcomes)
        record_acks(ack_file, [e.id for e in batch])


def record_acks(ack_file: str, ids: list[str]) -> None:
    with open(ack_file, "a", encoding="utf-8") as acks:
        acks.write("".join(f"{i}\n" for i in ids))


if __name__ == "__main__":
    mode, url, *rest = sys.argv[1:]
    if mode == "worker":
        asyncio.run(work(url, rest[0], float(rest[1]), float(rest[2])))
    else:
        asyncio.run(publish(url, int(rest[0]), int(rest[1]), rest[2]))
