"""Available-to-sell: the formula, the incremental per-position state, and the push decision.

Pure code (no I/O). ``AvailabilitySettings`` is configuration: which terms the formula uses,
safety stock, which locations feed each sales channel, and when a change is big enough to
push to a storefront. ``PositionState`` is what the hub knows about one SKU at one location,
built incrementally from canonical events by :func:`apply_event`; :func:`recompute` folds a
whole event history from scratch and must always agree with it.

How events combine: the ERP reports absolute positions (on hand, reserved, in transit) at a
time ``as_of``; ERP stock adjustments (deltas, each applied once by id) count on top of the
latest ERP position when they happened after it; the warehouse reports its allocations. A
report older than the one already held is ignored, so late or repeated events change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AdjustmentFact",
    "AllocationReport",
    "AtsFormula",
    "AvailabilitySettings",
    "ChannelRule",
    "PositionState",
    "PushThreshold",
    "StockReport",
    "apply_fact",
    "channel_available",
    "recompute",
    "should_push",
]


class AtsFormula(BaseModel):
    """``on_hand - reserved - allocated + in_transit - safety_stock``, each term switchable."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subtract_reserved: bool = True
    subtract_allocated: bool = True
    add_in_transit: bool = True
    safety_stock: int = Field(default=0, ge=0)
    safety_stock_by_sku: dict[str, int] = Field(default_factory=dict)

    def compute(
        self, sku: str, on_hand: int, reserved: int, allocated: int, in_transit: int
    ) -> int:
        """Units to offer, never below zero."""
        value = on_hand
        if self.subtract_reserved:
            value -= reserved
        if self.subtract_allocated:
            value -= allocated
        if self.add_in_transit:
            value += in_transit
        if self.safety_stock_by_sku:
            value -= self.safety_stock_by_sku.get(sku, self.safety_stock)
        else:
            value -= self.safety_stock
        return max(0, value)


class ChannelRule(BaseModel):
    """Which locations feed a sales channel, its own safety stock and the share it may sell."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    locations: tuple[str, ...] = Field(min_length=1)
    safety_stock: int = Field(default=0, ge=0)
    share_percent: int = Field(default=100, ge=0, le=100)


class PushThreshold(BaseModel):
    """When a changed quantity is worth pushing to a storefront (no flood of tiny updates).

    Push when nothing was pushed yet, when the quantity crosses zero (sold out / back in
    stock), when it is at or below ``low_stock`` (precision matters there), or when it moved
    by at least ``min_units`` or ``min_percent`` of the last pushed value.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_units: int = Field(default=5, ge=1)
    min_percent: float = Field(default=10.0, gt=0)
    low_stock: int = Field(default=5, ge=0)


class AvailabilitySettings(BaseModel):
    """Formula, channels and push threshold of the available-to-sell service."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    formula: AtsFormula = AtsFormula()
    channels: dict[str, ChannelRule] = Field(default_factory=dict)
    push: PushThreshold = PushThreshold()
    erp_reporters: tuple[str, ...] = ("erp",)
    warehouse_reporters: tuple[str, ...] = ("wms",)


# ---- facts ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StockReport:
    """The ERP's absolute position of a SKU at a location at ``as_of``."""

    sku: str
    location: str
    on_hand: int
    reserved: int
    in_transit: int
    as_of: datetime
    version: int = 1


@dataclass(frozen=True, slots=True)
class AllocationReport:
    """The warehouse's allocated units of a SKU at a location at ``as_of``."""

    sku: str
    location: str
    allocated: int
    as_of: datetime
    version: int = 1


@dataclass(frozen=True, slots=True)
class AdjustmentFact:
    """A signed ERP stock change, applied once per ``adjustment_id``."""

    adjustment_id: str
    sku: str
    location: str
    delta: int
    occurred_at: datetime


Fact = StockReport | AllocationReport | AdjustmentFact


