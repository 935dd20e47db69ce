"""Drift classification: pure functions from one merged key to the drifts found there.

One classifier per job. Each gets a :class:`~retailsync.reconcile.merge.KeyGroup` (every
source's records for one key) and the :class:`~retailsync.reconcile.policy.ReconcilePolicy`,
and returns the drifts with the decision already taken (correct / exception / report) and,
for corrections, what the target system should be told. No I/O, no clock (``now`` is given).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

from retailsync.domain.money import Money
from retailsync.domain.orders import ORDER_TRANSITIONS, Order, OrderStatus
from retailsync.reconcile.merge import KeyGroup
from retailsync.reconcile.policy import Action, DriftKind, ReconcilePolicy
from retailsync.reconcile.records import OrderFigure, PublishedLevel, RefundFigure, StockFigure

__all__ = [
    "ERP",
    "PAYMENTS",
    "SERVICE_DESK",
    "STOREFRONT",
    "STOREFRONT_SETTABLE_STATUSES",
    "WMS",
    "Classifier",
    "Correction",
    "Drift",
    "LevelCorrection",
    "OrderResend",
    "OrderStatusCorrection",
    "StockAdjustmentCorrection",
    "classify_orders",
    "classify_refunds",
    "classify_stock",
    "leads_to",
    "stock_agreement",
    "storefront_status_blocker",
]

ERP = "erp"
WMS = "wms"
STOREFRONT = "storefront"
SERVICE_DESK = "service_desk"
PAYMENTS = "payments"


# ---- what a correction should do ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StockAdjustmentCorrection:
    """Book ``delta`` units in the ERP so its on-hand becomes ``target_on_hand``."""

    sku: str
    location: str
    delta: int
    target_on_hand: int


@dataclass(frozen=True, slots=True)
class LevelCorrection:
    """Publish ``available`` units for the SKU at the location on the storefront."""

    sku: str
    location: str
    available: int
    item_ref: str | None
    location_ref: str | None


@dataclass(frozen=True, slots=True)
class OrderResend:
    """Send the storefront's order to the ERP again."""

    order: Order


@dataclass(frozen=True, slots=True)
class OrderStatusCorrection:
    """Tell the storefront the order's status as the ERP has it.

    ``order_ref`` is the storefront's own id of the order; ``from_status`` what it shows now.
    """

    order_id: str
    version: int
    from_status: OrderStatus | None
    to_status: OrderStatus
    order_ref: str


Correction = StockAdjustmentCorrection | LevelCorrection | OrderResend | OrderStatusCorrection


@dataclass(frozen=True, slots=True)
class Drift:
    """One difference between systems for one key, and what the hub does about it."""

    kind: DriftKind
    key: str
    action: Action
    owner: str
    assignee: str
    observed: Mapping[str, str]
    detail: str
    target: str | None = None
    expected: str | None = None
    correction: Correction | None = field(default=None, compare=False)


Classifier = Callable[[KeyGroup[Any], ReconcilePolicy, datetime], list[Drift]]


def _drift(
    policy: ReconcilePolicy,
    kind: DriftKind,
    key: str,
    observed: Mapping[str, str],
    detail: str,
    *,
    magnitude: int | None = None,
    target: str | None = None,
    expected: str | None = None,
    correction: Correction | None = None,
    uncorrectable: str | None = None,
) -> Drift:
    """``uncorrectable`` says why ``correction`` is None where the rule asks for one."""
    decision = policy.decide(kind, magnitude)
    action = decision.action
    if decision.reason:
        detail = f"{detail}; {decision.reason}"
    if action is Action.CORRECT and correction is None:
        action = Action.EXCEPTION
        detail = f"{detail}; {uncorrectable or 'the hub lacks the data to correct it'}"
    if action is not Action.CORRECT:
        correction = None
        target = target if action is Action.REPORT else None
    return Drift(
        kind=kind,
        key=key,
        action=action,
        owner=decision.owner,
        assignee=decision.assignee,
        observed=dict(observed),
        detail=detail,
        target=target,
        expected=expected,
        correction=correction,
    )


def _duplicates(group: KeyGroup[Any], kind: DriftKind, policy: ReconcilePolicy) -> list[Drift]:
    counts = {system: len(recs) for system, recs in group.records.items() if len(recs) > 1}
    if not counts:
        return []
    observed = {system: f"{n} records" for system, n in sorted(counts.items())}
    where = ", ".join(f"{n} in {system}" for system, n in sorted(counts.items()))
    return [
        _drift(
            policy,
            kind,
            group.key,
            observed,
            f"{group.key} appears more than once ({where}); fix the duplicate at the source",
        )
    ]


# ---- inventory ------------------------------------------------------------------------------


