"""Lifecycles: every (state, next state) pair of every stateful entity, legal or not."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pytest

from retailsync.domain import (
    EntityKind,
    FinancialPosting,
    IllegalCaseTransition,
    IllegalOrderTransition,
    IllegalPostingTransition,
    IllegalRefundTransition,
    IllegalReturnTransition,
    IllegalShipmentTransition,
    IllegalTransition,
    Money,
    Order,
    OrderLine,
    OrderStatus,
    PostingKind,
    Refund,
    ReturnAuthorization,
    ReturnLine,
    ReturnReason,
    ServiceCase,
    Shipment,
    ShipmentLine,
    new_id,
)
from retailsync.domain.cases import CASE_LIFECYCLE
from retailsync.domain.finance import POSTING_LIFECYCLE
from retailsync.domain.lifecycle import Lifecycle
from retailsync.domain.orders import ORDER_LIFECYCLE
from retailsync.domain.refunds import REFUND_LIFECYCLE
from retailsync.domain.returns import RETURN_LIFECYCLE
from retailsync.domain.shipments import SHIPMENT_LIFECYCLE

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
EUR = "EUR"


def an_order() -> Order:
    line = OrderLine.priced(
        line_no=1, sku="TSHIRT-M", quantity=2, unit_price=Money.of("19.99", EUR),
        tax=Money.of("7.60", EUR),
    )  # fmt: skip
    return Order.place(
        id=new_id(EntityKind.ORDER), channel="web", currency=EUR, lines=[line], placed_at=NOW
    )


def a_shipment() -> Shipment:
    return Shipment(
        id=new_id(EntityKind.SHIPMENT),
        order_id=new_id(EntityKind.ORDER),
        carrier="DHL",
        lines=[ShipmentLine(sku="TSHIRT-M", quantity=2)],
    )


def a_return() -> ReturnAuthorization:
    return ReturnAuthorization(
        id=new_id(EntityKind.RETURN),
        order_id=new_id(EntityKind.ORDER),
        lines=[ReturnLine(sku="TSHIRT-M", quantity=1, reason=ReturnReason.DAMAGED)],
        requested_at=NOW,
    )


def a_refund() -> Refund:
    return Refund(
        id=new_id(EntityKind.REFUND),
        amount=Money.of("19.99", EUR),
        reason="damaged item",
        requested_at=NOW,
    )


def a_case() -> ServiceCase:
    return ServiceCase(id=new_id(EntityKind.CASE), subject="Parcel arrived torn", opened_at=NOW)


def a_posting() -> FinancialPosting:
    return FinancialPosting(
        id=new_id(EntityKind.POSTING),
        kind=PostingKind.CREDIT_NOTE,
        amount=Money.of("19.99", EUR),
        created_at=NOW,
    )


ENTITIES: list[tuple[str, Callable[[], Any], Lifecycle[Any], type[IllegalTransition]]] = [
    ("order", an_order, ORDER_LIFECYCLE, IllegalOrderTransition),
    ("shipment", a_shipment, SHIPMENT_LIFECYCLE, IllegalShipmentTransition),
    ("return", a_return, RETURN_LIFECYCLE, IllegalReturnTransition),
    ("refund", a_refund, REFUND_LIFECYCLE, IllegalRefundTransition),
    ("case", a_case, CASE_LIFECYCLE, IllegalCaseTransition),
    ("posting", a_posting, POSTING_LIFECYCLE, IllegalPostingTransition),
]

CASES = [
    pytest.param(factory, lifecycle, error, current, new, id=f"{name}:{current}->{new}")
    for name, factory, lifecycle, error in ENTITIES
    for current, new in lifecycle.pairs()
]


@pytest.mark.parametrize(("factory", "lifecycle", "error", "current", "new"), CASES)
def test_every_transition_follows_the_table(
    factory: Callable[[], Any],
    lifecycle: Lifecycle[Any],
    error: type[IllegalTransition],
    current: StrEnum,
    new: StrEnum,
) -> None:
    entity = factory().model_copy(update={lifecycle.field: current})
    if lifecycle.can(current, new):
        moved = entity.transition_to(new)
        assert getattr(moved, lifecycle.field) == new
        assert moved.version == entity.version + 1
        assert getattr(entity, lifecycle.field) == current  # the original is unchanged
        assert moved.id == entity.id
    else:
        with pytest.raises(error) as caught:
            entity.transition_to(new)
        message = str(caught.value)
        assert f"'{current.value}'" in message and f"'{new.value}'" in message
        assert entity.id in message
        assert (caught.value.current, caught.value.requested) == (current.value, new.value)
        assert isinstance(caught.value, IllegalTransition)


@pytest.mark.parametrize(("name", "factory", "lifecycle", "error"), ENTITIES)
def test_every_state_is_reachable_and_some_are_final(
    name: str,
    factory: Callable[[], Any],
    lifecycle: Lifecycle[Any],
    error: type[IllegalTransition],
) -> None:
    entity = factory()
    start = getattr(entity, lifecycle.field)
    reached = {start}
    frontier = [start]
    while frontier:
        for nxt in lifecycle.allowed(frontier.pop()):
            if nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    assert reached == set(lifecycle.states), (
        f"{name}: unreachable {set(lifecycle.states) - reached}"
    )
    assert lifecycle.final_states(), f"{name} lifecycle has no final state"
    assert all(lifecycle.is_final(state) for state in lifecycle.final_states())
    assert error.entity in str(error("x", "a", "b", frozenset()))


def test_a_table_missing_a_state_is_refused() -> None:
    class Light(StrEnum):
        RED = "red"
        GREEN = "green"

    with pytest.raises(ValueError, match="no row"):
        Lifecycle(Light, {Light.RED: {Light.GREEN}}, IllegalOrderTransition)


def test_a_happy_order_walks_to_completed() -> None:
    order = an_order()
    for status in ("confirmed", "processing", "shipped", "delivered", "completed"):
        order = order.transition_to(status)  # type: ignore[arg-type]
    assert order.status is OrderStatus.COMPLETED
    assert order.version == 6
    with pytest.raises(IllegalOrderTransition, match="none \\(it is final\\)"):
        order.transition_to("cancelled")  # type: ignore[arg-type]
