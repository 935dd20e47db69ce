"""A worker process for the scale-out test: delivers the "ledger" subscription until SIGTERM.

Each handled event appends one row to ``nats_scale_effects`` through the delivery's own
transaction (so the row commits with the inbox record). The row's ``id`` comes from a
sequence at insert time; the next event of a key is only delivered after the previous one is
committed and acked, so per key the ids grow in handling order.

Usage: python nats_scale_worker.py DATABASE_URL NATS_URL NAMESPACE WORKER_ID SHARDS
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import sqlalchemy as sa

from retailsync.bus.backend import BackendConfig, BusOptions, DeliveryContext, Subscription
from retailsync.bus.backends import nats as nats_backend
from retailsync.domain.events import CloudEvent

EFFECTS_DDL = """
CREATE TABLE IF NOT EXISTS nats_scale_effects (
    id BIGSERIAL PRIMARY KEY,
    partition_key VARCHAR(100) NOT NULL,
    position INTEGER NOT NULL,
    event_id VARCHAR(200) NOT NULL,
    worker_pid INTEGER NOT NULL
)
"""


async def record_in_ledger(event: CloudEvent, ctx: DeliveryContext) -> None:
    await asyncio.sleep(0.002)  # a downstream call
    ctx.connection.execute(
        sa.text(
            "INSERT INTO nats_scale_effects (partition_key, position, event_id, worker_pid) "
            "VALUES (:k, :p, :id, :pid)"
        ),
        {"k": event.partitionkey, "p": event.data["position"], "id": event.id, "pid": os.getpid()},
    )


async def main(
    database_url: str, nats_url: str, namespace: str, worker_id: str, shards: str
) -> None:
    options = BusOptions(poll_interval=0.01, lease_ttl=1.0, shards=int(shards))
    bus = nats_backend.create_backend(
        BackendConfig(
            database_url=database_url,
            nats_url=nats_url,
            namespace=namespace,
            worker_id=worker_id,
            options=options,
        )
    )
    bus.subscribe(Subscription("ledger", record_in_ledger))
    await bus.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    try:
        await bus.run_delivery(stop)
    finally:
        await bus.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
