"""The available-to-sell read model: positions and channel levels in SQL, fed by the bus.

:class:`AvailabilityProjection` turns canonical events into facts (ERP positions, warehouse
allocations, ERP adjustments), applies them with the pure rules of
:mod:`retailsync.reconcile.availability` inside the delivery's transaction, and keeps each
channel's level. Corrections from reconciliation (source ``urn:retailsync:reconcile``) are
requests, not facts, and are skipped: the fact arrives when the ERP books it.

:func:`plan_pushes` lists the channel levels that moved enough to push (threshold rule), and
:func:`push_levels` sends them through a :class:`~retailsync.ports.commerce.CommercePort`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from retailsync.domain.catalogue import InventoryAdjusted, InventoryPositionReported, parse_event
from retailsync.domain.events import CloudEvent
from retailsync.ports.commerce import CommercePort
from retailsync.reconcile import tables as t
from retailsync.reconcile.availability import (
    AdjustmentFact,
    AllocationReport,
    AvailabilitySettings,
    Fact,
    PositionState,
    StockReport,
    apply_fact,
    channel_available,
    should_push,
)
from retailsync.reconcile.corrections import CORRECTION_SOURCE

__all__ = [
    "AvailabilityProjection",
    "AvailabilityView",
    "ChannelLevel",
    "LocationAvailability",
    "PushItem",
    "fact_from_event",
    "plan_pushes",
    "push_levels",
]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def fact_from_event(event: CloudEvent, settings: AvailabilitySettings) -> Fact | None:
    """The available-to-sell fact an event carries, or None when it carries none."""
    if event.source == CORRECTION_SOURCE:
        return None
    if event.type == "retailsync.inventory.position_reported":
        reported = parse_event(event)
        assert isinstance(reported, InventoryPositionReported)
        position = reported.position
        as_of = _utc(position.as_of)
        assert as_of is not None
        if reported.reported_by in settings.erp_reporters:
            return StockReport(
                position.sku,
                position.location,
                position.on_hand,
                position.reserved,
                position.in_transit,
                as_of,
                position.version,
            )
        if reported.reported_by in settings.warehouse_reporters:
            return AllocationReport(
                position.sku, position.location, position.allocated, as_of, position.version
            )
        return None
    if event.type == "retailsync.inventory.adjusted":
        adjusted = parse_event(event)
        assert isinstance(adjusted, InventoryAdjusted)
        adj = adjusted.adjustment
        occurred = _utc(adj.occurred_at)
        assert occurred is not None
        return AdjustmentFact(adj.id, adj.sku, adj.location, adj.delta, occurred)
    return None


class LocationAvailability(BaseModel):
    """Available to sell of a SKU at one location, with the terms it comes from."""

    location: str
    on_hand: int
    reserved: int
    allocated: int
    in_transit: int
    available: int
    updated_at: datetime


class ChannelLevel(BaseModel):
    """What a sales channel may sell of a SKU, and what the storefront was last told."""

    channel: str
    available: int
    pushed: int | None
    pushed_at: datetime | None


class AvailabilityView(BaseModel):
    """Available to sell of a SKU per location and per channel."""

    sku: str
    total: int
    locations: list[LocationAvailability]
    channels: list[ChannelLevel]


class AvailabilityProjection:
    """Keeps ``ats_positions`` / ``ats_channel_levels`` in step with inventory events."""

    subscription = "reconcile.availability"
    event_types = ("retailsync.inventory.position_reported", "retailsync.inventory.adjusted")

    def __init__(self, settings: AvailabilitySettings | None = None) -> None:
        self.settings = settings or AvailabilitySettings()

    async def handle(self, event: CloudEvent, ctx: Any) -> None:
        """Bus handler: apply in the delivery's transaction (``ctx.connection``)."""
        self.apply(ctx.connection, event)

    def apply(self, connection: sa.Connection, event: CloudEvent) -> bool:
        """Apply one event; True when a position changed."""
        fact = fact_from_event(event, self.settings)
        if fact is None:
            return False
        return self.apply_fact(connection, fact)

    def apply_fact(self, connection: sa.Connection, fact: Fact) -> bool:
        before = self.load(connection, fact.sku, fact.location)
        after = apply_fact(before, fact)
        if after == before:
            return False
        self._save(connection, before, after)
        self._refresh_channels(connection, fact.sku, fact.location)
        return True

    # ---- reading ----------------------------------------------------------------------------

    def load(self, connection: sa.Connection, sku: str, location: str) -> PositionState:
        row = connection.execute(
            sa.select(t.ats_positions).where(
                t.ats_positions.c.sku == sku, t.ats_positions.c.location == location
            )
        ).first()
        adjustments = {
            r.adjustment_id: (r.delta, _utc(r.occurred_at))
            for r in connection.execute(
                sa.select(t.ats_adjustments).where(
                    t.ats_adjustments.c.sku == sku, t.ats_adjustments.c.location == location
                )
            )
        }
        if row is None:
            return PositionState(sku, location, adjustments=adjustments)  # type: ignore[arg-type]
        return PositionState(
            sku=sku,
            location=location,
            base_on_hand=row.base_on_hand,
            reserved=row.reserved,
            in_transit=row.in_transit,
            erp_as_of=_utc(row.erp_as_of),
            erp_version=row.erp_version,
            allocated=row.allocated,
            wms_as_of=_utc(row.wms_as_of),
            wms_version=row.wms_version,
            adjustments=adjustments,  # type: ignore[arg-type]
        )

    def view(
        self, connection: sa.Connection, sku: str, location: str | None = None
    ) -> AvailabilityView:
        """Available to sell of ``sku`` (at one location when given) and per channel."""
        query = sa.select(t.ats_positions).where(t.ats_positions.c.sku == sku)
        if location is not None:
            query = query.where(t.ats_positions.c.location == location)
        locations = [
            LocationAvailability(
                location=row.location,
                on_hand=row.on_hand,
                reserved=row.reserved,
                allocated=row.allocated,
                in_transit=row.in_transit,
                available=row.available,
                updated_at=_utc(row.updated_at),
            )
            for row in connection.execute(query.order_by(t.ats_positions.c.location))
        ]
        channels = [
            ChannelLevel(
                channel=row.channel,
                available=row.available,
                pushed=row.pushed,
                pushed_at=_utc(row.pushed_at),
            )
            for row in connection.execute(
                sa.select(t.ats_channel_levels)
                .where(t.ats_channel_levels.c.sku == sku)
                .order_by(t.ats_channel_levels.c.channel)
            )
        ]
        return AvailabilityView(
            sku=sku,
            total=sum(item.available for item in locations),
            locations=locations,
            channels=channels,
        )

    # ---- writing ----------------------------------------------------------------------------

    def _save(self, connection: sa.Connection, before: PositionState, after: PositionState) -> None:
        now = datetime.now(UTC)
        values = {
            "base_on_hand": after.base_on_hand,
            "reserved": after.reserved,
            "in_transit": after.in_transit,
            "erp_as_of": after.erp_as_of,
            "erp_version": after.erp_version,
            "allocated": after.allocated,
            "wms_as_of": after.wms_as_of,
            "wms_version": after.wms_version,
            "on_hand": after.on_hand,
            "available": after.available(self.settings.formula),
            "updated_at": now,
        }
        where = (t.ats_positions.c.sku == after.sku) & (
            t.ats_positions.c.location == after.location
        )
        if not connection.execute(t.ats_positions.update().where(where).values(values)).rowcount:
            connection.execute(
                t.ats_positions.insert().values(sku=after.sku, location=after.location, **values)
            )
        gone = set(before.adjustments) - set(after.adjustments)
        if gone:
            connection.execute(
                t.ats_adjustments.delete().where(t.ats_adjustments.c.adjustment_id.in_(gone))
            )
        for adj_id in set(after.adjustments) - set(before.adjustments):
            delta, when = after.adjustments[adj_id]
            connection.execute(
                t.ats_adjustments.insert().values(
                    adjustment_id=adj_id,
                    sku=after.sku,
                    location=after.location,
                    delta=delta,
                    occurred_at=when,
                )
            )

    def _refresh_channels(self, connection: sa.Connection, sku: str, location: str) -> None:
        now = datetime.now(UTC)
        for channel, rule in self.settings.channels.items():
            if location not in rule.locations:
                continue
            per_location = {
                row.location: row.available
                for row in connection.execute(
                    sa.select(t.ats_positions.c.location, t.ats_positions.c.available).where(
                        t.ats_positions.c.sku == sku,
                        t.ats_positions.c.location.in_(rule.locations),
                    )
                )
            }
            available = channel_available(rule, per_location)
            where = (t.ats_channel_levels.c.channel == channel) & (
                t.ats_channel_levels.c.sku == sku
            )
            updated = connection.execute(
                t.ats_channel_levels.update()
                .where(where)
                .values(available=available, updated_at=now)
            ).rowcount
            if not updated:
                connection.execute(
                    t.ats_channel_levels.insert().values(
                        channel=channel, sku=sku, available=available, updated_at=now
                    )
                )


