"""Return eligibility of one order line, from the read model and the retailer's return policy.

The facts come from the order 360 read model (when the order was placed, what is on the line,
what is already on its way back); the decision is :func:`retailsync.domain.policies.
evaluate_return`, so the answer an agent sees is the rule the returns workflow applies.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from retailsync.domain.policies import (
    DEFAULT_RETURN_POLICY,
    ReturnFacts,
    ReturnPolicy,
    Verdict,
    evaluate_return,
)
from retailsync.views.errors import OrderDetailsUnknown, UnknownOrderLine
from retailsync.views.models import Order360View, ReturnEligibility

__all__ = ["return_eligibility"]


def return_eligibility(
    view: Order360View,
    line_no: int,
    *,
    quantity: int | None = None,
    policy: ReturnPolicy = DEFAULT_RETURN_POLICY,
    now: datetime | None = None,
) -> ReturnEligibility:
    """May ``quantity`` units (default: all not yet returned) of line ``line_no`` go back now?"""
    if view.order.placed_at is None or not view.lines:
        raise OrderDetailsUnknown(view.order_id)
    line = next((item for item in view.lines if item.line_no == line_no), None)
    if line is None:
        raise UnknownOrderLine(view.order_id, line_no, [item.line_no for item in view.lines])
    now = now or datetime.now(UTC)
    returnable = max(0, line.quantity - line.returned_quantity)
    wanted = quantity if quantity is not None else max(returnable, 1)
    decision = evaluate_return(
        policy,
        ReturnFacts(
            ordered_at=view.order.placed_at,
            requested_at=now,
            lines=[(line.sku, wanted)],
            ordered_quantities={line.sku: returnable},
        ),
    )
    return ReturnEligibility(
        order_id=view.order_id,
        line_no=line.line_no,
        sku=line.sku,
        eligible=decision.verdict is Verdict.APPROVE,
        verdict=decision.verdict.value,
        reasons=list(decision.reasons),
        quantity=wanted,
        ordered_quantity=line.quantity,
        returned_quantity=line.returned_quantity,
        returnable_quantity=returnable,
        window_ends_at=view.order.placed_at + timedelta(days=policy.return_window_days),
        as_of=view.as_of,
    )
