"""Refund, return and replacement policies as data, evaluated by pure functions.

A retailer changes its rules (refund window, amount limits, who may refund how much, what
needs a person's approval) in configuration, not in code: :class:`RefundPolicy` and
:class:`ReturnPolicy` are plain frozen data built from a mapping (TOML, JSON, settings), and
:func:`evaluate_refund` / :func:`evaluate_return` turn the facts of one request into a
:class:`PolicyDecision` that names every rule that fired. No I/O, no clock: the caller passes
``now``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from retailsync.domain.money import Money
from retailsync.domain.returns import InspectionOutcome

__all__ = [
    "DEFAULT_REFUND_POLICY",
    "DEFAULT_RETURN_POLICY",
    "Disposition",
    "InvalidPolicy",
    "LineInspection",
    "LineSettlement",
    "PolicyDecision",
    "RefundFacts",
    "RefundPolicy",
    "ReturnFacts",
    "ReturnPolicy",
    "Verdict",
    "disposition_for",
    "evaluate_refund",
    "evaluate_return",
    "refundable_amount",
    "settle_return_lines",
]


class InvalidPolicy(ValueError):
    """A policy mapping cannot be read; the message names the key and what it expects."""


class Verdict(StrEnum):
    """What a policy decided for one request."""

    APPROVE = "approve"
    NEEDS_APPROVAL = "needs_approval"
    REJECT = "reject"


class FraudAction(StrEnum):
    """What a fraud flag on the order or customer does to a refund request."""

    REJECT = "reject"
    REVIEW = "review"


class Disposition(StrEnum):
    """What happens to returned units in the ERP after inspection."""

    RESTOCK = "restock"
    WRITE_OFF = "write_off"
    NONE = "none"


@dataclass(frozen=True)
class PolicyDecision:
    """The verdict and the rules that led to it (``rule: explanation`` lines)."""

    verdict: Verdict
    reasons: tuple[str, ...] = ()

    @property
    def approved(self) -> bool:
        return self.verdict is Verdict.APPROVE

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict.value, "reasons": list(self.reasons)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PolicyDecision:
        return cls(verdict=Verdict(data["verdict"]), reasons=tuple(data.get("reasons", ())))


def _decimal(value: object, key: str) -> Decimal:
    if isinstance(value, float):
        raise InvalidPolicy(f"{key}: write amounts as strings or integers, not floats ({value})")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise InvalidPolicy(f"{key}: {value!r} is not an amount") from None
    if result < 0:
        raise InvalidPolicy(f"{key}: amounts must not be negative, got {value}")
    return result


def _amounts(raw: object, key: str) -> dict[str, Decimal]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidPolicy(f"{key}: expected a table of currency -> amount, got {raw!r}")
    return {str(cur).upper(): _decimal(amount, f"{key}.{cur}") for cur, amount in raw.items()}


def _limit(limits: Mapping[str, Decimal], currency: str) -> Decimal | None:
    return limits.get(currency.upper())


def _int(value: object, key: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidPolicy(f"{key}: expected a whole number >= {minimum}, got {value!r}")
    return value


def _number(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise InvalidPolicy(f"{key}: expected a positive number of seconds, got {value!r}")
    return float(value)


# --- refunds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundPolicy:
    """Rules for a refund that a service agent starts (no goods come back).

    Amount limits are per currency; a currency without an entry has no such limit.
    ``agent_limits`` caps what one agent may refund in one request without a second person
    (``"*"`` is the default for agents not named).
    """

    refund_window_days: int = 30
    max_amount: Mapping[str, Decimal] = field(default_factory=dict)
    approval_threshold: Mapping[str, Decimal] = field(default_factory=dict)
    agent_limits: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)
    fraud_action: FraudAction = FraudAction.REVIEW
    approval_timeout_seconds: float = 4 * 3600.0
    escalation_timeout_seconds: float = 24 * 3600.0

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> RefundPolicy:
        """Read a policy from configuration data; unknown keys are refused."""
        known = {
            "refund_window_days",
            "max_amount",
            "approval_threshold",
            "agent_limits",
            "fraud_action",
            "approval_timeout_seconds",
            "escalation_timeout_seconds",
        }
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InvalidPolicy(f"unknown refund policy keys {unknown}; known: {sorted(known)}")
        agents = raw.get("agent_limits") or {}
        if not isinstance(agents, Mapping):
            raise InvalidPolicy("agent_limits: expected a table of agent -> {currency: amount}")
        try:
            fraud = FraudAction(raw.get("fraud_action", FraudAction.REVIEW.value))
        except ValueError:
            raise InvalidPolicy(
                f"fraud_action: expected one of {[a.value for a in FraudAction]}, "
                f"got {raw.get('fraud_action')!r}"
            ) from None
        return cls(
            refund_window_days=_int(raw.get("refund_window_days", 30), "refund_window_days"),
            max_amount=_amounts(raw.get("max_amount"), "max_amount"),
            approval_threshold=_amounts(raw.get("approval_threshold"), "approval_threshold"),
            agent_limits={
                str(agent): _amounts(limits, f"agent_limits.{agent}")
                for agent, limits in agents.items()
            },
            fraud_action=fraud,
            approval_timeout_seconds=_number(
                raw.get("approval_timeout_seconds", 4 * 3600.0), "approval_timeout_seconds"
            ),
            escalation_timeout_seconds=_number(
                raw.get("escalation_timeout_seconds", 24 * 3600.0), "escalation_timeout_seconds"
            ),
        )

    def to_mapping(self) -> dict[str, Any]:
        """The policy as plain data (amounts as strings), the inverse of :meth:`from_mapping`."""
        return {
            "refund_window_days": self.refund_window_days,
            "max_amount": {c: str(a) for c, a in self.max_amount.items()},
            "approval_threshold": {c: str(a) for c, a in self.approval_threshold.items()},
            "agent_limits": {
                agent: {c: str(a) for c, a in limits.items()}
                for agent, limits in self.agent_limits.items()
            },
            "fraud_action": self.fraud_action.value,
            "approval_timeout_seconds": self.approval_timeout_seconds,
            "escalation_timeout_seconds": self.escalation_timeout_seconds,
        }

    def agent_limit(self, agent: str | None, currency: str) -> Decimal | None:
        limits = self.agent_limits.get(agent or "", self.agent_limits.get("*", {}))
        return _limit(limits, currency)


@dataclass(frozen=True)
class RefundFacts:
    """What is known about one refund request when the policy is evaluated."""

    amount: Money
    refundable: Money
    """What the payment service can still refund (captured minus refunded)."""
    payment_settled: bool
    ordered_at: datetime
    requested_at: datetime
    requested_by: str | None = None
    fraud_flag: bool = False
    order_cancelled: bool = False


def evaluate_refund(policy: RefundPolicy, facts: RefundFacts) -> PolicyDecision:
    """Approve, ask a person, or reject a refund request; every rule that fired is named."""
    rejections: list[str] = []
    reviews: list[str] = []
    currency = facts.amount.currency
    if facts.amount.is_zero() or facts.amount.is_negative():
        rejections.append(f"amount: a refund must be positive, got {facts.amount}")
    if facts.order_cancelled:
        rejections.append("order: the order is cancelled; cancel it through the cancellation")
    if not facts.payment_settled:
        rejections.append("payment: the payment is not settled, so there is nothing to refund")
    elif facts.refundable.currency != currency:
        rejections.append(
            f"payment: the payment is in {facts.refundable.currency}, the refund in {currency}"
        )
    elif facts.amount > facts.refundable:
        rejections.append(
            f"payment: {facts.amount} is more than the {facts.refundable} still refundable"
        )
    deadline = facts.ordered_at + timedelta(days=policy.refund_window_days)
    if facts.requested_at > deadline:
        rejections.append(
            f"refund_window: the {policy.refund_window_days}-day window ended "
            f"{deadline.date().isoformat()}"
        )
    maximum = _limit(policy.max_amount, currency)
    if maximum is not None and facts.amount.amount > maximum:
        rejections.append(f"max_amount: {facts.amount} is above the maximum {maximum} {currency}")
    if facts.fraud_flag:
        message = "fraud_flag: the order or customer is flagged for fraud"
        (rejections if policy.fraud_action is FraudAction.REJECT else reviews).append(message)
    threshold = _limit(policy.approval_threshold, currency)
    if threshold is not None and facts.amount.amount > threshold:
        reviews.append(
            f"approval_threshold: {facts.amount} is above {threshold} {currency}, "
            "so a person approves it"
        )
    agent_cap = policy.agent_limit(facts.requested_by, currency)
    if agent_cap is not None and facts.amount.amount > agent_cap:
        reviews.append(
            f"agent_limit: {facts.requested_by or 'the agent'} may refund up to "
            f"{agent_cap} {currency} alone"
        )
    if rejections:
        return PolicyDecision(Verdict.REJECT, tuple(rejections + reviews))
    if reviews:
        return PolicyDecision(Verdict.NEEDS_APPROVAL, tuple(reviews))
    return PolicyDecision(Verdict.APPROVE, ("policy: within every limit",))


DEFAULT_REFUND_POLICY = RefundPolicy(
    refund_window_days=30,
    max_amount={"EUR": Decimal(2000), "USD": Decimal(2000), "GBP": Decimal(2000)},
    approval_threshold={"EUR": Decimal(100), "USD": Decimal(100), "GBP": Decimal(100)},
    agent_limits={"*": {"EUR": Decimal(250), "USD": Decimal(250), "GBP": Decimal(250)}},
)


# --- returns ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReturnPolicy:
    """Rules for a customer return: window, what may come back, and what inspection means."""

    return_window_days: int = 30
    non_returnable_skus: frozenset[str] = frozenset()
    restock_outcomes: frozenset[InspectionOutcome] = frozenset(
        {InspectionOutcome.RESTOCK, InspectionOutcome.REFURBISH}
    )
    refund_outcomes: frozenset[InspectionOutcome] = frozenset(
        {InspectionOutcome.RESTOCK, InspectionOutcome.REFURBISH, InspectionOutcome.SCRAP}
    )
    receipt_timeout_seconds: float = 30 * 24 * 3600.0

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> ReturnPolicy:
        """Read a policy from configuration data; unknown keys are refused."""
        known = {
            "return_window_days",
            "non_returnable_skus",
            "restock_outcomes",
            "refund_outcomes",
            "receipt_timeout_seconds",
        }
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InvalidPolicy(f"unknown return policy keys {unknown}; known: {sorted(known)}")

        def outcomes(key: str, default: frozenset[InspectionOutcome]) -> frozenset[Any]:
            if key not in raw:
                return default
            try:
                return frozenset(InspectionOutcome(v) for v in raw[key])
            except ValueError as exc:
                raise InvalidPolicy(
                    f"{key}: {exc}; known outcomes: {[o.value for o in InspectionOutcome]}"
                ) from None

        base = cls()
        return cls(
            return_window_days=_int(raw.get("return_window_days", 30), "return_window_days"),
            non_returnable_skus=frozenset(str(s) for s in raw.get("non_returnable_skus", ())),
            restock_outcomes=outcomes("restock_outcomes", base.restock_outcomes),
            refund_outcomes=outcomes("refund_outcomes", base.refund_outcomes),
            receipt_timeout_seconds=_number(
                raw.get("receipt_timeout_seconds", base.receipt_timeout_seconds),
                "receipt_timeout_seconds",
            ),
        )


@dataclass(frozen=True)
class ReturnFacts:
    """What is known about a return request: the order date and the lines asked for."""

    ordered_at: datetime
    requested_at: datetime
    lines: Sequence[tuple[str, int]]
    """(sku, quantity) per returned line."""
    ordered_quantities: Mapping[str, int]
    """Units of each SKU on the order, less what was already returned."""


def evaluate_return(policy: ReturnPolicy, facts: ReturnFacts) -> PolicyDecision:
    """Is this return eligible? Rejects with every reason, or approves."""
    reasons: list[str] = []
    deadline = facts.ordered_at + timedelta(days=policy.return_window_days)
    if facts.requested_at > deadline:
        reasons.append(
            f"return_window: the {policy.return_window_days}-day window ended "
            f"{deadline.date().isoformat()}"
        )
    if not facts.lines:
        reasons.append("lines: a return needs at least one line")
    for sku, quantity in facts.lines:
        if sku in policy.non_returnable_skus:
            reasons.append(f"non_returnable: {sku} cannot be returned")
        ordered = facts.ordered_quantities.get(sku, 0)
        if quantity <= 0:
            reasons.append(f"quantity: {sku} needs a positive quantity, got {quantity}")
        elif quantity > ordered:
            reasons.append(f"quantity: {quantity} x {sku} is more than the {ordered} returnable")
    if reasons:
        return PolicyDecision(Verdict.REJECT, tuple(reasons))
    return PolicyDecision(Verdict.APPROVE, ("policy: eligible for return",))


@dataclass(frozen=True)
class LineInspection:
    """The warehouse's verdict on one returned line, with the unit price paid."""

    sku: str
    returned_quantity: int
    accepted_quantity: int
    outcome: InspectionOutcome
    unit_price: Money


