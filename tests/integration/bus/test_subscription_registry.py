"""Several workers register the same subscriptions at once against one database."""

from __future__ import annotations

import json
import threading

import sqlalchemy as sa

from retailsync.bus import tables as t
from retailsync.bus.backend import EventFilter, Subscription
from retailsync.bus.consumer import register_subscription, utcnow
from retailsync.db import create_engine_for, upgrade_database


def _noop_handler(*_: object) -> None:
    return None


def test_a_second_registration_waits_for_the_first_and_refreshes_it(postgres_url: str) -> None:
    """Worker A inserts the row and has not committed; worker B registers the same name.

    B must wait for A and then update the row, not fail on the primary key (the race two
    workers started together used to lose).
    """
    upgrade_database(postgres_url)
    engine = create_engine_for(postgres_url)
    name = "ledger"
    first = Subscription(name=name, handler=_noop_handler, filter=EventFilter())
    second = Subscription(
        name=name,
        handler=_noop_handler,
        filter=EventFilter(types=("order.created",)),
        downstream="erp",
    )
    errors: list[BaseException] = []
    with engine.connect() as conn_a:
        transaction_a = conn_a.begin()
        register_subscription(conn_a, first, utcnow())

        def register_b() -> None:
            try:
                with engine.begin() as conn_b:
                    register_subscription(conn_b, second, utcnow())
            except BaseException as error:  # reported below, on the test's thread
                errors.append(error)

        worker_b = threading.Thread(target=register_b)
        worker_b.start()
        worker_b.join(timeout=0.5)
        assert worker_b.is_alive(), "B should wait on A's uncommitted row"
        transaction_a.commit()
        worker_b.join(timeout=10)
    assert not worker_b.is_alive()
    assert errors == []
    with engine.connect() as conn:
        row = conn.execute(sa.select(t.subscriptions).where(t.subscriptions.c.name == name)).one()
    engine.dispose()
    assert json.loads(row.filter) == {"types": ["order.created"], "subjects": []}
    assert row.downstream == "erp"
