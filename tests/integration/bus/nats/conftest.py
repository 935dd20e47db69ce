"""Fixtures for the JetStream backend's own tests: a factory of started NATS buses.

Every bus one factory makes shares a database and a namespace (like worker processes of one
deployment); the namespace's streams are deleted when the test ends.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from retailsync.bus.backend import BackendConfig, BusOptions, Subscription
from retailsync.bus.backends import nats as nats_backend
from retailsync.db import upgrade_database

FAST_OPTIONS = BusOptions(
    poll_interval=0.01,
    lease_ttl=1.0,
    delivery_batch_size=100,
    shards=4,
    auto_retry_interval=0.05,
)


@dataclass
class NatsBusFactory:
    database_url: str
    nats_url: str
    namespace: str = field(default_factory=lambda: f"NT{uuid.uuid4().hex[:10].upper()}")
    made: list[nats_backend.NatsEventBus] = field(default_factory=list)

    def config(
        self, *, options: BusOptions = FAST_OPTIONS, worker_id: str = "w1", **extra: Any
    ) -> BackendConfig:
        return BackendConfig(
            database_url=self.database_url,
            nats_url=self.nats_url,
            namespace=self.namespace,
            worker_id=worker_id,
            options=options,
            extra=extra,
        )

    async def __call__(
        self,
        subscriptions: Sequence[Subscription] = (),
        *,
        options: BusOptions = FAST_OPTIONS,
        worker_id: str = "w1",
        **extra: Any,
    ) -> nats_backend.NatsEventBus:
        bus = nats_backend.create_backend(
            self.config(options=options, worker_id=worker_id, **extra)
        )
        for subscription in subscriptions:
            bus.subscribe(subscription)
        await bus.start()
        self.made.append(bus)
        return bus


async def _bus_factory(database_url: str, nats_url: str) -> AsyncIterator[NatsBusFactory]:
    upgrade_database(database_url)
    factory = NatsBusFactory(database_url, nats_url)
    try:
        yield factory
    finally:
        for bus in reversed(factory.made):
            await bus.close()
        await nats_backend.delete_namespace(nats_url, factory.namespace)


@pytest.fixture
async def nats_bus(sqlite_url: str, nats_url: str) -> AsyncIterator[NatsBusFactory]:
    """Buses on a fresh SQLite database and a fresh namespace."""
    async for factory in _bus_factory(sqlite_url, nats_url):
        yield factory


@pytest.fixture
async def pg_nats_bus(postgres_url: str, nats_url: str) -> AsyncIterator[NatsBusFactory]:
    """Buses on a fresh PostgreSQL database (a second connection can change a lease while a
    delivery transaction is open) and a fresh namespace."""
    async for factory in _bus_factory(postgres_url, nats_url):
        yield factory
