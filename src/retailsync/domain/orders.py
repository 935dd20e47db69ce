"""Orders and order lines, with the order lifecycle table."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from pydantic import Field, model_validator

from retailsync.domain.base import (
    CanonicalModel,
    Quantity,
    ShortText,
    Sku,
    Timestamp,
    Version,
    require_currency,
)
from retailsync.domain.customers import Address
from retailsync.domain.errors import IllegalOrderTransition
from retailsync.domain.identifiers import CustomerId, OrderId
from retailsync.domain.lifecycle import Lifecycle
from retailsync.domain.money import CurrencyCode, Money

__all__ = ["ORDER_LIFECYCLE", "ORDER_TRANSITIONS", "Order", "OrderLine", "OrderStatus"]


class OrderStatus(StrEnum):
    """Where an order is between checkout and completion."""

    PENDING = "pending"
    ON_HOLD = "on_hold"
    CONFIRMED = "confirmed"
    PROCESSING = "processing"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


_S = OrderStatus
ORDER_TRANSITIONS: dict[OrderStatus, set[OrderStatus]] = {
    _S.PENDING: {_S.CONFIRMED, _S.ON_HOLD, _S.CANCELLED},
    _S.ON_HOLD: {_S.PENDING, _S.CONFIRMED, _S.CANCELLED},
    _S.CONFIRMED: {_S.PROCESSING, _S.ON_HOLD, _S.CANCELLED},
    _S.PROCESSING: {_S.PARTIALLY_SHIPPED, _S.SHIPPED, _S.CANCELLED},
    _S.PARTIALLY_SHIPPED: {_S.SHIPPED},
    _S.SHIPPED: {_S.DELIVERED},
    _S.DELIVERED: {_S.COMPLETED},
    _S.COMPLETED: set(),
    _S.CANCELLED: set(),
}
"""Order status -> statuses it may move to next."""

ORDER_LIFECYCLE = Lifecycle(OrderStatus, ORDER_TRANSITIONS, IllegalOrderTransition)


class OrderLine(CanonicalModel):
    """One product on an order: quantity times unit price, less discount, plus tax."""

    line_no: int = Field(ge=1, le=10_000)
    sku: Sku
    description: ShortText | None = None
    quantity: Quantity
    unit_price: Money
    discount: Money | None = None
    line_total: Money
    tax: Money

    @model_validator(mode="after")
    def _one_currency(self) -> OrderLine:
        require_currency(
            "order line", self.unit_price.currency, (self.discount, self.line_total, self.tax)
        )
        return self

    @classmethod
    def priced(
        cls,
        *,
        line_no: int,
        sku: str,
        quantity: int,
        unit_price: Money,
        tax: Money,
        discount: Money | None = None,
        description: str | None = None,
    ) -> OrderLine:
        """A line whose total is ``unit_price * quantity - discount``."""
        total = unit_price * quantity
        if discount is not None:
            total = total - discount
        return cls(
            line_no=line_no,
            sku=sku,
            description=description,
            quantity=quantity,
            unit_price=unit_price,
            discount=discount,
            line_total=total,
            tax=tax,
        )


class Order(CanonicalModel):
    """A customer order as the hub knows it; the ERP holds the financial truth."""

    id: OrderId
    version: Version = 1
    customer_id: CustomerId | None = None
    channel: ShortText
    status: OrderStatus = OrderStatus.PENDING
    currency: CurrencyCode
    lines: list[OrderLine] = Field(min_length=1, max_length=1000)
    subtotal: Money
    shipping_total: Money
    tax_total: Money
    grand_total: Money
    placed_at: Timestamp
    shipping_address: Address | None = None
    billing_address: Address | None = None

    @model_validator(mode="after")
    def _one_currency(self) -> Order:
        amounts: list[Money | None] = [
            self.subtotal,
            self.shipping_total,
            self.tax_total,
            self.grand_total,
        ]
        for line in self.lines:
            amounts.extend((line.unit_price, line.line_total))
        require_currency(f"order {self.id}", self.currency, amounts)
        return self

    @classmethod
    def place(
        cls,
        *,
        id: str,
        channel: str,
        currency: str,
        lines: Sequence[OrderLine],
        placed_at: Timestamp,
        shipping_total: Money | None = None,
        customer_id: str | None = None,
        shipping_address: Address | None = None,
        billing_address: Address | None = None,
    ) -> Order:
        """A new pending order whose totals are computed from its lines."""
        shipping = shipping_total if shipping_total is not None else Money.zero(currency)
        subtotal = Money.total((line.line_total for line in lines), currency)
        tax_total = Money.total((line.tax for line in lines), currency)
        return cls(
            id=id,
            customer_id=customer_id,
            channel=channel,
            currency=currency,
            lines=list(lines),
            subtotal=subtotal,
            shipping_total=shipping,
            tax_total=tax_total,
            grand_total=subtotal + shipping + tax_total,
            placed_at=placed_at,
            shipping_address=shipping_address,
            billing_address=billing_address,
        )

    def line(self, line_no: int) -> OrderLine:
        """The line numbered ``line_no``; :class:`KeyError` when there is none."""
        for line in self.lines:
            if line.line_no == line_no:
                return line
        raise KeyError(f"order {self.id} has no line {line_no}")

    def transition_to(self, new_status: OrderStatus) -> Order:
        """A copy in ``new_status`` (version bumped); IllegalOrderTransition if not allowed."""
        return ORDER_LIFECYCLE.advance(self, new_status)