def disposition_for(policy: ReturnPolicy, outcome: InspectionOutcome) -> Disposition:
    """Restock, write off, or nothing (units not received or sent back to the customer)."""
    if outcome in policy.restock_outcomes:
        return Disposition.RESTOCK
    if outcome in {InspectionOutcome.NOT_RECEIVED, InspectionOutcome.RETURN_TO_CUSTOMER}:
        return Disposition.NONE
    return Disposition.WRITE_OFF


def refundable_amount(
    policy: ReturnPolicy, inspections: Sequence[LineInspection], currency: str
) -> Money:
    """What the customer gets back: accepted units of lines whose outcome earns a refund."""
    total = Money.zero(currency)
    for line in inspections:
        if line.outcome in policy.refund_outcomes:
            accepted = min(line.accepted_quantity, line.returned_quantity)
            total = total + line.unit_price * accepted
    return total


@dataclass(frozen=True)
class LineSettlement:
    """What one returned line comes to after inspection, in units (the ERP prices them).

    The ERP's receipt of the return books every authorized unit back into stock; units that
    are not to stay there (written off, never received, sent back to the customer) leave again
    as a named stock adjustment. ``credited`` units are the ones the customer is paid for.
    """

    sku: str
    authorized: int
    received: int
    outcome: InspectionOutcome
    disposition: Disposition
    credited: int
    restocked: int
    written_off: int
    not_kept: int
    """Units booked in by the receipt that are not in the warehouse (not received, returned
    to the customer, or refused at inspection): corrected out of stock."""

    @property
    def removed(self) -> int:
        return self.written_off + self.not_kept

    def to_json(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "authorized": self.authorized,
            "received": self.received,
            "outcome": self.outcome.value,
            "disposition": self.disposition.value,
            "credited": self.credited,
            "restocked": self.restocked,
            "written_off": self.written_off,
            "not_kept": self.not_kept,
        }


