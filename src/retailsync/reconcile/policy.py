"""Owner rules: for each kind of drift, whether the hub corrects it or a person decides.

The defaults follow the hub's invariants: the ERP owns stock and money, so stock corrections
are booked in the ERP (a cycle-count adjustment, only up to a small number of units) and any
drift in money goes to finance; the storefront owns the levels it publishes, so the hub
re-publishes the right quantity there; an order the ERP never received is sent again. Every
rule can be overridden in configuration (``[reconcile.rules."<kind>"]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from retailsync.domain.orders import OrderStatus
from retailsync.reconcile.availability import AtsFormula

__all__ = [
    "JOB_NAMES",
    "Action",
    "Decision",
    "DriftKind",
    "DriftRule",
    "LiveSourceSettings",
    "ReconcilePolicy",
    "ReconcileSchedule",
    "default_rules",
]

JOB_NAMES = ("inventory", "orders", "refunds")


class DriftKind(StrEnum):
    """Every kind of drift a reconciliation can find; the prefix is the job."""

    STOCK_MISSING_IN_ERP = "stock.missing_in_erp"
    STOCK_MISSING_IN_WMS = "stock.missing_in_wms"
    STOCK_ON_HAND_MISMATCH = "stock.on_hand_mismatch"
    STOCK_LEVEL_MISMATCH = "stock.storefront_level_mismatch"
    STOCK_NOT_PUBLISHED = "stock.not_published"
    STOCK_UNKNOWN_IN_STOREFRONT = "stock.unknown_in_storefront"
    STOCK_DUPLICATE = "stock.duplicate"
    ORDER_MISSING_IN_ERP = "order.missing_in_erp"
    ORDER_MISSING_IN_STOREFRONT = "order.missing_in_storefront"
    ORDER_STATUS_MISMATCH = "order.status_mismatch"
    ORDER_AMOUNT_MISMATCH = "order.amount_mismatch"
    ORDER_DUPLICATE = "order.duplicate"
    REFUND_CREDIT_NOTE_MISSING = "refund.credit_note_missing"
    REFUND_PAYMENT_MISSING = "refund.payment_missing"
    REFUND_DECISION_MISSING = "refund.decision_missing"
    REFUND_DUPLICATED = "refund.duplicated"
    REFUND_AMOUNT_MISMATCH = "refund.amount_mismatch"

    @property
    def job(self) -> str:
        """``inventory``, ``orders`` or ``refunds``."""
        return {"stock": "inventory", "order": "orders", "refund": "refunds"}[
            self.value.partition(".")[0]
        ]


class Action(StrEnum):
    """What happens to a drift."""

    CORRECT = "correct"  # emit a correction event to the target system
    EXCEPTION = "exception"  # open an exception for a person
    REPORT = "report"  # only list it in the report


class DriftRule(BaseModel):
    """The rule for one drift kind: who owns the truth, what to do, who is told."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Action
    owner: str = Field(description="The system whose value is the truth for this kind.")
    assignee: str = Field(
        default="integration", description="Role an exception is routed to (operations, ...)."
    )
    max_auto_units: int | None = Field(
        default=None,
        ge=0,
        description="Stock only: correct automatically up to this many units, else exception.",
    )


def default_rules() -> dict[DriftKind, DriftRule]:
    """The rules the hub ships with (see the module docstring)."""
    k, a = DriftKind, Action
    ops, fin = "operations", "finance"
    return {
        k.STOCK_MISSING_IN_ERP: DriftRule(action=a.EXCEPTION, owner="erp", assignee=ops),
        k.STOCK_MISSING_IN_WMS: DriftRule(action=a.EXCEPTION, owner="erp", assignee=ops),
        k.STOCK_ON_HAND_MISMATCH: DriftRule(
            action=a.CORRECT, owner="erp", assignee=ops, max_auto_units=5
        ),
        k.STOCK_LEVEL_MISMATCH: DriftRule(action=a.CORRECT, owner="storefront", assignee=ops),
        k.STOCK_NOT_PUBLISHED: DriftRule(action=a.REPORT, owner="storefront", assignee=ops),
        k.STOCK_UNKNOWN_IN_STOREFRONT: DriftRule(
            action=a.EXCEPTION, owner="erp", assignee="integration"
        ),
        k.STOCK_DUPLICATE: DriftRule(action=a.EXCEPTION, owner="erp", assignee="integration"),
        k.ORDER_MISSING_IN_ERP: DriftRule(action=a.CORRECT, owner="storefront", assignee=ops),
        k.ORDER_MISSING_IN_STOREFRONT: DriftRule(action=a.EXCEPTION, owner="erp", assignee=ops),
        k.ORDER_STATUS_MISMATCH: DriftRule(action=a.CORRECT, owner="erp", assignee=ops),
        k.ORDER_AMOUNT_MISMATCH: DriftRule(action=a.EXCEPTION, owner="erp", assignee=fin),
        k.ORDER_DUPLICATE: DriftRule(action=a.EXCEPTION, owner="erp", assignee="integration"),
        k.REFUND_CREDIT_NOTE_MISSING: DriftRule(action=a.EXCEPTION, owner="erp", assignee=fin),
        k.REFUND_PAYMENT_MISSING: DriftRule(action=a.EXCEPTION, owner="erp", assignee=fin),
        k.REFUND_DECISION_MISSING: DriftRule(action=a.EXCEPTION, owner="erp", assignee=fin),
        k.REFUND_DUPLICATED: DriftRule(action=a.EXCEPTION, owner="erp", assignee=fin),
        k.REFUND_AMOUNT_MISMATCH: DriftRule(action=a.EXCEPTION, owner="erp", assignee=fin),
    }


