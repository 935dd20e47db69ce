"""A reconciliation end to end on SQLite and PostgreSQL with the real SQL event bus.

Three in-memory systems drift; run 1 reports the drift, publishes corrections on the bus and
opens tickets; a bus subscriber applies the corrections to the systems; run 2 reports only
what a person must still decide and publishes nothing new.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from retailsync.bus.backend import BackendConfig, EventFilter, PublishStatus, Subscription
from retailsync.bus.backends.sql import create_backend
from retailsync.db import create_engine_for, upgrade_database
from retailsync.domain.catalogue import parse_event
from retailsync.domain.events import CloudEvent
from retailsync.reconcile.corrections import STOREFRONT_LEVEL_REPORTER
from retailsync.reconcile.engine import run_reconciliation
from retailsync.reconcile.errors import RunAlreadyActive
from retailsync.reconcile.export import iter_csv, iter_json
from retailsync.reconcile.merge import pages_of
from retailsync.reconcile.records import PublishedLevel, StockFigure
from retailsync.reconcile.store import ReportStore, SqlTicketSink


class World:
    """ERP, warehouse and storefront stock, as plain dicts keyed ``SKU@LOCATION``."""

    def __init__(self) -> None:
        self.erp: dict[str, StockFigure] = {}
        self.wms: dict[str, StockFigure] = {}
        self.shop: dict[str, PublishedLevel] = {}
        self.applied: set[str] = set()
        for n in range(40):
            sku = f"SKU-{n:03d}"
            self.erp[f"{sku}@DC1"] = StockFigure.of(sku, "DC1", 20 + n, reserved=2)
            self.wms[f"{sku}@DC1"] = StockFigure.of(sku, "DC1", 20 + n, allocated=1)
            self.shop[f"{sku}@DC1"] = PublishedLevel.of(sku, "DC1", 20 + n - 3)
        self.wms["SKU-003@DC1"] = StockFigure.of("SKU-003", "DC1", 21, allocated=1)  # -2
        self.wms["SKU-007@DC1"] = StockFigure.of("SKU-007", "DC1", 7, allocated=1)  # -20
        self.shop["SKU-011@DC1"] = PublishedLevel.of("SKU-011", "DC1", 99)
        del self.wms["SKU-020@DC1"]

    def sources(self) -> dict[str, AsyncIterator[list[Any]]]:
        def sorted_pages(items: dict[str, Any]) -> AsyncIterator[list[Any]]:
            return pages_of([items[k] for k in sorted(items)], 7)

        return {
            "erp": sorted_pages(self.erp),
            "wms": sorted_pages(self.wms),
            "storefront": sorted_pages(self.shop),
        }

    async def apply_correction(self, event: CloudEvent, ctx: Any) -> None:
        payload = parse_event(event)
        data: Any = payload
        if event.type == "retailsync.inventory.adjusted":
            adj = data.adjustment
            if adj.id in self.applied:
                return
            self.applied.add(adj.id)
            held = self.erp[adj.key]
            self.erp[adj.key] = StockFigure.of(
                held.sku, held.location, held.on_hand + adj.delta, reserved=held.reserved
            )
        elif data.reported_by == STOREFRONT_LEVEL_REPORTER:
            pos = data.position
            self.shop[pos.key] = PublishedLevel.of(pos.sku, pos.location, pos.on_hand)


class RecordingPublisher:
    def __init__(self, bus: Any) -> None:
        self.bus = bus
        self.accepted = 0
        self.duplicates = 0

    async def publish(self, events: Sequence[CloudEvent]) -> None:
        for outcome in await self.bus.publish(list(events)):
            assert outcome.ok, outcome
            if outcome.status is PublishStatus.ACCEPTED:
                self.accepted += 1
            else:
                self.duplicates += 1


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


async def test_drift_is_reported_corrected_and_gone_on_the_second_run(database_url: str) -> None:
    upgrade_database(database_url)
    engine = create_engine_for(database_url)
    world = World()
    bus = create_backend(BackendConfig(database_url=database_url))
    bus.subscribe(
        Subscription(
            name="test.apply-corrections",
            handler=world.apply_correction,
            filter=EventFilter(
                types=("retailsync.inventory.adjusted", "retailsync.inventory.position_reported")
            ),
        )
    )
    await bus.start()
    try:
        store = ReportStore(engine)
        tickets = SqlTicketSink(engine)
        publisher = RecordingPublisher(bus)
        progress: list[tuple[int, int]] = []

        first = await run_reconciliation(
            "inventory",
            world.sources(),
            store=store,
            publisher=publisher,
            open_exception=tickets,
            batch_size=2,
            progress=lambda keys, drifts: progress.append((keys, drifts)),
        )
        assert first.status == "completed"
        assert first.keys_compared == 40
        assert first.counts == {
            "stock.missing_in_wms": 1,
            "stock.on_hand_mismatch": 2,
            "stock.storefront_level_mismatch": 3,
        }
        assert (first.corrections, first.exceptions) == (4, 2)
        assert progress[-1] == (40, 6)
        assert publisher.accepted == 4
        open_ids = {t["key"] for t in tickets.open_tickets()}
        assert open_ids == {"SKU-007@DC1", "SKU-020@DC1"}

        # Downloadable report: CSV and JSON with counts by kind.
        rows = list(csv.DictReader(io.StringIO("".join(iter_csv(store, first.id)))))
        assert len(rows) == 6
        by_key = {(r["key"], r["kind"]): r for r in rows}
        fix = by_key[("SKU-003@DC1", "stock.on_hand_mismatch")]
        assert fix["action"] == "correct" and fix["observed"] == "erp=23;wms=21"
        assert fix["correction_event_id"].startswith("rcn-")
        report = json.loads("".join(iter_json(store, first.id)))
        assert report["run"]["counts"]["stock.on_hand_mismatch"] == 2
        assert len(report["drifts"]) == 6

        # Running again before anything was applied publishes the same ids: absorbed.
        await run_reconciliation(
            "inventory", world.sources(), store=store, publisher=publisher, open_exception=tickets
        )
        assert (publisher.accepted, publisher.duplicates) == (4, 4)

        await bus.deliver_until_idle(timeout=30)
        assert world.erp["SKU-003@DC1"].on_hand == 21
        assert world.shop["SKU-011@DC1"].available == 20 + 11 - 3

        second = await run_reconciliation(
            "inventory", world.sources(), store=store, publisher=publisher, open_exception=tickets
        )
        assert second.corrections == 0
        assert set(second.counts) == {"stock.missing_in_wms", "stock.on_hand_mismatch"}
        assert second.exceptions == 2
        assert publisher.accepted == 4  # nothing new was published
        assert len(tickets.open_tickets()) == 2  # the same two tickets, not new ones
        assert store.list_runs(job="inventory")[0].id == second.id
    finally:
        await bus.close()
        engine.dispose()


async def test_a_failing_source_marks_the_run_failed_and_a_running_run_blocks_another(
    sqlite_url: str,
) -> None:
    upgrade_database(sqlite_url)
    engine = create_engine_for(sqlite_url)
    store = ReportStore(engine)

    async def broken() -> AsyncIterator[list[StockFigure]]:
        yield [StockFigure.of("A", "DC1", 1)]
        raise ConnectionError("warehouse API went away")

    async def empty() -> AsyncIterator[list[StockFigure]]:
        for page in ():
            yield page

    with pytest.raises(ConnectionError):
        await run_reconciliation(
            "inventory",
            {"erp": empty(), "wms": broken(), "storefront": empty()},
            store=store,
            publisher=None,
            open_exception=None,
        )
    (failed,) = store.list_runs()
    assert failed.status == "failed" and "warehouse API went away" in (failed.error or "")

    store.start_run(
        run_id="rcn_stuck",
        job="orders",
        scope="orders",
        trigger="t",
        requested_by=None,
        started_at=failed.started_at,
    )
    with pytest.raises(RunAlreadyActive):
        await run_reconciliation(
            "orders",
            {"storefront": empty(), "erp": empty()},
            store=store,
            publisher=None,
            open_exception=None,
        )
    with engine.connect() as connection:
        assert connection.execute(sa.text("select count(*) from reconcile_runs")).scalar() == 2
    engine.dispose()
