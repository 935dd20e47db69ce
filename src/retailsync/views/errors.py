"""Errors of the read models; the API turns them into problem+json answers."""

from __future__ import annotations


class ViewError(Exception):
    """Base class of the read-model errors."""


class OrderNotInReadModel(ViewError, LookupError):
    """Neither an event nor the ERP has told the hub about this order."""

    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"the hub knows no order {order_id!r}: no event about it has arrived and the ERP "
            "does not have it; check the id (canonical ids look like ord_01J…)"
        )
        self.order_id = order_id


class OrderDetailsUnknown(ViewError, LookupError):
    """The order is known only from later events; its lines have not arrived yet."""

    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"the lines of order {order_id} are not known yet (its order.created event has not "
            "arrived); try again shortly, or replay the order's events"
        )
        self.order_id = order_id


class UnknownOrderLine(ViewError, LookupError):
    """The order has no line with this number."""

    def __init__(self, order_id: str, line_no: int, known: list[int]) -> None:
        super().__init__(
            f"order {order_id} has no line {line_no}; its lines are "
            f"{', '.join(map(str, known)) or 'none'}"
        )
        self.order_id = order_id
        self.line_no = line_no
