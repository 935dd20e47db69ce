from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from retailsync.reconcile.availability import (
    AdjustmentFact,
    AllocationReport,
    AtsFormula,
    ChannelRule,
    PositionState,
    PushThreshold,
    StockReport,
    apply_fact,
    channel_available,
    recompute,
    should_push,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
SKU, LOC = "SKU-1", "DC1"


def _when(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


stock_reports = st.builds(
    StockReport,
    st.just(SKU),
    st.just(LOC),
    st.integers(-5, 200),
    st.integers(0, 20),
    st.integers(0, 20),
    st.integers(0, 60).map(_when),
    st.integers(1, 3),
)
allocation_reports = st.builds(
    AllocationReport,
    st.just(SKU),
    st.just(LOC),
    st.integers(0, 30),
    st.integers(0, 60).map(_when),
    st.integers(1, 3),
)
# One adjustment id always carries the same delta and time, as in real life.
adjustment_pool = [
    AdjustmentFact(f"adj_{n}", SKU, LOC, delta, _when(minute))
    for n, (delta, minute) in enumerate(
        [(5, 3), (-2, 10), (7, 10), (-1, 25), (12, 40), (-4, 41), (3, 59), (-6, 60), (1, 0)]
    )
]
facts = st.lists(
    st.one_of(stock_reports, allocation_reports, st.sampled_from(adjustment_pool)), max_size=40
)
formulas = st.builds(
    AtsFormula,
    subtract_reserved=st.booleans(),
    subtract_allocated=st.booleans(),
    add_in_transit=st.booleans(),
    safety_stock=st.integers(0, 10),
)


@settings(max_examples=400, deadline=None)
@given(facts, formulas)
def test_incremental_available_to_sell_equals_recomputing_from_scratch(
    stream: list, formula: AtsFormula
) -> None:
    state = PositionState(SKU, LOC)
    for fact in stream:
        state = apply_fact(state, fact)
        # after every prefix, not only at the end
    expected = recompute(SKU, LOC, stream)
    assert state == expected
    assert state.available(formula) == expected.available(formula)


@settings(max_examples=200, deadline=None)
@given(facts)
def test_redelivering_every_event_changes_nothing(stream: list) -> None:
    once = PositionState(SKU, LOC)
    for fact in stream:
        once = apply_fact(once, fact)
    twice = once
    for fact in stream:
        twice = apply_fact(twice, fact)
    assert twice.on_hand == once.on_hand
    assert twice.available(AtsFormula()) == once.available(AtsFormula())


def test_adjustment_before_the_erp_baseline_is_already_counted() -> None:
    report = StockReport(SKU, LOC, 10, 0, 0, _when(30))
    early = AdjustmentFact("a1", SKU, LOC, 5, _when(20))
    late = AdjustmentFact("a2", SKU, LOC, -3, _when(40))
    state = PositionState(SKU, LOC)
    for fact in (early, report, late, late):
        state = apply_fact(state, fact)
    assert state.on_hand == 7


def test_formula_terms() -> None:
    formula = AtsFormula(safety_stock=2, safety_stock_by_sku={"RARE": 0})
    assert formula.compute("X", 20, 3, 4, 5) == 16
    assert formula.compute("RARE", 20, 3, 4, 5) == 18
    assert formula.compute("X", 1, 3, 4, 0) == 0


def test_channel_quantity() -> None:
    rule = ChannelRule(locations=("DC1", "ST01"), safety_stock=3, share_percent=50)
    assert channel_available(rule, {"DC1": 10, "ST01": 5, "ST02": 100}) == 6


def test_push_threshold_avoids_a_flood_of_tiny_updates() -> None:
    rule = PushThreshold(min_units=5, min_percent=10, low_stock=3)
    assert should_push(None, 100, rule)
    assert not should_push(100, 100, rule)
    assert not should_push(100, 98, rule)  # 2 units, 2 %
    assert should_push(100, 95, rule)  # 5 units
    assert should_push(20, 18, rule)  # 10 %
    assert should_push(4, 3, rule)  # low stock: every unit counts
    assert should_push(1, 0, rule)  # sold out
    assert should_push(0, 1, rule)  # back in stock
