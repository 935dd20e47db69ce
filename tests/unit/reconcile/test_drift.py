from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.domain.money import Money
from retailsync.domain.orders import OrderStatus
from retailsync.reconcile.availability import AtsFormula
from retailsync.reconcile.corrections import correction_event, storefront_order_ref, ticket_for
from retailsync.reconcile.correctors import storefront_statuses
from retailsync.reconcile.drift import (
    Drift,
    LevelCorrection,
    OrderStatusCorrection,
    StockAdjustmentCorrection,
    classify_orders,
    classify_refunds,
    classify_stock,
)
from retailsync.reconcile.merge import KeyGroup
from retailsync.reconcile.policy import (
    Action,
    DriftKind,
    DriftRule,
    ReconcilePolicy,
    default_rules,
)
from retailsync.reconcile.records import OrderFigure, PublishedLevel, RefundFigure, StockFigure

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
POLICY = ReconcilePolicy()


def stock(
    erp: StockFigure | None = None,
    wms: StockFigure | None = None,
    shop: PublishedLevel | None = None,
    policy: ReconcilePolicy = POLICY,
) -> list[Drift]:
    records = {
        name: [rec] for name, rec in (("erp", erp), ("wms", wms), ("storefront", shop)) if rec
    }
    return classify_stock(KeyGroup("SKU-1@DC1", records), policy, NOW)


def test_agreeing_systems_have_no_drift() -> None:
    erp = StockFigure.of("SKU-1", "DC1", 10, reserved=2, in_transit=3)
    wms = StockFigure.of("SKU-1", "DC1", 10, allocated=1)
    assert stock(erp, wms, PublishedLevel.of("SKU-1", "DC1", 10)) == []


def test_small_on_hand_difference_is_booked_in_the_erp_and_the_level_follows() -> None:
    erp = StockFigure.of("SKU-1", "DC1", 10)
    wms = StockFigure.of("SKU-1", "DC1", 8)
    drifts = stock(erp, wms, PublishedLevel.of("SKU-1", "DC1", 10))
    assert [d.kind for d in drifts] == [
        DriftKind.STOCK_ON_HAND_MISMATCH,
        DriftKind.STOCK_LEVEL_MISMATCH,
    ]
    on_hand, level = drifts
    assert on_hand.action is Action.CORRECT and on_hand.target == "erp"
    assert on_hand.correction == StockAdjustmentCorrection("SKU-1", "DC1", -2, 8)
    assert level.correction == LevelCorrection("SKU-1", "DC1", 8, None, None)


def test_large_on_hand_difference_goes_to_a_person_and_the_level_uses_the_erp() -> None:
    erp = StockFigure.of("SKU-1", "DC1", 50)
    wms = StockFigure.of("SKU-1", "DC1", 10)
    on_hand, level = stock(erp, wms, PublishedLevel.of("SKU-1", "DC1", 3))
    assert on_hand.action is Action.EXCEPTION
    assert "40 units is more than the 5" in on_hand.detail
    assert on_hand.correction is None
    assert level.expected == "50"


def test_missing_and_unknown_positions() -> None:
    assert [d.kind for d in stock(StockFigure.of("SKU-1", "DC1", 4))] == [
        DriftKind.STOCK_MISSING_IN_WMS,
        DriftKind.STOCK_NOT_PUBLISHED,
    ]
    assert [d.kind for d in stock(wms=StockFigure.of("SKU-1", "DC1", 4))] == [
        DriftKind.STOCK_MISSING_IN_ERP
    ]
    assert [d.kind for d in stock(shop=PublishedLevel.of("SKU-1", "DC1", 2))] == [
        DriftKind.STOCK_UNKNOWN_IN_STOREFRONT
    ]
    assert stock(shop=PublishedLevel.of("SKU-1", "DC1", 0)) == []


def test_formula_and_safety_stock_are_configuration() -> None:
    erp = StockFigure.of("SKU-1", "DC1", 10, reserved=2, in_transit=5)
    wms = StockFigure.of("SKU-1", "DC1", 10, allocated=1)
    policy = ReconcilePolicy(formula=AtsFormula(add_in_transit=False, safety_stock=2))
    assert stock(erp, wms, PublishedLevel.of("SKU-1", "DC1", 5), policy) == []
    assert stock(erp, wms, PublishedLevel.of("SKU-1", "DC1", 12)) == []


def test_rules_are_configuration() -> None:
    rules = default_rules()
    rules[DriftKind.STOCK_LEVEL_MISMATCH] = DriftRule(action=Action.EXCEPTION, owner="storefront")
    erp = StockFigure.of("SKU-1", "DC1", 10)
    wms = StockFigure.of("SKU-1", "DC1", 10)
    (drift,) = stock(erp, wms, PublishedLevel.of("SKU-1", "DC1", 1), ReconcilePolicy(rules=rules))
    assert drift.action is Action.EXCEPTION and drift.correction is None


