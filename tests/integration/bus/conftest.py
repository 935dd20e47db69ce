"""Bus fixtures: a factory that builds a migrated, started bus backend of a given kind."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from retailsync.bus.backend import BackendConfig, BusOptions, EventBusBackend, Subscription
from retailsync.db import upgrade_database

BACKEND_MODULES = {
    "sqlite": "retailsync.bus.backends.sql",
    "postgres": "retailsync.bus.backends.sql",
    "nats": "retailsync.bus.backends.nats",
}

TEST_OPTIONS = BusOptions(
    poll_interval=0.01,
    lease_ttl=2.0,
    delivery_batch_size=100,
    max_batch_size=500,
    shards=8,
    auto_retry_interval=0.05,
)


@dataclass
class BusFactory:
    """``await make(subscriptions, options=..., worker_id=...)`` -> a started backend.

    Every backend made by one factory shares the database (and NATS namespace), like
    processes of one deployment; all are closed when the test ends.
    """

    kind: str
    database_url: str
    nats_url: str | None
    namespace: str
    made: list[EventBusBackend] = field(default_factory=list)

    async def __call__(
        self,
        subscriptions: Sequence[Subscription] = (),
        *,
        options: BusOptions = TEST_OPTIONS,
        worker_id: str = "w1",
        **extra: Any,
    ) -> EventBusBackend:
        module = importlib.import_module(BACKEND_MODULES[self.kind])
        config = BackendConfig(
            database_url=self.database_url,
            nats_url=self.nats_url,
            namespace=self.namespace,
            worker_id=worker_id,
            options=options,
            health_probe=extra.pop("health_probe", None),
            extra=extra,
        )
        backend: EventBusBackend = module.create_backend(config)
        for subscription in subscriptions:
            backend.subscribe(subscription)
        await backend.start()
        self.made.append(backend)
        return backend

    async def close_all(self) -> None:
        for backend in reversed(self.made):
            await backend.close()
        if self.kind == "nats" and self.nats_url is not None:
            # Once, after every backend of the test (a restart test makes two on one stream).
            module = importlib.import_module(BACKEND_MODULES["nats"])
            await module.delete_namespace(self.nats_url, self.namespace)


@pytest.fixture(params=["sqlite", "postgres", "nats"])
async def bus_backend_factory(
    request: pytest.FixtureRequest,
) -> AsyncIterator[BusFactory]:
    """One parameter per backend; "nats" fails (ImportError) until that backend exists."""
    kind: str = request.param
    if kind == "sqlite":
        database_url = request.getfixturevalue("sqlite_url")
        nats_url = None
    else:
        database_url = request.getfixturevalue("postgres_url")
        nats_url = request.getfixturevalue("nats_url") if kind == "nats" else None
    importlib.import_module(BACKEND_MODULES[kind])  # a missing backend fails here, loudly
    upgrade_database(database_url)
    factory = BusFactory(kind, database_url, nats_url, f"T{uuid.uuid4().hex[:10].upper()}")
    try:
        yield factory
    finally:
        await factory.close_all()
