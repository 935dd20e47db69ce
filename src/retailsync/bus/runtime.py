"""Building the configured bus and running a worker: what ``bootstrap`` and the CLI call."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterable

from retailsync.bus.backend import (
    BackendConfig,
    BusOptions,
    EventBusBackend,
    HealthProbe,
    Subscription,
)
from retailsync.bus.errors import ScaleOutNotSupported
from retailsync.config import BusBackend, DeploymentMode, Settings

_registry: dict[str, Subscription] = {}

_BACKEND_MODULES = {
    BusBackend.SQL: "retailsync.bus.backends.sql",
    BusBackend.NATS: "retailsync.bus.backends.nats",
}


def register(subscription: Subscription) -> Subscription:
    """Add a subscription every bus built by :func:`create_bus` will deliver to."""
    _registry[subscription.name] = subscription
    return subscription


def registered() -> list[Subscription]:
    return list(_registry.values())


def backend_config(
    settings: Settings, options: BusOptions | None = None, health_probe: HealthProbe | None = None
) -> BackendConfig:
    return BackendConfig(
        database_url=settings.resolved_database_url,
        nats_url=settings.nats.url,
        namespace=settings.nats.stream_prefix,
        worker_id=settings.worker_id,
        options=options or BusOptions(),
        health_probe=health_probe,
    )


def create_bus(
    settings: Settings,
    subscriptions: Iterable[Subscription] | None = None,
    *,
    options: BusOptions | None = None,
    health_probe: HealthProbe | None = None,
) -> EventBusBackend:
    """The backend ``settings.bus_backend`` names, with the given (or registered) subscriptions."""
    module = importlib.import_module(_BACKEND_MODULES[settings.bus_backend])
    bus: EventBusBackend = module.create_backend(backend_config(settings, options, health_probe))
    for subscription in registered() if subscriptions is None else subscriptions:
        bus.subscribe(subscription)
    return bus


async def run_worker(
    settings: Settings,
    stop_event: asyncio.Event,
    subscriptions: Iterable[Subscription] | None = None,
    *,
    options: BusOptions | None = None,
    health_probe: HealthProbe | None = None,
) -> None:
    """Deliver events until ``stop_event`` is set (``retailsync worker``)."""
    if settings.mode is DeploymentMode.SCALE_OUT and settings.is_sqlite:
        raise ScaleOutNotSupported("(settings: mode=scale-out with a SQLite database_url)")
    bus = create_bus(settings, subscriptions, options=options, health_probe=health_probe)
    await bus.start()
    try:
        await bus.run_delivery(stop_event)
    finally:
        await bus.close()
