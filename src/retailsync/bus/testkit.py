"""Handlers that record what they saw: for the bus's contract, crash and scale-out tests and
for ``bench/bus.py``. Not used by the hub itself.

``RecordingHandler`` keeps the deliveries in memory and, with ``write_effects``, writes one row
per handled event to ``bus_test_effects`` through ``ctx.connection`` (so the row commits with
the inbox record); counting those rows proves "applied once".
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from retailsync.bus.backend import DeliveryContext
from retailsync.domain.events import CloudEvent

EFFECTS_TABLE = "bus_test_effects"

_EFFECTS_DDL = f"""
CREATE TABLE IF NOT EXISTS {EFFECTS_TABLE} (
    subscriber VARCHAR(100) NOT NULL,
    event_source VARCHAR(500) NOT NULL,
    event_id VARCHAR(200) NOT NULL,
    partition_key VARCHAR(500),
    position INTEGER,
    worker_pid INTEGER NOT NULL
)
"""


def ensure_effects_table(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(_EFFECTS_DDL)


def effect_rows(engine: sa.Engine, subscriber: str | None = None) -> list[sa.Row[tuple[str, ...]]]:
    """All effect rows in insertion order (rowid / ctid order is not guaranteed: we rely on the
    ``position`` the producer put in the event data)."""
    query = (
        f"SELECT subscriber, event_source, event_id, partition_key, position, worker_pid "
        f"FROM {EFFECTS_TABLE}"
    )
    params: dict[str, str] = {}
    if subscriber is not None:
        query += " WHERE subscriber = :subscriber"
        params["subscriber"] = subscriber
    with engine.connect() as conn:
        return list(conn.execute(sa.text(query), params))


FailurePlan = Callable[[CloudEvent, int], BaseException | None]
"""Given the event and the attempt number, the exception to raise (or None to succeed)."""


@dataclass
class RecordingHandler:
    """Records (partition key, event id, attempt) per call; may fail by plan."""

    write_effects: bool = False
    fail: FailurePlan | None = None
    calls: list[tuple[str, str, int]] = field(default_factory=list)
    handled: list[CloudEvent] = field(default_factory=list)

    async def __call__(self, event: CloudEvent, ctx: DeliveryContext) -> None:
        key = event.partitionkey or event.subject or event.id
        self.calls.append((key, event.id, ctx.attempt))
        if self.fail is not None:
            error = self.fail(event, ctx.attempt)
            if error is not None:
                raise error
        if self.write_effects:
            ctx.connection.execute(
                sa.text(
                    f"INSERT INTO {EFFECTS_TABLE} (subscriber, event_source, event_id, "
                    "partition_key, position, worker_pid) VALUES (:s, :src, :id, :k, :p, :pid)"
                ),
                {
                    "s": ctx.subscriber,
                    "src": event.source,
                    "id": event.id,
                    "k": key,
                    "p": event.data.get("position"),
                    "pid": os.getpid(),
                },
            )
        self.handled.append(event)

    def order_by_key(self) -> dict[str, list[str]]:
        """Handled event ids per partition key, in handling order."""
        result: dict[str, list[str]] = defaultdict(list)
        for event in self.handled:
            result[event.partitionkey or event.subject or event.id].append(event.id)
        return dict(result)


def keyed_event(
    key: str, n: int, type_: str = "retailsync.order.updated", **kw: object
) -> CloudEvent:
    """Event number ``n`` of partition key ``key`` (id ``"<key>-<n>"``, data position n)."""
    return CloudEvent.new(
        type=type_,
        source="test/shop",
        id=f"{key}-{n}",
        subject=f"order/{key}",
        partitionkey=key,
        data={"position": n},
        **kw,  # type: ignore[arg-type]
    )
