"""Live-source pieces against real components: Shopify levels paging over the sandbox, tickets
in the bus exception queue, scheduled runs on SQLite."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from retailsync.bus import tables as bus_tables
from retailsync.connectors.shopify.client import ShopifyApi
from retailsync.connectors.shopify.config import ShopifySettings
from retailsync.connectors.shopify.levels import ShopifyLevels
from retailsync.db import create_engine_for, upgrade_database
from retailsync.reconcile import tables as t
from retailsync.reconcile.corrections import DriftTicket
from retailsync.reconcile.exceptions import ExceptionQueueTicketSink
from retailsync.reconcile.merge import pages_of
from retailsync.reconcile.policy import ReconcilePolicy, ReconcileSchedule
from retailsync.reconcile.records import PublishedLevel, StockFigure
from retailsync.reconcile.schedule import ReconcileScheduler
from retailsync.reconcile.store import ReportStore
from retailsync.sandbox.shopify import (
    SANDBOX_ACCESS_TOKEN,
    SANDBOX_SHOP_DOMAIN,
    SANDBOX_WEBHOOK_SECRET,
    ShopifySandbox,
    create_shopify_sandbox,
)


@pytest.fixture
def engine(sqlite_url: str) -> Any:
    upgrade_database(sqlite_url)
    engine = create_engine_for(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
async def shop() -> AsyncIterator[tuple[ShopifySandbox, ShopifyApi]]:
    sandbox = ShopifySandbox()
    settings = ShopifySettings(
        shop_domain=SANDBOX_SHOP_DOMAIN,
        access_token=SANDBOX_ACCESS_TOKEN,
        webhook_secret=SANDBOX_WEBHOOK_SECRET,
        base_url="http://shop.test",
    )
    transport = httpx.ASGITransport(app=create_shopify_sandbox(sandbox))
    api = ShopifyApi(settings, transport=transport)
    yield sandbox, api
    await api.aclose()


async def test_shopify_levels_follow_the_link_pages(
    shop: tuple[ShopifySandbox, ShopifyApi],
) -> None:
    sandbox, api = shop
    for item in range(1, 8):
        sandbox.seed_level(1000 + item, 55, available=item)
    sandbox.seed_level(2000, 66, available=99)  # another location: not asked for
    seen = [
        level async for level in ShopifyLevels(api, page_size=3).iter_levels(location_ids=["55"])
    ]
    assert [(lv.inventory_item_ref, lv.available) for lv in seen] == [
        (str(1000 + item), item) for item in range(1, 8)
    ]
    assert sandbox.requests_seen == 3  # 3 + 3 + 1, following rel="next"
    only = ShopifyLevels(api).iter_levels(inventory_item_ids=["gid://shopify/InventoryItem/2000"])
    assert [(lv.location_ref, lv.available) async for lv in only] == [("66", 99)]


async def test_shopify_levels_refuse_an_unbounded_listing(
    shop: tuple[ShopifySandbox, ShopifyApi],
) -> None:
    with pytest.raises(ValueError, match="location_ids or inventory_item_ids"):
        await anext(ShopifyLevels(shop[1]).iter_levels())


def _ticket(run_id: str, ticket_id: str = "rex-1") -> DriftTicket:
    return DriftTicket(
        id=ticket_id,
        job="refunds",
        scope="refunds",
        run_id=run_id,
        kind="refund.credit_note_missing",
        key="ref_0001",
        assignee="finance",
        summary="refund ref_0001 was paid but the ERP has no credit note; post it",
        observed={"payments": "re_1 EUR 30.00"},
        opened_at=datetime.now(UTC),
    )


async def test_tickets_reach_the_exception_queue_once(engine: sa.Engine) -> None:
    sink = ExceptionQueueTicketSink(engine)
    await sink([_ticket("rcn_1")])
    await sink([_ticket("rcn_2")])  # the next run sees the same drift
    assert sink.record([_ticket("rcn_3", "rex-2")]) == 1
    exceptions = bus_tables.exceptions
    with engine.connect() as connection:
        queue = connection.execute(
            sa.select(
                exceptions.c.event_id,
                exceptions.c.subscriber,
                exceptions.c.classification,
                exceptions.c.status,
                exceptions.c.error_message,
            ).order_by(exceptions.c.event_id)
        ).all()
        tickets = connection.execute(
            sa.select(t.tickets.c.id, t.tickets.c.first_run_id, t.tickets.c.last_run_id)
        ).all()
    assert [row[:4] for row in queue] == [
        ("rex-1", "intake:reconcile", "business", "open"),
        ("rex-2", "intake:reconcile", "business", "open"),
    ]
    assert "refund.credit_note_missing" in queue[0].error_message
    assert "finance" in queue[0].error_message
    assert sorted(tuple(row) for row in tickets) == [
        ("rex-1", "rcn_1", "rcn_2"),
        ("rex-2", "rcn_3", "rcn_3"),
    ]


def _inventory_sources(job: str) -> dict[str, Any]:
    assert job == "inventory"
    erp = [StockFigure.of("A", "STO", 5), StockFigure.of("B", "STO", 3)]
    wms = [StockFigure.of("A", "STO", 5), StockFigure.of("B", "STO", 3)]
    shop = [PublishedLevel.of("A", "STO", 5), PublishedLevel.of("B", "STO", 1)]
    return {"erp": pages_of(erp), "wms": pages_of(wms), "storefront": pages_of(shop)}


async def test_scheduled_runs_repeat_at_the_interval_and_stop(engine: sa.Engine) -> None:
    schedule = ReconcileSchedule(intervals={"inventory": 0.2}, dry_run=True)
    hub = SimpleNamespace(
        engine=engine,
        adapters={
            "reconcile_sources": _inventory_sources,
            "reconcile_policy": ReconcilePolicy(schedule=schedule),
        },
    )
    scheduler = ReconcileScheduler(hub)
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    await asyncio.sleep(0.7)
    stopped_at = time.monotonic()
    stop.set()
    await asyncio.wait_for(task, timeout=2)
    assert time.monotonic() - stopped_at < 1.0
    runs = ReportStore(engine).list_runs(job="inventory")
    assert 3 <= len(runs) <= 5, [r.started_at for r in runs]
    assert {(r.trigger, r.status, r.drift_count) for r in runs} == {("schedule", "completed", 1)}
    assert scheduler.failures == []


async def test_a_failing_scheduled_run_is_recorded_and_the_loop_goes_on(
    engine: sa.Engine,
) -> None:
    calls: list[str] = []

    def broken(job: str) -> dict[str, Any]:
        calls.append(job)
        raise RuntimeError("the warehouse API is down")

    schedule = ReconcileSchedule(intervals={"inventory": 0.1})
    hub = SimpleNamespace(
        engine=engine,
        adapters={"reconcile_sources": broken, "reconcile_policy": ReconcilePolicy()},
    )
    scheduler = ReconcileScheduler(hub, schedule)
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    await asyncio.sleep(0.35)
    stop.set()
    await asyncio.wait_for(task, timeout=2)
    assert len(calls) >= 3
    assert all("the warehouse API is down" in reason for _, reason in scheduler.failures)


async def test_no_schedule_means_no_runs(engine: sa.Engine) -> None:
    hub = SimpleNamespace(engine=engine, adapters={"reconcile_sources": _inventory_sources})
    await asyncio.wait_for(ReconcileScheduler(hub).run(asyncio.Event()), timeout=1)
    assert ReportStore(engine).list_runs() == []