def classify_stock(group: KeyGroup[Any], policy: ReconcilePolicy, now: datetime) -> list[Drift]:
    """ERP stock vs warehouse on hand vs the storefront's published level, for one SKU@location."""
    records = group.records
    erp_recs = records.get(ERP)
    wms_recs = records.get(WMS)
    sf_recs = records.get(STOREFRONT)
    formula = policy.formula
    if (
        erp_recs is not None
        and wms_recs is not None
        and sf_recs is not None
        and len(erp_recs) == 1
        and len(wms_recs) == 1
        and len(sf_recs) == 1
    ):
        erp0, wms0 = erp_recs[0], wms_recs[0]
        if erp0.on_hand == wms0.on_hand and sf_recs[0].available == formula.compute(
            erp0.sku, erp0.on_hand, erp0.reserved, wms0.allocated, erp0.in_transit
        ):
            return []  # the common case: everything agrees
    erp: StockFigure | None = erp_recs[0] if erp_recs else None
    wms: StockFigure | None = wms_recs[0] if wms_recs else None
    shop: PublishedLevel | None = sf_recs[0] if sf_recs else None
    if not _single(records):
        return _duplicates(group, DriftKind.STOCK_DUPLICATE, policy)
    key = group.key
    drifts: list[Drift] = []
    on_hand = erp.on_hand if erp is not None else 0
    if erp is None and wms is not None and (wms.on_hand or wms.allocated):
        drifts.append(
            _drift(
                policy,
                DriftKind.STOCK_MISSING_IN_ERP,
                key,
                {WMS: str(wms.on_hand)},
                f"the warehouse holds {wms.on_hand} of {key} but the ERP has no stock record; "
                f"create the product/location in the ERP or correct the warehouse",
            )
        )
    elif erp is not None and wms is None and erp.on_hand:
        drifts.append(
            _drift(
                policy,
                DriftKind.STOCK_MISSING_IN_WMS,
                key,
                {ERP: str(erp.on_hand)},
                f"the ERP books {erp.on_hand} of {key} but the warehouse reports none; "
                f"count the location and adjust the ERP or the warehouse",
            )
        )
    elif erp is not None and wms is not None and erp.on_hand != wms.on_hand:
        delta = wms.on_hand - erp.on_hand
        drift = _drift(
            policy,
            DriftKind.STOCK_ON_HAND_MISMATCH,
            key,
            {ERP: str(erp.on_hand), WMS: str(wms.on_hand)},
            f"the ERP books {erp.on_hand} of {key}, the warehouse counts {wms.on_hand} "
            f"({delta:+d})",
            magnitude=abs(delta),
            target=ERP,
            expected=str(wms.on_hand),
            correction=StockAdjustmentCorrection(erp.sku, erp.location, delta, wms.on_hand),
        )
        drifts.append(drift)
        if drift.action is Action.CORRECT:
            on_hand = wms.on_hand
    if erp is None:
        if shop is not None and shop.available > 0:
            drifts.append(
                _drift(
                    policy,
                    DriftKind.STOCK_UNKNOWN_IN_STOREFRONT,
                    key,
                    {STOREFRONT: str(shop.available)},
                    f"the storefront offers {shop.available} of {key}, which the ERP does not "
                    f"stock; check the SKU mapping or take the item off sale",
                )
            )
        return drifts
    expected_level = formula.compute(
        sku=erp.sku,
        on_hand=on_hand,
        reserved=erp.reserved,
        allocated=wms.allocated if wms is not None else 0,
        in_transit=erp.in_transit,
    )
    if shop is None:
        if expected_level > 0:
            drifts.append(
                _drift(
                    policy,
                    DriftKind.STOCK_NOT_PUBLISHED,
                    key,
                    {ERP: str(erp.on_hand)},
                    f"{expected_level} of {key} could be sold but the storefront lists no level",
                    target=STOREFRONT,
                    expected=str(expected_level),
                )
            )
    elif shop.available != expected_level:
        drifts.append(
            _drift(
                policy,
                DriftKind.STOCK_LEVEL_MISMATCH,
                key,
                {STOREFRONT: str(shop.available), ERP: str(erp.on_hand)},
                f"the storefront offers {shop.available} of {key}; available to sell is "
                f"{expected_level}",
                target=STOREFRONT,
                expected=str(expected_level),
                correction=LevelCorrection(
                    erp.sku, erp.location, expected_level, shop.item_ref, shop.location_ref
                ),
            )
        )
    return drifts