def _order(
    ref: str,
    status: OrderStatus | None,
    amount: str,
    version: int = 1,
    order_ref: str | None = None,
) -> OrderFigure:
    return OrderFigure(
        key=derive_id(EntityKind.ORDER, "shop", ref),
        reference=ref,
        status=status,
        total=Money.of(amount, "EUR"),
        version=version,
        order_ref=order_ref,
    )


def orders(shop: OrderFigure | None, erp: OrderFigure | None) -> list[Drift]:
    key = (shop or erp).key  # type: ignore[union-attr]
    records = {name: [rec] for name, rec in (("storefront", shop), ("erp", erp)) if rec}
    return classify_orders(KeyGroup(key, records), POLICY, NOW)


def test_order_missing_in_erp_without_the_full_order_is_an_exception() -> None:
    (drift,) = orders(_order("1001", OrderStatus.CONFIRMED, "20.00"), None)
    assert drift.kind is DriftKind.ORDER_MISSING_IN_ERP
    assert drift.action is Action.EXCEPTION
    assert "lacks the data" in drift.detail


def test_cancelled_order_that_never_reached_the_erp_is_fine() -> None:
    assert orders(_order("1001", OrderStatus.CANCELLED, "20.00"), None) == []


def test_status_stage_and_amount_mismatch() -> None:
    shop = _order("1001", OrderStatus.CONFIRMED, "20.00", order_ref="450789469")
    same_stage = _order("1001", OrderStatus.PROCESSING, "20.00")
    assert orders(shop, same_stage) == []
    shipped = _order("1001", OrderStatus.SHIPPED, "21.00", version=4)
    amount, status = orders(shop, shipped)
    assert amount.kind is DriftKind.ORDER_AMOUNT_MISMATCH and amount.action is Action.EXCEPTION
    assert amount.assignee == "finance"
    assert status.action is Action.CORRECT and status.target == "storefront"
    assert status.correction == OrderStatusCorrection(
        shop.key, 4, OrderStatus.CONFIRMED, OrderStatus.SHIPPED, "450789469"
    )
    tolerant = ReconcilePolicy(amount_tolerance=Decimal("1.00"))
    records = {"storefront": [shop], "erp": [shipped]}
    kinds = [d.kind for d in classify_orders(KeyGroup(shop.key, records), tolerant, NOW)]
    assert kinds == [DriftKind.ORDER_STATUS_MISMATCH]


def test_status_correction_event_names_the_storefront_order_and_is_derived() -> None:
    shop = _order("1001", OrderStatus.PENDING, "20.00", order_ref="450789469")
    (drift,) = orders(shop, _order("1001", OrderStatus.CANCELLED, "20.00", version=3))
    event = correction_event("orders", drift, now=NOW, correlationid="rcn_1")
    again = correction_event("orders", drift, now=NOW + timedelta(hours=1), correlationid="rcn_2")
    assert event is not None and again is not None and event.id == again.id
    assert event.type == "retailsync.order.status_changed"
    assert event.partitionkey == shop.key  # per-order ordering on the bus
    assert storefront_order_ref(event) == "450789469"
    assert (event.data["order_id"], event.data["from_status"], event.data["to_status"]) == (
        shop.key,
        "pending",
        "cancelled",
    )


def test_status_is_corrected_only_forward_and_where_the_storefront_can_show_it() -> None:
    def status_drift(shop: OrderStatus, erp: OrderStatus, order_ref: str | None = "4507") -> Drift:
        (drift,) = orders(
            _order("1001", shop, "20.00", order_ref=order_ref), _order("1001", erp, "20.00")
        )
        assert drift.kind is DriftKind.ORDER_STATUS_MISMATCH
        return drift

    for shown, erp in (
        (OrderStatus.CONFIRMED, OrderStatus.SHIPPED),
        (OrderStatus.ON_HOLD, OrderStatus.DELIVERED),
        (OrderStatus.PENDING, OrderStatus.COMPLETED),
        (OrderStatus.PROCESSING, OrderStatus.CANCELLED),
    ):
        drift = status_drift(shown, erp)
        assert drift.action is Action.CORRECT, (shown, erp)
        assert isinstance(drift.correction, OrderStatusCorrection)
        assert drift.correction.to_status is erp
    backwards = status_drift(OrderStatus.SHIPPED, OrderStatus.PROCESSING)
    assert backwards.action is Action.EXCEPTION and backwards.correction is None
    assert "cannot be set to processing" in backwards.detail
    fulfilled = status_drift(OrderStatus.SHIPPED, OrderStatus.CANCELLED)
    assert fulfilled.action is Action.EXCEPTION and fulfilled.assignee == "operations"
    assert "cannot go back from shipped to cancelled" in fulfilled.detail
    revived = status_drift(OrderStatus.CANCELLED, OrderStatus.SHIPPED)
    assert revived.action is Action.EXCEPTION
    assert "cannot go back from cancelled to shipped" in revived.detail
    partial = status_drift(OrderStatus.CONFIRMED, OrderStatus.PARTIALLY_SHIPPED)
    assert partial.action is Action.EXCEPTION and "partially_shipped" in partial.detail
    unaddressed = status_drift(OrderStatus.CONFIRMED, OrderStatus.SHIPPED, order_ref=None)
    assert unaddressed.action is Action.EXCEPTION and "lacks the data" in unaddressed.detail
    report_only = ReconcilePolicy(
        rules={DriftKind.ORDER_STATUS_MISMATCH: DriftRule(action=Action.REPORT, owner="erp")}
    )
    shop = _order("1001", OrderStatus.CONFIRMED, "20.00", order_ref="4507")
    records = {"storefront": [shop], "erp": [_order("1001", OrderStatus.SHIPPED, "20.00")]}
    (reported,) = classify_orders(KeyGroup(shop.key, records), report_only, NOW)
    assert reported.action is Action.REPORT and reported.correction is None


