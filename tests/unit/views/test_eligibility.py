"""Return eligibility of a line: the domain's return policy applied to the 360's facts."""

from __future__ import annotations

import datetime as dt

import pytest

from retailsync.domain.money import Money
from retailsync.domain.policies import ReturnPolicy
from retailsync.views import OrderDetailsUnknown, UnknownOrderLine, return_eligibility
from retailsync.views.models import Order360View, OrderHeader, OrderLineView

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _view(placed_days_ago: int = 5, returned: int = 0) -> Order360View:
    price = Money.of("19.90", "EUR")
    return Order360View(
        order_id="ord_X",
        stale=False,
        as_of=NOW,
        age_seconds=0,
        order=OrderHeader(id="ord_X", placed_at=NOW - dt.timedelta(days=placed_days_ago)),
        lines=[
            OrderLineView(
                line_no=1,
                sku="RS-TSHIRT-M",
                quantity=3,
                unit_price=price,
                line_total=price * 3,
                shipped_quantity=3,
                returned_quantity=returned,
            )
        ],
        payment=None,
        shipments=[],
        returns=[],
        refunds=[],
        postings=[],
        open_exceptions=[],
        cases=[],
        erp=None,
    )


def test_what_is_not_yet_returned_may_go_back() -> None:
    answer = return_eligibility(_view(returned=1), 1, now=NOW)
    assert answer.eligible and answer.quantity == 2 and answer.returnable_quantity == 2


def test_more_than_is_left_is_refused_with_the_reason() -> None:
    answer = return_eligibility(_view(returned=2), 1, quantity=2, now=NOW)
    assert not answer.eligible
    assert answer.reasons == ["quantity: 2 x RS-TSHIRT-M is more than the 1 returnable"]


def test_the_window_and_non_returnable_skus_come_from_the_policy() -> None:
    policy = ReturnPolicy(return_window_days=3, non_returnable_skus=frozenset({"RS-TSHIRT-M"}))
    answer = return_eligibility(_view(placed_days_ago=5), 1, policy=policy, now=NOW)
    assert answer.verdict == "reject"
    assert [r.split(":")[0] for r in answer.reasons] == ["return_window", "non_returnable"]
    assert answer.window_ends_at == NOW - dt.timedelta(days=2)


def test_unknown_lines_and_orders_without_details_are_named() -> None:
    with pytest.raises(UnknownOrderLine, match="no line 4; its lines are 1"):
        return_eligibility(_view(), 4, now=NOW)
    bare = _view().model_copy(update={"lines": []})
    with pytest.raises(OrderDetailsUnknown):
        return_eligibility(bare, 1, now=NOW)
