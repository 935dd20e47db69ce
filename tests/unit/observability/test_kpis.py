"""KPIs over fixed timelines: exact nearest-rank percentiles, rates and counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from retailsync.domain.orders import OrderStatus
from retailsync.observability.errors import KpiQueryInvalid
from retailsync.observability.kpis import (
    DriftRecord,
    EventRecord,
    ExceptionRecord,
    HopRecord,
    KpiInputs,
    Window,
    build_intervals,
    compute_kpis,
    percentile,
)
from retailsync.observability.settings import Measure
from retailsync.observability.testkit import RetailJourney, record_of

T0 = datetime(2030, 3, 2, 8, 0, tzinfo=UTC)
DAY = Window(T0, T0 + timedelta(days=1))
H = timedelta(hours=1)
M = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([15, 20, 35, 40, 50], 5, 15),
        ([15, 20, 35, 40, 50], 30, 20),
        ([15, 20, 35, 40, 50], 40, 20),
        ([15, 20, 35, 40, 50], 50, 35),
        ([15, 20, 35, 40, 50], 100, 50),
        ([3, 6, 7, 8, 8, 10, 13, 15, 16, 20], 25, 7),
        ([3, 6, 7, 8, 8, 10, 13, 15, 16, 20], 50, 8),
        ([3, 6, 7, 8, 8, 10, 13, 15, 16, 20], 75, 15),
        ([3, 6, 7, 8, 8, 10, 13, 15, 16, 20], 90, 16),
        ([42], 90, 42),
        ([], 50, None),
    ],
)
def test_nearest_rank_percentile(values: list[float], p: float, expected: float | None) -> None:
    assert percentile(values, p) == expected


def test_percentile_outside_range_is_refused() -> None:
    with pytest.raises(KpiQueryInvalid):
        percentile([1.0], 0)


def _refund(hours: float, *, channel: str, start: datetime) -> list[EventRecord]:
    journey = RetailJourney(channel=channel, country="DE" if channel == "store" else "GB")
    return [
        record_of(journey.order_created(start - H)),
        record_of(journey.refund_requested(start, for_return=False)),
        record_of(journey.refund_completed(start + timedelta(hours=hours))),
    ]


def test_refund_cycle_percentiles_open_items_and_channels() -> None:
    events: list[EventRecord] = []
    for index, hours in enumerate((1, 2, 3, 4, 10)):
        channel = "web" if index % 2 == 0 else "store"
        events += _refund(hours, channel=channel, start=T0 + index * M)
    # Completed before the window: not counted.
    events += _refund(1, channel="web", start=T0 - timedelta(hours=5))
    # Requested inside, not paid out by the end: open.
    pending = RetailJourney(channel="web")
    events += [record_of(pending.order_created(T0)), record_of(pending.refund_requested(T0 + H))]

    report = compute_kpis(KpiInputs(events=events), DAY, group_by="channel")

    overall = report.overall.durations[Measure.REFUND_CYCLE]
    assert (overall.completed, overall.open) == (5, 1)
    assert overall.p50_seconds == 3 * 3600  # ranks: ceil(0.5 * 5) = 3 -> 3 h
    assert overall.p90_seconds == 10 * 3600  # ceil(0.9 * 5) = 5 -> 10 h
    assert overall.max_seconds == 10 * 3600
    groups = {group.value: group.durations[Measure.REFUND_CYCLE] for group in report.groups}
    assert groups["web"].completed == 3  # 1 h, 3 h, 10 h
    assert groups["web"].p50_seconds == 3 * 3600
    assert groups["web"].open == 1
    assert groups["store"].completed == 2  # 2 h, 4 h
    assert groups["store"].p50_seconds == 2 * 3600
    assert groups["store"].p90_seconds == 4 * 3600

    by_region = compute_kpis(KpiInputs(events=events), DAY, group_by="region")
    regions = {group.value: group.durations[Measure.REFUND_CYCLE] for group in by_region.groups}
    assert regions["DE"].completed == 2
    assert regions["GB"].completed == 3


def test_return_authorization_latency_and_return_to_refund() -> None:
    events: list[EventRecord] = []
    for minutes in (5, 20, 9):
        journey = RetailJourney()
        requested = T0 + 2 * H
        events += [
            record_of(journey.return_requested(requested)),
            record_of(journey.return_authorized(requested + minutes * M)),
        ]
    late = RetailJourney()
    events += [
        record_of(late.return_received(T0)),
        record_of(late.refund_requested(T0 + 2 * H)),
        record_of(late.refund_completed(T0 + 30 * H)),  # after the window: still open in it
    ]
    quick = RetailJourney()
    events += [
        record_of(quick.return_received(T0 + H)),
        record_of(quick.refund_requested(T0 + 2 * H)),
        record_of(quick.refund_completed(T0 + 7 * H)),
    ]

    report = compute_kpis(KpiInputs(events=events), DAY)

    authorization = report.overall.durations[Measure.RETURN_AUTHORIZATION]
    assert authorization.completed == 3
    assert authorization.p50_seconds == 9 * 60
    assert authorization.p90_seconds == 20 * 60
    to_refund = report.overall.durations[Measure.RETURN_TO_REFUND]
    assert (to_refund.completed, to_refund.open) == (1, 1)
    assert to_refund.p50_seconds == 6 * 3600


def test_status_propagation_needs_storefront_and_the_case() -> None:
    with_case = RetailJourney(correlation_id="c-with-case")
    plain = RetailJourney(correlation_id="c-plain")
    stuck = RetailJourney(correlation_id="c-stuck")
    events = [
        record_of(with_case.order_created(T0)),
        record_of(with_case.case_opened(T0)),
        record_of(with_case.status_changed(T0 + H, OrderStatus.SHIPPED)),
        record_of(plain.status_changed(T0 + H, OrderStatus.SHIPPED)),
        record_of(stuck.status_changed(T0 + H, OrderStatus.SHIPPED)),
    ]

    def call(correlation: str, system: str, status: str, after: timedelta) -> HopRecord:
        return HopRecord(
            "outbound_call", system, "update_status", status, T0 + H + after, correlation
        )

    hops = [
        call("c-with-case", "commerce", "ok", 2 * M),
        call("c-with-case", "service_desk", "ok", 4 * M),
        call("c-plain", "commerce", "transient", 1 * M),
        call("c-plain", "commerce", "ok", 3 * M),
        call("c-stuck", "service_desk", "ok", 1 * M),  # the storefront never got it
    ]

    intervals = build_intervals(KpiInputs(events=events, hops=hops))[Measure.STATUS_PROPAGATION]
    lags = {item.correlation_id: item.duration for item in intervals}
    assert lags == {"c-with-case": 4 * M, "c-plain": 3 * M, "c-stuck": None}

    summary = compute_kpis(KpiInputs(events=events, hops=hops), DAY).overall.durations[
        Measure.STATUS_PROPAGATION
    ]
    assert (summary.completed, summary.open, summary.p50_seconds) == (2, 1, 180)


def test_inventory_sync_latency() -> None:
    journey = RetailJourney(correlation_id="stock-1")
    events = [record_of(journey.stock_adjusted(T0 + H))]
    synced = T0 + H + timedelta(seconds=90)
    hops = [HopRecord("outbound_call", "commerce", "set_stock", "ok", synced, "stock-1")]
    summary = compute_kpis(KpiInputs(events=events, hops=hops), DAY).overall.durations[
        Measure.INVENTORY_SYNC
    ]
    assert summary.completed == 1
    assert summary.p50_seconds == pytest.approx(90.0)


def test_case_to_erp_sync_rate_counts_final_outcomes() -> None:
    def hop(
        correlation: str, operation: str, status: str, minute: int, case: str | None
    ) -> HopRecord:
        return HopRecord(
            "outbound_call",
            "erp",
            operation,
            status,
            T0 + minute * M,
            correlation,
            None,
            case,
            minute,
        )

    hops = [
        hop("c1", "create_return", "transient", 1, "case_A"),
        hop("c1", "create_return", "ok", 2, "case_A"),  # retried: one sync, succeeded
        hop("c2", "post_credit_note", "business", 3, "case_B"),  # refused
        hop("c3", "create_return", "ok", 4, "case_C"),
        hop("c4", "create_return", "business", 5, None),  # not for a case: ignored
        HopRecord("outbound_call", "commerce", "x", "business", T0, "c5", None, "case_D"),
    ]
    rate = compute_kpis(KpiInputs(hops=hops), DAY).overall.case_sync
    assert (rate.succeeded, rate.total) == (2, 3)
    assert rate.value == pytest.approx(2 / 3)


def test_manual_interventions_and_reconciliation_drift() -> None:
    exceptions = [
        ExceptionRecord(opened_at=T0 + H),  # opened, still open
        ExceptionRecord(opened_at=T0 + H, closed_at=T0 + 2 * H),  # opened and resolved
        ExceptionRecord(opened_at=T0 - H, closed_at=T0 + 3 * H),  # resolved in the window
        ExceptionRecord(opened_at=T0 - 2 * H),  # open from before
        ExceptionRecord(opened_at=T0 + 30 * H),  # after the window
    ]
    drifts = [
        DriftRecord("inventory", T0 + H, 3),
        DriftRecord("inventory", T0 + 5 * H, 2),
        DriftRecord("refunds", T0 + 6 * H, 1),
        DriftRecord("inventory", T0 - H, 50),  # before the window
    ]
    report = compute_kpis(KpiInputs(exceptions=exceptions, drifts=drifts), DAY)
    assert report.manual_intervention.to_json() == {"opened": 2, "resolved": 2, "open_at_end": 2}
    assert report.reconciliation_drift == {"inventory": 5, "refunds": 1}


def test_window_must_be_ordered_and_aware() -> None:
    with pytest.raises(KpiQueryInvalid):
        Window(T0, T0)
    with pytest.raises(KpiQueryInvalid):
        Window(datetime(2030, 1, 1), datetime(2030, 1, 2))