_STAGES: dict[OrderStatus, str] = {
    OrderStatus.PENDING: "open",
    OrderStatus.ON_HOLD: "open",
    OrderStatus.CONFIRMED: "open",
    OrderStatus.PROCESSING: "open",
    OrderStatus.PARTIALLY_SHIPPED: "shipped",
    OrderStatus.SHIPPED: "shipped",
    OrderStatus.DELIVERED: "shipped",
    OrderStatus.COMPLETED: "shipped",
    OrderStatus.CANCELLED: "cancelled",
}


class ReconcileSchedule(BaseModel):
    """When the hub runs reconciliations by itself: an interval per job (none = on demand)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    intervals: dict[str, float] = Field(
        default_factory=dict,
        description='job -> seconds between scheduled runs, e.g. {"inventory": 3600}.',
    )
    dry_run: bool = Field(default=False, description="Scheduled runs only report.")
    first_delay_seconds: float = Field(
        default=0.0, ge=0, description="Wait this long after start before the first runs."
    )

    @field_validator("intervals")
    @classmethod
    def _known_jobs(cls, value: dict[str, float]) -> dict[str, float]:
        for job, seconds in value.items():
            if job not in JOB_NAMES:
                raise ValueError(
                    f"reconcile.schedule.intervals names job {job!r}; use one of "
                    f"{', '.join(JOB_NAMES)}"
                )
            if seconds <= 0:
                raise ValueError(
                    f"reconcile.schedule.intervals[{job!r}] = {seconds}: give a positive number "
                    f"of seconds, or leave the job out to run it only on demand"
                )
        return value


class LiveSourceSettings(BaseModel):
    """How the live systems' records line up: locations, storefront items, credit notes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    erp_locations: tuple[str, ...] = Field(
        default=("STO",), min_length=1, description="ERP stock location codes to compare."
    )
    wms_locations: dict[str, str] = Field(
        default_factory=dict,
        description="Warehouse location -> ERP location code (same code when not listed).",
    )
    storefront_locations: dict[str, str] = Field(
        default_factory=dict,
        description="ERP location code -> storefront location id (Shopify location_id).",
    )
    storefront_items: dict[str, str] = Field(
        default_factory=dict,
        description="SKU -> storefront inventory item id (Shopify inventory_item_id).",
    )
    credit_note_references: str = Field(
        default="rma\\_%",
        description="SQL LIKE pattern of the return sales whose credit notes are compared.",
    )
    orders_window_days: int = Field(
        default=30, ge=1, description="Storefront orders updated within this many days."
    )
    page_size: int = Field(default=500, ge=1, le=5000)


class ReconcilePolicy(BaseModel):
    """Everything a reconciliation decides by: rules per drift kind, tolerances, formula."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: dict[DriftKind, DriftRule] = Field(default_factory=default_rules)
    amount_tolerance: Decimal = Field(
        default=Decimal("0"), ge=0, description="Money differences up to this are not drift."
    )
    refund_grace: timedelta = Field(
        default=timedelta(hours=1),
        description="A refund decided more recently than this is not yet expected elsewhere.",
    )
    status_stages: dict[OrderStatus, str] = Field(
        default_factory=lambda: dict(_STAGES),
        description="Statuses in the same stage do not count as a status mismatch.",
    )
    formula: AtsFormula = AtsFormula()
    schedule: ReconcileSchedule = ReconcileSchedule()
    sources: LiveSourceSettings = LiveSourceSettings()

    def rule(self, kind: DriftKind) -> DriftRule:
        """The rule for ``kind`` (a configured one, else the shipped default)."""
        return self.rules.get(kind) or default_rules()[kind]

    def decide(self, kind: DriftKind, magnitude: int | None = None) -> Decision:
        """Correction, exception or report for a drift of ``kind`` and size ``magnitude``."""
        rule = self.rule(kind)
        if (
            rule.action is Action.CORRECT
            and rule.max_auto_units is not None
            and magnitude is not None
            and magnitude > rule.max_auto_units
        ):
            return Decision(
                Action.EXCEPTION,
                rule.owner,
                rule.assignee,
                f"{magnitude} units is more than the {rule.max_auto_units} the hub corrects "
                f"on its own",
            )
        return Decision(rule.action, rule.owner, rule.assignee, None)


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy decided for one drift, and why when it overrode the rule's action."""

    action: Action
    owner: str
    assignee: str
    reason: str | None
