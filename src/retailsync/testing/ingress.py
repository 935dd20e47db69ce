"""For tests: the webhook ingress served on a loopback port over a real database.

:func:`running_ingress` mounts ``POST /v1/webhooks/{connector}`` for the given receivers with a
:class:`ListPublisher` in place of the event bus, so a test sees exactly what a delivery would
have published; :func:`wait_for` polls a condition.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI

from retailsync.connectors.ingress import (
    build_webhook_router,
    webhook_deliveries,
    webhook_rejections,
)
from retailsync.connectors.webhook_protocol import WebhookReceiver
from retailsync.db import create_engine_for, metadata
from retailsync.domain.events import CloudEvent
from retailsync.sandbox.server import SandboxServer


@dataclass
class ListPublisher:
    """Stores published events in a list; can be told to fail the next publish."""

    events: list[CloudEvent] = field(default_factory=list)
    fail_next: int = 0

    async def publish(self, events: Sequence[CloudEvent]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("event store unavailable")
        self.events.extend(events)


@dataclass
class Ingress:
    """A running ingress: its base URL, publisher, database and unmappable hand-overs."""

    url: str
    publisher: ListPublisher
    engine: sa.Engine
    unmappable: list[tuple[str, str, bytes, Exception]]

    def rejections(self) -> list[sa.Row[Any]]:
        with self.engine.connect() as connection:
            return list(connection.execute(sa.select(webhook_rejections)).all())

    def deliveries(self) -> list[sa.Row[Any]]:
        with self.engine.connect() as connection:
            return list(connection.execute(sa.select(webhook_deliveries)).all())


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within timeout")
        time.sleep(0.02)


@contextmanager
def running_ingress(
    database_url: str, receivers: list[WebhookReceiver], *, max_body_bytes: int = 64 * 1024
) -> Iterator[Ingress]:
    """Serve ``POST /v1/webhooks/{connector}`` for ``receivers`` on a loopback port."""
    engine = create_engine_for(database_url)
    metadata.create_all(engine, tables=[webhook_deliveries, webhook_rejections])
    publisher = ListPublisher()
    unmappable: list[tuple[str, str, bytes, Exception]] = []

    async def on_unmappable(connector: str, delivery: str, body: bytes, error: Exception) -> None:
        unmappable.append((connector, delivery, body, error))

    app = FastAPI()
    app.include_router(
        build_webhook_router(
            receivers,
            publisher,
            engine,
            on_unmappable=on_unmappable,
            max_body_bytes=max_body_bytes,
        )
    )
    try:
        with SandboxServer(app) as server:
            yield Ingress(f"{server.base_url}/v1/webhooks", publisher, engine, unmappable)
    finally:
        engine.dispose()
