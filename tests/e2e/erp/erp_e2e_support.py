"""Helpers shared by the end-to-end ERP tests: canonical orders, a recording publisher."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from retailsync.connectors.erp.client import TrytonConnection
from retailsync.domain.customers import Customer
from retailsync.domain.events import CloudEvent
from retailsync.domain.identifiers import EntityKind, new_id
from retailsync.domain.money import Money
from retailsync.domain.orders import Order, OrderLine
from retailsync.sandbox.erp import ErpSandbox
from retailsync.sandbox.erp.seed import product_by_sku


def connection_for(sandbox: ErpSandbox) -> TrytonConnection:
    return TrytonConnection(
        base_url=sandbox.base_url,
        database=sandbox.database,
        login=sandbox.login,
        password=sandbox.password,
        timeout_seconds=30.0,
    )


class SqlRecordingPublisher:
    """Stores published events in a table keyed by event id; duplicates are absorbed."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.published = 0  # events handed over, duplicates included

    async def publish(self, events: Sequence[CloudEvent]) -> None:
        self.published += len(events)
        with self.engine.begin() as conn:
            for event in events:
                conn.execute(
                    sa.text(
                        "INSERT INTO recorded_events (event_id, type, subject, data) "
                        "VALUES (:id, :type, :subject, :data) ON CONFLICT DO NOTHING"
                    ),
                    {
                        "id": event.id,
                        "type": event.type,
                        "subject": event.subject,
                        "data": event.model_dump_json(include={"data"}),
                    },
                )

    def recorded(self, subject: str | None = None) -> list[tuple[str, str]]:
        """(type, event id) of every stored event, optionally for one subject."""
        query = "SELECT type, event_id FROM recorded_events"
        params = {}
        if subject is not None:
            query += " WHERE subject = :subject"
            params["subject"] = subject
        with self.engine.connect() as conn:
            return [(row[0], row[1]) for row in conn.execute(sa.text(query), params)]


ADA = Customer(
    id=new_id(EntityKind.CUSTOMER),
    email="ada@example.com",
    given_name="Ada",
    family_name="Lovelace",
    created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
)


def make_order(*items: tuple[str, int], customer: Customer = ADA) -> Order:
    """A pending canonical order for seeded SKUs at their list price, in EUR."""
    lines = []
    for number, (sku, quantity) in enumerate(items, start=1):
        try:
            price = product_by_sku(sku).list_price
        except KeyError:
            price = product_by_sku("RS-CAP").list_price
        lines.append(
            OrderLine.priced(
                line_no=number,
                sku=sku,
                quantity=quantity,
                unit_price=Money.of(price, "EUR"),
                tax=Money.zero("EUR"),
            )
        )
    return Order.place(
        id=new_id(EntityKind.ORDER),
        channel="web",
        currency="EUR",
        lines=lines,
        placed_at=dt.datetime.now(dt.UTC),
        customer_id=customer.id,
    )
