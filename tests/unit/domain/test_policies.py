"""Refund and return policies: data in, a decision naming every rule out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from retailsync.domain.money import Money
from retailsync.domain.policies import (
    DEFAULT_REFUND_POLICY,
    Disposition,
    InvalidPolicy,
    LineInspection,
    PolicyDecision,
    RefundFacts,
    RefundPolicy,
    ReturnFacts,
    ReturnPolicy,
    Verdict,
    disposition_for,
    evaluate_refund,
    evaluate_return,
    refundable_amount,
    settle_return_lines,
)
from retailsync.domain.returns import InspectionOutcome

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
POLICY = RefundPolicy.from_mapping(
    {
        "refund_window_days": 30,
        "max_amount": {"EUR": "1000"},
        "approval_threshold": {"EUR": 100},
        "agent_limits": {"*": {"EUR": "200"}, "lead-anna": {"EUR": "50"}},
        "fraud_action": "review",
        "approval_timeout_seconds": 60,
    }
)


def facts(amount: str = "40.00", **overrides: object) -> RefundFacts:
    values: dict[str, object] = {
        "amount": Money.of(amount, "EUR"),
        "refundable": Money.of("500.00", "EUR"),
        "payment_settled": True,
        "ordered_at": NOW - timedelta(days=3),
        "requested_at": NOW,
        "requested_by": "agent-bob",
    }
    values.update(overrides)
    return RefundFacts(**values)  # type: ignore[arg-type]


def test_a_small_refund_within_every_limit_is_approved() -> None:
    decision = evaluate_refund(POLICY, facts())
    assert decision.verdict is Verdict.APPROVE
    assert decision.approved


def test_above_the_approval_threshold_a_person_decides() -> None:
    decision = evaluate_refund(POLICY, facts("150.00"))
    assert decision.verdict is Verdict.NEEDS_APPROVAL
    assert any(r.startswith("approval_threshold") for r in decision.reasons)


def test_the_per_agent_limit_applies_to_the_named_agent() -> None:
    decision = evaluate_refund(POLICY, facts("60.00", requested_by="lead-anna"))
    assert decision.verdict is Verdict.NEEDS_APPROVAL
    assert any(r.startswith("agent_limit") for r in decision.reasons)
    assert evaluate_refund(POLICY, facts("60.00")).verdict is Verdict.APPROVE


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"ordered_at": NOW - timedelta(days=31)}, "refund_window"),
        ({"payment_settled": False}, "payment"),
        ({"refundable": Money.of("10.00", "EUR")}, "payment"),
        ({"order_cancelled": True}, "order"),
    ],
)
def test_rejections_name_the_rule(overrides: dict[str, object], rule: str) -> None:
    decision = evaluate_refund(POLICY, facts(**overrides))
    assert decision.verdict is Verdict.REJECT
    assert any(r.startswith(rule) for r in decision.reasons)


def test_above_the_maximum_is_rejected_even_with_approval() -> None:
    decision = evaluate_refund(POLICY, facts("1200.00", refundable=Money.of("5000", "EUR")))
    assert decision.verdict is Verdict.REJECT
    assert any(r.startswith("max_amount") for r in decision.reasons)


def test_fraud_flag_asks_a_person_or_rejects_as_configured() -> None:
    assert evaluate_refund(POLICY, facts(fraud_flag=True)).verdict is Verdict.NEEDS_APPROVAL
    strict = RefundPolicy.from_mapping({"fraud_action": "reject"})
    assert evaluate_refund(strict, facts(fraud_flag=True)).verdict is Verdict.REJECT


def test_a_currency_without_limits_has_none() -> None:
    usd = facts("900.00", refundable=Money.of("1000", "USD"))
    usd = RefundFacts(**{**usd.__dict__, "amount": Money.of("900.00", "USD")})
    assert evaluate_refund(POLICY, usd).verdict is Verdict.APPROVE


def test_policy_mapping_round_trips_and_refuses_bad_data() -> None:
    assert RefundPolicy.from_mapping(POLICY.to_mapping()) == POLICY
    assert RefundPolicy.from_mapping(DEFAULT_REFUND_POLICY.to_mapping()) == DEFAULT_REFUND_POLICY
    with pytest.raises(InvalidPolicy, match="floats"):
        RefundPolicy.from_mapping({"max_amount": {"EUR": 10.5}})
    with pytest.raises(InvalidPolicy, match="unknown refund policy keys"):
        RefundPolicy.from_mapping({"refund_windw_days": 3})
    with pytest.raises(InvalidPolicy, match="fraud_action"):
        RefundPolicy.from_mapping({"fraud_action": "ignore"})
    assert POLICY.max_amount["EUR"] == Decimal("1000")


def test_decision_round_trips_through_json() -> None:
    decision = evaluate_refund(POLICY, facts("150.00"))
    assert PolicyDecision.from_json(decision.to_json()) == decision


RETURNS = ReturnPolicy.from_mapping({"return_window_days": 14, "non_returnable_skus": ["GIFT"]})


def test_return_eligibility() -> None:
    ok = ReturnFacts(NOW - timedelta(days=5), NOW, [("MUG-1", 1)], {"MUG-1": 2})
    assert evaluate_return(RETURNS, ok).verdict is Verdict.APPROVE
    late = ReturnFacts(NOW - timedelta(days=15), NOW, [("MUG-1", 1)], {"MUG-1": 2})
    assert evaluate_return(RETURNS, late).reasons[0].startswith("return_window")
    too_many = ReturnFacts(NOW, NOW, [("MUG-1", 3), ("GIFT", 1)], {"MUG-1": 2, "GIFT": 1})
    decision = evaluate_return(RETURNS, too_many)
    assert decision.verdict is Verdict.REJECT
    assert len(decision.reasons) == 2


def test_partial_return_refunds_only_accepted_units_with_refundable_outcomes() -> None:
    price = Money.of("12.50", "EUR")
    lines = [
        LineInspection("MUG-1", 2, 2, InspectionOutcome.RESTOCK, price),
        LineInspection("MUG-2", 3, 1, InspectionOutcome.SCRAP, price),
        LineInspection("MUG-3", 1, 0, InspectionOutcome.NOT_RECEIVED, price),
        LineInspection("MUG-4", 1, 1, InspectionOutcome.RETURN_TO_CUSTOMER, price),
    ]
    assert refundable_amount(RETURNS, lines, "EUR") == Money.of("37.50", "EUR")
    assert disposition_for(RETURNS, InspectionOutcome.RESTOCK) is Disposition.RESTOCK
    assert disposition_for(RETURNS, InspectionOutcome.SCRAP) is Disposition.WRITE_OFF
    assert disposition_for(RETURNS, InspectionOutcome.NOT_RECEIVED) is Disposition.NONE


def test_settling_a_partial_return_line_by_line() -> None:
    policy = ReturnPolicy()
    lines = settle_return_lines(
        policy,
        [("MUG", 3), ("TEE", 2), ("CAP", 1), ("SOCK", 1)],
        {"MUG": 2, "TEE": 2, "CAP": 1},
        {
            "MUG": (InspectionOutcome.RESTOCK, 1),
            "TEE": (InspectionOutcome.SCRAP, 0),
            "CAP": (InspectionOutcome.RETURN_TO_CUSTOMER, 0),
        },
    )
    by_sku = {line.sku: line for line in lines}
    # 2 of 3 mugs arrived, 1 sellable: 1 credited and kept, 1 written off, 1 never came.
    assert (by_sku["MUG"].credited, by_sku["MUG"].restocked) == (1, 1)
    assert (by_sku["MUG"].written_off, by_sku["MUG"].not_kept) == (1, 1)
    # Scrapped tees are refunded (default policy) and written off.
    assert (by_sku["TEE"].credited, by_sku["TEE"].written_off) == (2, 2)
    # Sent back to the customer, or never inspected: nothing credited, nothing kept.
    for sku in ("CAP", "SOCK"):
        assert (by_sku[sku].credited, by_sku[sku].not_kept, by_sku[sku].removed) == (0, 1, 1)
    assert by_sku["SOCK"].outcome is InspectionOutcome.NOT_RECEIVED


def test_a_policy_that_does_not_refund_scrap_credits_nothing_for_it() -> None:
    policy = ReturnPolicy.from_mapping({"refund_outcomes": ["restock", "refurbish"]})
    (line,) = settle_return_lines(policy, [("TEE", 2)], None, {"TEE": (InspectionOutcome.SCRAP, 0)})
    assert (line.credited, line.written_off, line.disposition) == (0, 2, Disposition.WRITE_OFF)
