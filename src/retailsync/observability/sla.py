"""SLA breach and at-risk detection: pure functions of intervals, targets and a moment.

An item *breaches* its SLA when it ended later than ``within`` after it started, or is still
open at ``started + within``; it is *at risk* while open between ``started + at_risk_after``
and the deadline. Each finding has a stable ``breach_window`` (its deadline or warning
time), so the alert for it is sent once however often the monitor looks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from retailsync.observability.kpis import Interval
from retailsync.observability.settings import Measure, SlaTarget


class Severity(StrEnum):
    BREACH = "breach"
    AT_RISK = "at_risk"


@dataclass(frozen=True, slots=True)
class SlaFinding:
    """One item outside (or about to leave) its SLA."""

    sla: SlaTarget
    interval: Interval
    severity: Severity
    due_at: datetime
    """The deadline (breach) or the warning time (at risk)."""
    age: timedelta
    """How long the item had run when it breached / when the monitor looked."""

    @property
    def item(self) -> str:
        return self.interval.key

    @property
    def breach_window(self) -> str:
        """Identifies this breach of this item: alerts are deduplicated on it."""
        return f"{self.severity.value}@{self.due_at.isoformat()}"


def evaluate_slas(
    intervals: Mapping[Measure, Sequence[Interval]],
    slas: Iterable[SlaTarget],
    now: datetime,
) -> list[SlaFinding]:
    """Breaches and items at risk at ``now``; items within their SLA give nothing."""
    findings: list[SlaFinding] = []
    for sla in slas:
        for item in intervals.get(sla.measure, ()):
            if item.started_at > now:
                continue
            deadline = item.started_at + sla.within
            ended = item.ended_at if item.ended_at is not None and item.ended_at <= now else None
            if ended is not None:
                if ended > deadline:
                    findings.append(
                        SlaFinding(sla, item, Severity.BREACH, deadline, ended - item.started_at)
                    )
                continue
            age = now - item.started_at
            if now >= deadline:
                findings.append(SlaFinding(sla, item, Severity.BREACH, deadline, age))
            elif sla.at_risk_after is not None and age >= sla.at_risk_after:
                warning = item.started_at + sla.at_risk_after
                findings.append(SlaFinding(sla, item, Severity.AT_RISK, warning, age))
    findings.sort(key=lambda f: (f.due_at, f.sla.name, f.item))
    return findings