@dataclass(frozen=True, slots=True)
class PositionState:
    """What the hub knows about one SKU at one location.

    ``adjustments`` keeps the adjustments that happened after the ERP baseline (id -> (delta,
    when)); older ones are already inside the baseline and are dropped.
    """

    sku: str
    location: str
    base_on_hand: int = 0
    reserved: int = 0
    in_transit: int = 0
    erp_as_of: datetime | None = None
    erp_version: int = 0
    allocated: int = 0
    wms_as_of: datetime | None = None
    wms_version: int = 0
    adjustments: Mapping[str, tuple[int, datetime]] = field(default_factory=dict)

    @property
    def on_hand(self) -> int:
        """The ERP baseline plus every later adjustment."""
        return self.base_on_hand + sum(delta for delta, _ in self.adjustments.values())

    def available(self, formula: AtsFormula) -> int:
        """Available to sell at this location under ``formula``."""
        return formula.compute(
            sku=self.sku,
            on_hand=self.on_hand,
            reserved=self.reserved,
            allocated=self.allocated,
            in_transit=self.in_transit,
        )


def _newer(as_of: datetime, version: int, held_as_of: datetime | None, held_version: int) -> bool:
    if held_as_of is None:
        return True
    return (as_of, version) > (held_as_of, held_version)


def apply_fact(state: PositionState, fact: Fact) -> PositionState:
    """The state after ``fact``; the same state when the fact is old or already applied."""
    if isinstance(fact, StockReport):
        if not _newer(fact.as_of, fact.version, state.erp_as_of, state.erp_version):
            return state
        later = {
            adj_id: (delta, when)
            for adj_id, (delta, when) in state.adjustments.items()
            if when > fact.as_of
        }
        return replace(
            state,
            base_on_hand=fact.on_hand,
            reserved=fact.reserved,
            in_transit=fact.in_transit,
            erp_as_of=fact.as_of,
            erp_version=fact.version,
            adjustments=later,
        )
    if isinstance(fact, AllocationReport):
        if not _newer(fact.as_of, fact.version, state.wms_as_of, state.wms_version):
            return state
        return replace(
            state, allocated=fact.allocated, wms_as_of=fact.as_of, wms_version=fact.version
        )
    if fact.adjustment_id in state.adjustments:
        return state
    if state.erp_as_of is not None and fact.occurred_at <= state.erp_as_of:
        return state  # already counted in the ERP's baseline
    return replace(
        state,
        adjustments={**state.adjustments, fact.adjustment_id: (fact.delta, fact.occurred_at)},
    )


def recompute(sku: str, location: str, facts: Iterable[Fact]) -> PositionState:
    """The state of one position folded from scratch: latest reports, later unique deltas.

    An independent formulation of :func:`apply_fact` (used to check it): take the newest ERP
    report and the newest warehouse report, then add each distinct adjustment that happened
    after that ERP report.
    """
    facts = list(facts)
    erp = [f for f in facts if isinstance(f, StockReport)]
    wms = [f for f in facts if isinstance(f, AllocationReport)]
    base = max(erp, key=lambda f: (f.as_of, f.version), default=None)
    alloc = max(wms, key=lambda f: (f.as_of, f.version), default=None)
    seen: dict[str, tuple[int, datetime]] = {}
    for fact in facts:
        if isinstance(fact, AdjustmentFact) and fact.adjustment_id not in seen:
            seen[fact.adjustment_id] = (fact.delta, fact.occurred_at)
    later = {
        adj_id: value for adj_id, value in seen.items() if base is None or value[1] > base.as_of
    }
    return PositionState(
        sku=sku,
        location=location,
        base_on_hand=base.on_hand if base else 0,
        reserved=base.reserved if base else 0,
        in_transit=base.in_transit if base else 0,
        erp_as_of=base.as_of if base else None,
        erp_version=base.version if base else 0,
        allocated=alloc.allocated if alloc else 0,
        wms_as_of=alloc.as_of if alloc else None,
        wms_version=alloc.version if alloc else 0,
        adjustments=later,
    )


def channel_available(rule: ChannelRule, per_location: Mapping[str, int]) -> int:
    """A channel's quantity: its locations' available units, less its safety stock, its share."""
    total = sum(per_location.get(location, 0) for location in rule.locations)
    total = max(0, total - rule.safety_stock)
    return total * rule.share_percent // 100


def should_push(last_pushed: int | None, current: int, threshold: PushThreshold) -> bool:
    """Whether ``current`` differs enough from what the storefront last got to push it."""
    if last_pushed is None:
        return True
    if current == last_pushed:
        return False
    if (last_pushed == 0) != (current == 0):
        return True
    if current <= threshold.low_stock or last_pushed <= threshold.low_stock:
        return True
    change = abs(current - last_pushed)
    return change >= threshold.min_units or change * 100 >= threshold.min_percent * last_pushed