def settle_return_lines(
    policy: ReturnPolicy,
    authorized: Sequence[tuple[str, int]],
    received: Mapping[str, int] | None,
    inspected: Mapping[str, tuple[InspectionOutcome, int]],
) -> list[LineSettlement]:
    """Per line: how many units are credited, restocked, written off or not kept.

    ``authorized`` is (sku, units) per RMA line; ``received`` the units the warehouse counted
    per SKU (None when it only reported the inspection); ``inspected`` the outcome and the units
    accepted back into stock per SKU (a WMS accepts 0 units of a scrapped line). A line without
    an inspection result counts as not received. No line credits or keeps more than was
    authorized. Restock outcomes credit the accepted units (the rest of what came back is
    written off); write-off outcomes credit every unit that came back, when the policy refunds
    that outcome.
    """
    settlements: list[LineSettlement] = []
    for sku, units in authorized:
        outcome, accepted = inspected.get(sku, (InspectionOutcome.NOT_RECEIVED, 0))
        disposition = disposition_for(policy, outcome)
        if disposition is Disposition.NONE:
            counted = 0 if received is None else min(units, max(received.get(sku, 0), 0))
        else:
            counted = units if received is None else min(units, max(received.get(sku, 0), 0))
        accepted = min(max(accepted, 0), counted)
        restocked = accepted if disposition is Disposition.RESTOCK else 0
        written_off = counted - restocked if disposition is not Disposition.NONE else 0
        if outcome not in policy.refund_outcomes:
            credited = 0
        elif disposition is Disposition.RESTOCK:
            credited = restocked
        else:
            credited = counted
        settlements.append(
            LineSettlement(
                sku=sku,
                authorized=units,
                received=counted,
                outcome=outcome,
                disposition=disposition,
                credited=credited,
                restocked=restocked,
                written_off=written_off,
                not_kept=units - restocked - written_off,
            )
        )
    return settlements


DEFAULT_RETURN_POLICY = ReturnPolicy()
