"""SLA breach and at-risk detection at a fixed moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from retailsync.observability.kpis import Interval
from retailsync.observability.settings import (
    DEFAULT_SLAS,
    Measure,
    ObservabilitySettings,
    Role,
    SlaTarget,
)
from retailsync.observability.sla import Severity, evaluate_slas

NOW = datetime(2030, 3, 4, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
REFUNDS = SlaTarget(
    name="refund_completed",
    measure=Measure.REFUND_CYCLE,
    within=48 * H,
    at_risk_after=36 * H,
    role=Role.FINANCE,
)


def _item(key: str, started_hours_ago: float, took_hours: float | None = None) -> Interval:
    started = NOW - timedelta(hours=started_hours_ago)
    ended = None if took_hours is None else started + timedelta(hours=took_hours)
    return Interval(Measure.REFUND_CYCLE, key, started, ended, order_id=f"order-{key}")


def test_breaches_at_risk_and_items_within_their_sla() -> None:
    intervals = {
        Measure.REFUND_CYCLE: [
            _item("fast", 10, took_hours=2),  # done within: nothing
            _item("young", 5),  # open, young: nothing
            _item("risky", 40),  # open 40 h > 36 h: at risk
            _item("late", 50),  # open 50 h > 48 h: breach
            _item("done-late", 80, took_hours=60),  # finished after 60 h: breach
            _item("future", -1),  # starts after now: nothing
        ]
    }
    findings = {f.item: f for f in evaluate_slas(intervals, [REFUNDS], NOW)}
    assert set(findings) == {"risky", "late", "done-late"}
    assert findings["risky"].severity is Severity.AT_RISK
    assert findings["risky"].due_at == NOW - 40 * H + 36 * H
    assert findings["late"].severity is Severity.BREACH
    assert findings["late"].due_at == NOW - 2 * H
    assert findings["late"].age == 50 * H
    assert findings["done-late"].age == 60 * H


def test_breach_window_is_stable_across_runs() -> None:
    intervals = {Measure.REFUND_CYCLE: [_item("late", 50)]}
    first = evaluate_slas(intervals, [REFUNDS], NOW)[0]
    later = evaluate_slas(intervals, [REFUNDS], NOW + 5 * H)[0]
    assert first.breach_window == later.breach_window


def test_sla_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="at_risk_after"):
        SlaTarget(
            name="x", measure=Measure.REFUND_CYCLE, within=H, at_risk_after=2 * H, role=Role.FINANCE
        )
    with pytest.raises(ValidationError, match="unique"):
        ObservabilitySettings(slas=(REFUNDS, REFUNDS))
    names = {sla.name: sla for sla in DEFAULT_SLAS}
    assert names["refund_completed"].within == 48 * H
    assert names["status_propagated"].within == timedelta(minutes=5)
    assert names["return_authorized"].within == timedelta(minutes=15)