def stock_agreement(policy: ReconcilePolicy) -> Callable[[Any, Any, Any], bool]:
    """A fast check that ERP, warehouse and storefront agree on one key (no drift at all).

    Must say True only where :func:`classify_stock` finds nothing; the engine uses it to skip
    building a group for the common, agreeing key.
    """
    compute = policy.formula.compute

    def agree(erp: StockFigure, wms: StockFigure, shop: PublishedLevel) -> bool:
        return erp.on_hand == wms.on_hand and shop.available == compute(
            erp.sku, erp.on_hand, erp.reserved, wms.allocated, erp.in_transit
        )

    return agree


def _single(records: Mapping[str, Sequence[object]]) -> bool:
    return all(len(recs) == 1 for recs in records.values())


# ---- orders ---------------------------------------------------------------------------------


def _money(value: Money) -> str:
    return f"{value.currency} {value.amount}"


def _differs(a: Money, b: Money, tolerance: Decimal) -> bool:
    if a.currency != b.currency:
        return True
    return abs(a.amount - b.amount) > tolerance


STOREFRONT_SETTABLE_STATUSES = frozenset(
    {OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.COMPLETED, OrderStatus.CANCELLED}
)
"""Statuses a storefront can be moved to (:meth:`~retailsync.ports.commerce.CommercePort.
update_order_status` fulfils, cancels or closes the order); any other status it only records
on the order, so the storefront would keep showing its own and the drift would stay."""


@cache
def leads_to(current: OrderStatus, target: OrderStatus) -> bool:
    """True when the order lifecycle leads from ``current`` to ``target`` (in one or more
    steps)."""
    seen = {current}
    frontier = [current]
    while frontier:
        for following in ORDER_TRANSITIONS[frontier.pop()]:
            if following is target:
                return True
            if following not in seen:
                seen.add(following)
                frontier.append(following)
    return False


def storefront_status_blocker(shown: OrderStatus, wanted: OrderStatus) -> str | None:
    """Why a storefront order showing ``shown`` cannot be moved to ``wanted`` (None: it can).

    Only forward: an order that has shipped or was cancelled cannot be taken back to an
    earlier status, and a partial shipment cannot be shown line by line from here.
    """
    if wanted not in STOREFRONT_SETTABLE_STATUSES:
        return f"the storefront cannot be set to {wanted.value}; update the order there by hand"
    if not leads_to(shown, wanted):
        return (
            f"the storefront cannot go back from {shown.value} to {wanted.value}; "
            f"a person decides which system is right"
        )
    return None


def _status_correction(
    key: str, shop: OrderFigure, erp: OrderFigure
) -> tuple[OrderStatusCorrection | None, str | None]:
    """The correction that shows the ERP's status on the storefront, or why there is none."""
    assert shop.status is not None and erp.status is not None
    blocker = storefront_status_blocker(shop.status, erp.status)
    if blocker is not None:
        return None, blocker
    if shop.order_ref is None:
        return None, None
    return OrderStatusCorrection(key, erp.version, shop.status, erp.status, shop.order_ref), None


def classify_orders(group: KeyGroup[Any], policy: ReconcilePolicy, now: datetime) -> list[Drift]:
    """Storefront order vs ERP sale: missing on either side, status stage, amount."""
    if not _single(group.records):
        return _duplicates(group, DriftKind.ORDER_DUPLICATE, policy)
    shop: OrderFigure | None = group.one(STOREFRONT)
    erp: OrderFigure | None = group.one(ERP)
    key = group.key
    if shop is not None and erp is None:
        if shop.status is OrderStatus.CANCELLED:
            return []  # cancelled before it reached the ERP: nothing to book
        return [
            _drift(
                policy,
                DriftKind.ORDER_MISSING_IN_ERP,
                key,
                {STOREFRONT: f"{shop.reference} {_money(shop.total)}"},
                f"storefront order {shop.reference} ({_money(shop.total)}) never reached the ERP",
                target=ERP,
                expected=_money(shop.total),
                correction=OrderResend(shop.order) if shop.order is not None else None,
            )
        ]
    if erp is not None and shop is None:
        return [
            _drift(
                policy,
                DriftKind.ORDER_MISSING_IN_STOREFRONT,
                key,
                {ERP: f"{erp.reference} {_money(erp.total)}"},
                f"ERP sale {erp.reference} has no storefront order; check where it came from",
            )
        ]
    if shop is None or erp is None:
        return []
    drifts: list[Drift] = []
    if _differs(shop.total, erp.total, policy.amount_tolerance):
        drifts.append(
            _drift(
                policy,
                DriftKind.ORDER_AMOUNT_MISMATCH,
                key,
                {STOREFRONT: _money(shop.total), ERP: _money(erp.total)},
                f"order {shop.reference} totals {_money(shop.total)} on the storefront but "
                f"{_money(erp.total)} in the ERP; finance decides which is right",
            )
        )
    stages = policy.status_stages
    if (
        shop.status is not None
        and erp.status is not None
        and stages.get(shop.status, shop.status.value) != stages.get(erp.status, erp.status.value)
    ):
        correction, uncorrectable = _status_correction(key, shop, erp)
        drifts.append(
            _drift(
                policy,
                DriftKind.ORDER_STATUS_MISMATCH,
                key,
                {STOREFRONT: shop.status.value, ERP: erp.status.value},
                f"order {shop.reference} is {shop.status.value} on the storefront but "
                f"{erp.status.value} in the ERP",
                target=STOREFRONT,
                expected=erp.status.value,
                correction=correction,
                uncorrectable=uncorrectable,
            )
        )
    return drifts