@dataclass(frozen=True, slots=True)
class PushItem:
    """A channel level to send to the storefront."""

    channel: str
    sku: str
    available: int
    last_pushed: int | None


def plan_pushes(
    connection: sa.Connection, settings: AvailabilitySettings, *, limit: int = 500
) -> list[PushItem]:
    """Channel levels that moved past the push threshold since they were last pushed."""
    items: list[PushItem] = []
    rows = connection.execute(
        sa.select(t.ats_channel_levels)
        .where(
            sa.or_(
                t.ats_channel_levels.c.pushed.is_(None),
                t.ats_channel_levels.c.pushed != t.ats_channel_levels.c.available,
            )
        )
        .order_by(t.ats_channel_levels.c.channel, t.ats_channel_levels.c.sku)
    )
    for row in rows:
        if should_push(row.pushed, row.available, settings.push):
            items.append(PushItem(row.channel, row.sku, row.available, row.pushed))
            if len(items) >= limit:
                break
    return items


ItemRef = Callable[[str, str], tuple[str, str] | None]
"""``item_ref(channel, sku)`` -> the storefront's (inventory item id, location id), if listed."""


async def push_levels(
    engine: sa.Engine,
    commerce: CommercePort,
    items: Sequence[PushItem],
    item_ref: ItemRef,
) -> int:
    """Set each level on the storefront (absolute, so a repeat is harmless); returns how many."""
    pushed = 0
    for item in items:
        refs = item_ref(item.channel, item.sku)
        if refs is None:
            continue
        await commerce.set_available(
            inventory_item_ref=refs[0], location_ref=refs[1], available=item.available
        )
        with engine.begin() as connection:
            connection.execute(
                t.ats_channel_levels.update()
                .where(
                    t.ats_channel_levels.c.channel == item.channel,
                    t.ats_channel_levels.c.sku == item.sku,
                )
                .values(pushed=item.available, pushed_at=datetime.now(UTC))
            )
        pushed += 1
    return pushed
