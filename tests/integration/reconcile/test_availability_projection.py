"""The SQL available-to-sell projection agrees with recomputing from scratch, fed by the bus."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retailsync.bus.backend import BackendConfig, EventFilter, Subscription
from retailsync.bus.backends.sql import create_backend
from retailsync.db import create_engine_for, upgrade_database
from retailsync.domain.catalogue import InventoryAdjusted, InventoryPositionReported, build_event
from retailsync.domain.events import CloudEvent
from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.domain.inventory import AdjustmentReason, InventoryAdjustment, InventoryPosition
from retailsync.reconcile.availability import (
    AdjustmentFact,
    AllocationReport,
    AvailabilitySettings,
    ChannelRule,
    StockReport,
    recompute,
)
from retailsync.reconcile.corrections import CORRECTION_SOURCE
from retailsync.reconcile.projection import AvailabilityProjection, plan_pushes

T0 = datetime(2026, 11, 1, tzinfo=UTC)
SETTINGS = AvailabilitySettings(
    channels={"web": ChannelRule(locations=("DC1", "ST01"), safety_stock=1)}
)
_skus = itertools.count()


def _position_event(fact: StockReport | AllocationReport) -> CloudEvent:
    if isinstance(fact, StockReport):
        position = InventoryPosition(
            sku=fact.sku,
            location=fact.location,
            version=fact.version,
            on_hand=fact.on_hand,
            reserved=fact.reserved,
            allocated=0,
            in_transit=fact.in_transit,
            as_of=fact.as_of,
        )
        reporter = "erp"
    else:
        position = InventoryPosition(
            sku=fact.sku,
            location=fact.location,
            version=fact.version,
            on_hand=0,
            reserved=0,
            allocated=fact.allocated,
            in_transit=0,
            as_of=fact.as_of,
        )
        reporter = "wms"
    return build_event(
        InventoryPositionReported(position=position, reported_by=reporter),
        source=f"urn:test:{reporter}",
    )


def _adjustment_event(fact: AdjustmentFact, source: str = "urn:test:erp") -> CloudEvent:
    return build_event(
        InventoryAdjusted(
            adjustment=InventoryAdjustment(
                id=fact.adjustment_id,
                sku=fact.sku,
                location=fact.location,
                delta=fact.delta,
                reason=AdjustmentReason.CORRECTION,
                occurred_at=fact.occurred_at,
            )
        ),
        source=source,
    )


def _event(fact: StockReport | AllocationReport | AdjustmentFact) -> CloudEvent:
    if isinstance(fact, AdjustmentFact):
        return _adjustment_event(fact)
    return _position_event(fact)


@st.composite
def streams(draw: st.DrawFn) -> tuple[str, list]:
    sku = f"SKU-{next(_skus)}"
    when = st.integers(0, 60).map(lambda m: T0 + timedelta(minutes=m))
    pool = [
        AdjustmentFact(derive_id(EntityKind.INVENTORY_ADJUSTMENT, sku, str(n)), sku, "DC1", d, w)
        for n, (d, w) in enumerate(
            draw(st.lists(st.tuples(st.integers(-9, 9).filter(bool), when), max_size=6))
        )
    ]
    fact = st.one_of(
        st.builds(
            StockReport,
            st.just(sku),
            st.just("DC1"),
            st.integers(0, 100),
            st.integers(0, 10),
            st.integers(0, 10),
            when,
            st.integers(1, 3),
        ),
        st.builds(
            AllocationReport,
            st.just(sku),
            st.just("DC1"),
            st.integers(0, 10),
            when,
            st.integers(1, 3),
        ),
        *([st.sampled_from(pool)] if pool else []),
    )
    return sku, draw(st.lists(fact, max_size=25))


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    url = f"sqlite:///{tmp_path_factory.mktemp('ats') / 'ats.sqlite'}"
    upgrade_database(url)
    engine = create_engine_for(url)
    yield engine
    engine.dispose()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(streams())
def test_sql_projection_equals_recomputing_from_scratch(engine, stream) -> None:
    sku, facts = stream
    projection = AvailabilityProjection(SETTINGS)
    for fact in facts:
        with engine.begin() as connection:
            projection.apply(connection, _event(fact))
    expected = recompute(sku, "DC1", facts)
    with engine.connect() as connection:
        state = projection.load(connection, sku, "DC1")
        view = projection.view(connection, sku)
    assert state.on_hand == expected.on_hand
    assert state.available(SETTINGS.formula) == expected.available(SETTINGS.formula)
    if facts:
        (location,) = view.locations
        assert location.available == expected.available(SETTINGS.formula)
        (web,) = view.channels
        assert web.available == max(0, expected.available(SETTINGS.formula) - 1)


async def test_bus_feeds_the_projection_once_and_skips_correction_requests(sqlite_url: str) -> None:
    upgrade_database(sqlite_url)
    projection = AvailabilityProjection(SETTINGS)
    bus = create_backend(BackendConfig(database_url=sqlite_url))
    bus.subscribe(
        Subscription(
            name=projection.subscription,
            handler=projection.handle,
            filter=EventFilter(types=projection.event_types),
        )
    )
    await bus.start()
    try:
        report = StockReport("SKU-A", "DC1", 40, 5, 10, T0)
        adj = AdjustmentFact(
            derive_id(EntityKind.INVENTORY_ADJUSTMENT, "t", "1"),
            "SKU-A",
            "DC1",
            -4,
            T0 + timedelta(minutes=1),
        )
        events = [
            _event(report),
            _event(AllocationReport("SKU-A", "DC1", 3, T0)),
            _event(adj),
            _event(StockReport("SKU-A", "ST01", 6, 0, 0, T0)),
        ]
        await bus.publish(events)
        await bus.publish([events[2]])  # a redelivered adjustment
        correction = _adjustment_event(
            AdjustmentFact(
                derive_id(EntityKind.INVENTORY_ADJUSTMENT, "t", "2"),
                "SKU-A",
                "DC1",
                100,
                T0 + timedelta(minutes=2),
            ),
            source=CORRECTION_SOURCE,
        )
        await bus.publish([correction])
        await bus.deliver_until_idle(timeout=30)
        engine = create_engine_for(sqlite_url)
        with engine.connect() as connection:
            view = projection.view(connection, "SKU-A")
            pushes = plan_pushes(connection, SETTINGS)
        engine.dispose()
        dc1 = next(item for item in view.locations if item.location == "DC1")
        assert (dc1.on_hand, dc1.available) == (36, 36 - 5 - 3 + 10)
        assert view.total == 38 + 6
        assert [(c.channel, c.available) for c in view.channels] == [("web", 43)]
        assert [(p.channel, p.sku, p.available) for p in pushes] == [("web", "SKU-A", 43)]
    finally:
        await bus.close()