# ---- refunds --------------------------------------------------------------------------------


def _sum(records: Sequence[RefundFigure]) -> Money:
    return Money.total((r.amount for r in records), records[0].amount.currency)


def _describe(records: Sequence[RefundFigure]) -> str:
    if len(records) == 1:
        return f"{records[0].reference} {_money(records[0].amount)}"
    return f"{len(records)} x ({', '.join(_money(r.amount) for r in records)})"


def classify_refunds(group: KeyGroup[Any], policy: ReconcilePolicy, now: datetime) -> list[Drift]:
    """Service-desk decision vs ERP credit note vs payment refund for one canonical refund."""
    key = group.key
    decided: Sequence[RefundFigure] = group.records.get(SERVICE_DESK, ())
    credited: Sequence[RefundFigure] = group.records.get(ERP, ())
    paid: Sequence[RefundFigure] = group.records.get(PAYMENTS, ())
    observed = {
        system: _describe(recs)
        for system, recs in ((SERVICE_DESK, decided), (ERP, credited), (PAYMENTS, paid))
        if recs
    }
    tolerance = policy.amount_tolerance
    drifts: list[Drift] = []
    decided_sum = _sum(decided) if decided else None
    for system, recs, what in ((ERP, credited, "credit notes"), (PAYMENTS, paid, "refunds")):
        if len(recs) > 1 and (
            decided_sum is None
            or (_differs(_sum(recs), decided_sum, tolerance) and _sum(recs) > decided_sum)
        ):
            drifts.append(
                _drift(
                    policy,
                    DriftKind.REFUND_DUPLICATED,
                    key,
                    observed,
                    f"refund {key} has {len(recs)} {what} in {system} totalling "
                    f"{_money(_sum(recs))}"
                    + (f" for a decision of {_money(decided_sum)}" if decided_sum else "")
                    + "; reverse the extra one",
                )
            )
    if drifts:
        return drifts
    young = any(r.at is not None and now - r.at < policy.refund_grace for r in decided)
    if decided and not young:
        if paid and not credited:
            drifts.append(
                _drift(
                    policy,
                    DriftKind.REFUND_CREDIT_NOTE_MISSING,
                    key,
                    observed,
                    f"refund {key} was paid ({_describe(paid)}) but the ERP has no credit note; "
                    f"post the credit note in the ERP",
                )
            )
        if credited and not paid:
            drifts.append(
                _drift(
                    policy,
                    DriftKind.REFUND_PAYMENT_MISSING,
                    key,
                    observed,
                    f"refund {key} is credited in the ERP ({_describe(credited)}) but was never "
                    f"paid out; issue the refund at the payment service",
                )
            )
        if not paid and not credited:
            for kind, what in (
                (DriftKind.REFUND_PAYMENT_MISSING, "paid out"),
                (DriftKind.REFUND_CREDIT_NOTE_MISSING, "credited in the ERP"),
            ):
                drifts.append(
                    _drift(
                        policy,
                        kind,
                        key,
                        observed,
                        f"refund {key} was decided ({_describe(decided)}) but never {what}",
                    )
                )
    elif not decided and (paid or credited):
        drifts.append(
            _drift(
                policy,
                DriftKind.REFUND_DECISION_MISSING,
                key,
                observed,
                f"refund {key} was {'paid' if paid else 'credited'} without a decision in the "
                f"service desk; find who approved it",
            )
        )
    sums = {
        system: _sum(recs)
        for system, recs in ((SERVICE_DESK, decided), (ERP, credited), (PAYMENTS, paid))
        if recs
    }
    if len(sums) > 1:
        amounts = list(sums.values())
        if any(_differs(amounts[0], other, tolerance) for other in amounts[1:]):
            drifts.append(
                _drift(
                    policy,
                    DriftKind.REFUND_AMOUNT_MISMATCH,
                    key,
                    {system: _money(total) for system, total in sums.items()},
                    f"refund {key} amounts differ: "
                    + ", ".join(f"{system} {_money(total)}" for system, total in sums.items()),
                )
            )
    return drifts