def test_the_storefront_is_told_each_status_it_needs_in_order() -> None:
    s = OrderStatus
    assert storefront_statuses(s.CONFIRMED, s.SHIPPED) == [s.SHIPPED]
    assert storefront_statuses(s.PENDING, s.CANCELLED) == [s.CANCELLED]
    assert storefront_statuses(s.CONFIRMED, s.COMPLETED) == [s.SHIPPED, s.COMPLETED]
    assert storefront_statuses(s.PARTIALLY_SHIPPED, s.COMPLETED) == [s.SHIPPED, s.COMPLETED]
    assert storefront_statuses(s.DELIVERED, s.COMPLETED) == [s.COMPLETED]


def _refund(ref: str, amount: str, at: datetime | None = None) -> RefundFigure:
    return RefundFigure("ref_X", ref, Money.of(amount, "EUR"), at or NOW - timedelta(days=1))


def refunds(**systems: list[RefundFigure]) -> list[Drift]:
    return classify_refunds(KeyGroup("ref_X", systems), POLICY, NOW)


def test_refund_paid_without_credit_note_goes_to_finance() -> None:
    (drift,) = refunds(service_desk=[_refund("t1", "25.00")], payments=[_refund("re_1", "25.00")])
    assert drift.kind is DriftKind.REFUND_CREDIT_NOTE_MISSING
    assert drift.action is Action.EXCEPTION and drift.assignee == "finance"


def test_refund_consistent_everywhere_and_young_decisions() -> None:
    agreed = refunds(
        service_desk=[_refund("t1", "25.00")],
        erp=[_refund("cn1", "25.00")],
        payments=[_refund("re_1", "25.00")],
    )
    assert agreed == []
    assert refunds(service_desk=[_refund("t1", "25.00", at=NOW - timedelta(minutes=5))]) == []


def test_refund_duplicates_partials_and_amounts() -> None:
    (dup,) = refunds(
        service_desk=[_refund("t1", "25.00")],
        erp=[_refund("cn1", "25.00")],
        payments=[_refund("re_1", "25.00"), _refund("re_2", "25.00")],
    )
    assert dup.kind is DriftKind.REFUND_DUPLICATED
    partial = refunds(
        service_desk=[_refund("t1", "25.00")],
        erp=[_refund("cn1", "25.00")],
        payments=[_refund("re_1", "10.00"), _refund("re_2", "15.00")],
    )
    assert partial == []
    (amount,) = refunds(
        service_desk=[_refund("t1", "25.00")],
        erp=[_refund("cn1", "20.00")],
        payments=[_refund("re_1", "25.00")],
    )
    assert amount.kind is DriftKind.REFUND_AMOUNT_MISMATCH
    (no_decision,) = refunds(payments=[_refund("re_1", "25.00")])
    assert no_decision.kind is DriftKind.REFUND_DECISION_MISSING


def test_correction_and_ticket_ids_are_derived_not_random() -> None:
    erp = StockFigure.of("SKU-1", "DC1", 10)
    wms = StockFigure.of("SKU-1", "DC1", 8)
    on_hand, level = stock(erp, wms, PublishedLevel.of("SKU-1", "DC1", 10))
    first = correction_event("inventory", on_hand, now=NOW)
    again = correction_event("inventory", on_hand, now=NOW + timedelta(hours=1))
    assert first is not None and again is not None
    assert first.id == again.id
    assert first.type == "retailsync.inventory.adjusted"
    assert first.data["adjustment"]["delta"] == -2
    other_scope = correction_event("inventory:eu", on_hand, now=NOW)
    assert other_scope is not None and other_scope.id != first.id
    level_event = correction_event("inventory", level, now=NOW)
    assert level_event is not None and level_event.data["position"]["on_hand"] == 8
    big = stock(StockFigure.of("SKU-1", "DC1", 50), wms)[0]
    ticket = ticket_for("inventory", "run1", big, now=NOW)
    ticket_again = ticket_for("inventory", "run2", big, now=NOW)
    assert ticket is not None and ticket_again is not None and ticket.id == ticket_again.id
    assert correction_event("inventory", big, now=NOW) is None
