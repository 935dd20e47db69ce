"""The typed figures reconciliation sources yield, one kind per job; each has a sort ``key``.

Plain slotted dataclasses rather than Pydantic models: a run compares millions of them, and
they are built from data an adapter already validated. The stock figures are not ``frozen``
(a frozen dataclass is several times slower to build, which shows at a million rows); treat
them as immutable all the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from retailsync.domain.money import Money
from retailsync.domain.orders import Order, OrderStatus

__all__ = [
    "Keyed",
    "OrderFigure",
    "PublishedLevel",
    "RefundFigure",
    "StockFigure",
    "stock_key",
]


class Keyed(Protocol):
    """Anything with a string ``key``; sources yield these in ascending key order."""

    @property
    def key(self) -> str: ...


def stock_key(sku: str, location: str) -> str:
    """``SKU@LOCATION``, the key inventory figures sort and match on."""
    return f"{sku}@{location}"


@dataclass(slots=True)
class StockFigure:
    """Units of one SKU at one location as the ERP or the warehouse counts them."""

    key: str
    sku: str
    location: str
    on_hand: int
    reserved: int = 0
    allocated: int = 0
    in_transit: int = 0

    @classmethod
    def of(
        cls,
        sku: str,
        location: str,
        on_hand: int,
        *,
        reserved: int = 0,
        allocated: int = 0,
        in_transit: int = 0,
    ) -> StockFigure:
        key = stock_key(sku, location)
        return cls(key, sku, location, on_hand, reserved, allocated, in_transit)


@dataclass(slots=True)
class PublishedLevel:
    """Units a storefront offers for one SKU at one location (``item_ref``: its own item id)."""

    key: str
    sku: str
    location: str
    available: int
    item_ref: str | None = None
    location_ref: str | None = None

    @classmethod
    def of(
        cls,
        sku: str,
        location: str,
        available: int,
        *,
        item_ref: str | None = None,
        location_ref: str | None = None,
    ) -> PublishedLevel:
        return cls(stock_key(sku, location), sku, location, available, item_ref, location_ref)


@dataclass(frozen=True, slots=True)
class OrderFigure:
    """An order as one system holds it; ``key`` is the canonical order id.

    ``order`` is the full canonical order when the source can give it; the correction for an
    order the ERP never received needs it. ``order_ref`` is the system's own id of the order
    (the storefront source sets it); a status correction addresses the storefront order by it.
    """

    key: str
    reference: str
    status: OrderStatus | None
    total: Money
    version: int = 1
    order: Order | None = None
    order_ref: str | None = None


@dataclass(frozen=True, slots=True)
class RefundFigure:
    """A refund as one system records it (a decision, a credit note or a payment refund).

    ``key`` is the canonical refund id; ``reference`` the system's own document id; ``at``
    when it was decided / posted / paid (a young decision is given time before it counts).
    """

    key: str
    reference: str
    amount: Money
    at: datetime | None = None
