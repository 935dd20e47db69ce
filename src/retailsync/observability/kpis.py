"""Business KPIs as pure functions over durable records: events, hops, exceptions, drift.

Nothing here reads a clock or a database: :mod:`~retailsync.observability.kpi_source` loads
the records, these functions turn them into intervals and numbers, so a test with a fixed
timeline gets exact answers.

Intervals (one per business item) come from the canonical events' own business timestamps
(``requested_at``, ``completed_at`` ...), and, for propagation, from the hub's outbound-call
records:

- ``refund_cycle``: ``refund.requested`` (``refund.requested_at``) -> ``refund.completed``
  (``completed_at``), per refund.
- ``return_authorization``: ``return.requested`` (``rma.requested_at``) ->
  ``return.authorized`` (``authorized_at``), per RMA.
- ``return_to_refund``: ``return.received`` (``received_at``) -> ``refund.completed`` of a
  refund requested for that RMA.
- ``status_propagation``: an ``order.status_changed`` from the ERP (``changed_at``) -> the
  last of the first successful outbound calls, in the same correlation (or naming the same
  order), to every target system (``status_targets``; plus ``service_desk`` when the order
  has a case).
- ``inventory_sync``: ``inventory.adjusted`` (``occurred_at``) or
  ``inventory.position_reported`` (``as_of``) -> the same, to ``inventory_targets``.

Percentiles use the **nearest-rank** method: the p-th percentile of n sorted values is the
value at rank ``ceil(p / 100 * n)`` (1-based). It is always one of the observed values, so
"p90 = 41 min" means a real item took 41 minutes.

A duration counts in the window in which its item *ended*; an item still open at the end of
the window counts as ``open``. Rates count items by their final outcome inside the window.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from retailsync.observability.errors import KpiQueryInvalid
from retailsync.observability.settings import KpiSettings, Measure

GroupBy = Literal["channel", "region"] | None
OK_STATUSES = frozenset({"ok", "sent", "succeeded", "completed", "delivered"})
"""Statuses of a hop that count as a success."""


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A stored canonical event, as much of it as the KPIs need."""

    type: str
    source: str
    data: Mapping[str, Any]
    time: datetime
    correlation_id: str | None = None
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class HopRecord:
    """A trace record (outbound call or workflow step)."""

    kind: str
    system: str
    operation: str
    status: str
    at: datetime
    correlation_id: str | None = None
    order_id: str | None = None
    case_id: str | None = None
    seq: int = 0


@dataclass(frozen=True, slots=True)
class ExceptionRecord:
    """An exception-queue entry: when it was opened and, if so, when it was closed."""

    opened_at: datetime
    closed_at: datetime | None = None
    system: str | None = None


@dataclass(frozen=True, slots=True)
class DriftRecord:
    """One finished reconciliation run."""

    job: str
    finished_at: datetime
    drift_count: int


@dataclass(frozen=True, slots=True)
class KpiInputs:
    events: Sequence[EventRecord] = ()
    hops: Sequence[HopRecord] = ()
    exceptions: Sequence[ExceptionRecord] = ()
    drifts: Sequence[DriftRecord] = ()


# --------------------------------------------------------------------------------------------
# Intervals
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interval:
    """One business item of a measure: when it started and (if so) when it ended."""

    measure: Measure
    key: str
    started_at: datetime
    ended_at: datetime | None = None
    order_id: str | None = None
    case_id: str | None = None
    correlation_id: str | None = None
    channel: str | None = None
    region: str | None = None

    @property
    def duration(self) -> timedelta | None:
        return None if self.ended_at is None else self.ended_at - self.started_at

    def open_at(self, moment: datetime) -> bool:
        """Started by ``moment`` and not ended by then."""
        return self.started_at <= moment and (self.ended_at is None or self.ended_at > moment)

    def age(self, moment: datetime) -> timedelta:
        """How long it has been running at ``moment`` (its duration once ended)."""
        end = self.ended_at if self.ended_at is not None and self.ended_at <= moment else moment
        return end - self.started_at

    def dimension(self, group_by: GroupBy) -> str | None:
        if group_by == "channel":
            return self.channel
        if group_by == "region":
            return self.region
        return None


def _ts(value: Any, fallback: datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return fallback
    return fallback


def _first_ok_after(
    hops: Iterable[HopRecord], targets: Iterable[str], start: datetime
) -> dict[str, datetime]:
    reached: dict[str, datetime] = {}
    wanted = set(targets)
    for hop in hops:
        usable = hop.system in wanted and hop.status in OK_STATUSES and hop.at >= start
        if usable and (hop.system not in reached or hop.at < reached[hop.system]):
            reached[hop.system] = hop.at
    return reached


def build_intervals(
    inputs: KpiInputs, settings: KpiSettings | None = None
) -> dict[Measure, list[Interval]]:
    """Every interval the records describe, per measure (complete or still open)."""
    settings = settings or KpiSettings()
    orders: dict[str, tuple[str | None, str | None]] = {}
    cases_of_order: set[str] = set()
    refund_rma: dict[str, str] = {}
    refund_order: dict[str, str | None] = {}
    starts: dict[Measure, dict[str, tuple[datetime, EventRecord, str | None]]] = defaultdict(dict)
    ends: dict[Measure, dict[str, datetime]] = defaultdict(dict)
    propagation: list[tuple[Measure, str, datetime, EventRecord, str | None]] = []

    for event in inputs.events:
        data = event.data
        kind = event.type.removeprefix("retailsync.")
        if kind == "order.created":
            order = data.get("order", {})
            address = order.get("shipping_address") or {}
            orders[str(order.get("id"))] = (order.get("channel"), address.get("country"))
        elif kind == "case.opened":
            case = data.get("case", {})
            if case.get("order_id"):
                cases_of_order.add(str(case["order_id"]))
        elif kind == "refund.requested":
            refund = data.get("refund", {})
            key = str(refund.get("id"))
            refund_order[key] = refund.get("order_id")
            if refund.get("rma_id"):
                refund_rma[key] = str(refund["rma_id"])
            if refund.get("case_id") and refund.get("order_id"):
                cases_of_order.add(str(refund["order_id"]))
            start = _ts(refund.get("requested_at"), event.time)
            starts[Measure.REFUND_CYCLE].setdefault(key, (start, event, refund.get("order_id")))
        elif kind == "refund.completed":
            key = str(data.get("refund_id"))
            ends[Measure.REFUND_CYCLE].setdefault(key, _ts(data.get("completed_at"), event.time))
        elif kind == "return.requested":
            rma = data.get("rma", {})
            key = str(rma.get("id"))
            start = _ts(rma.get("requested_at"), event.time)
            starts[Measure.RETURN_AUTHORIZATION].setdefault(
                key, (start, event, rma.get("order_id"))
            )
            if rma.get("case_id") and rma.get("order_id"):
                cases_of_order.add(str(rma["order_id"]))
        elif kind == "return.authorized":
            key = str(data.get("rma_id"))
            ended = _ts(data.get("authorized_at"), event.time)
            ends[Measure.RETURN_AUTHORIZATION].setdefault(key, ended)
        elif kind == "return.received":
            key = str(data.get("rma_id"))
            start = _ts(data.get("received_at"), event.time)
            starts[Measure.RETURN_TO_REFUND].setdefault(key, (start, event, data.get("order_id")))
        elif kind == "order.status_changed" and event.source.startswith(
            settings.erp_source_prefixes
        ):
            start = _ts(data.get("changed_at"), event.time)
            key = f"{event.source}:{event.event_id}"
            propagation.append(
                (Measure.STATUS_PROPAGATION, key, start, event, data.get("order_id"))
            )
        elif kind == "inventory.adjusted":
            adjustment = data.get("adjustment", {})
            start = _ts(adjustment.get("occurred_at"), event.time)
            key = str(adjustment.get("id") or f"{event.source}:{event.event_id}")
            propagation.append((Measure.INVENTORY_SYNC, key, start, event, None))
        elif kind == "inventory.position_reported":
            position = data.get("position", {})
            start = _ts(position.get("as_of"), event.time)
            key = f"{event.source}:{event.event_id}"
            propagation.append((Measure.INVENTORY_SYNC, key, start, event, None))

    # A refund paid out ends the return it was requested for.
    for refund_id, completed in ends[Measure.REFUND_CYCLE].items():
        rma_id = refund_rma.get(refund_id)
        if rma_id is not None:
            previous = ends[Measure.RETURN_TO_REFUND].get(rma_id)
            if previous is None or completed < previous:
                ends[Measure.RETURN_TO_REFUND][rma_id] = completed

    for hop in inputs.hops:
        if hop.case_id and hop.order_id:
            cases_of_order.add(hop.order_id)

    def dims(order_id: str | None) -> tuple[str | None, str | None]:
        return orders.get(order_id, (None, None)) if order_id else (None, None)

    result: dict[Measure, list[Interval]] = {measure: [] for measure in Measure}
    for measure, items in starts.items():
        for key, (started, event, order_id) in items.items():
            channel, region = dims(order_id)
            result[measure].append(
                Interval(
                    measure=measure,
                    key=key,
                    started_at=started,
                    ended_at=ends[measure].get(key),
                    order_id=order_id,
                    correlation_id=event.correlation_id,
                    channel=channel,
                    region=region,
                )
            )

    by_correlation: dict[str, list[HopRecord]] = defaultdict(list)
    by_order: dict[str, list[HopRecord]] = defaultdict(list)
    for hop in inputs.hops:
        if hop.kind != "outbound_call":
            continue
        if hop.correlation_id:
            by_correlation[hop.correlation_id].append(hop)
        if hop.order_id:
            by_order[hop.order_id].append(hop)
    for measure, key, started, event, order_id in propagation:
        if measure is Measure.STATUS_PROPAGATION:
            targets = set(settings.status_targets)
            if order_id in cases_of_order:
                targets.add("service_desk")
        else:
            targets = set(settings.inventory_targets)
        candidates = list(by_correlation.get(event.correlation_id or "", ()))
        if order_id:
            candidates += by_order.get(order_id, [])
        reached = _first_ok_after(candidates, targets, started)
        finished = max(reached.values()) if reached and set(reached) >= targets else None
        channel, region = dims(order_id)
        result[measure].append(
            Interval(
                measure=measure,
                key=key,
                started_at=started,
                ended_at=finished,
                order_id=order_id,
                correlation_id=event.correlation_id,
                channel=channel,
                region=region,
            )
        )
    for intervals in result.values():
        intervals.sort(key=lambda item: (item.started_at, item.key))
    return result


# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of ``values``; None when empty."""
    if not 0 < p <= 100:
        raise KpiQueryInvalid(f"percentile must be in (0, 100], got {p}")
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class Window:
    """The half-open time window ``[since, until)``."""

    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise KpiQueryInvalid("window bounds need a timezone offset, e.g. ...Z")
        if self.since >= self.until:
            raise KpiQueryInvalid(
                f"window start {self.since.isoformat()} must be before its end "
                f"{self.until.isoformat()}"
            )

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, datetime) and self.since <= moment < self.until


@dataclass(frozen=True, slots=True)
class DurationSummary:
    """Completed items in the window (seconds) and items still open at its end."""

    completed: int
    open: int
    p50_seconds: float | None
    p90_seconds: float | None
    max_seconds: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "completed": self.completed,
            "open": self.open,
            "p50_seconds": self.p50_seconds,
            "p90_seconds": self.p90_seconds,
            "max_seconds": self.max_seconds,
        }


def summarise(intervals: Iterable[Interval], window: Window) -> DurationSummary:
    """Percentiles of the items that ended in ``window``; items open at its end counted."""
    durations: list[float] = []
    still_open = 0
    for item in intervals:
        if item.ended_at is not None and item.ended_at in window:
            duration = item.duration
            assert duration is not None
            durations.append(duration.total_seconds())
        elif item.started_at < window.until and (
            item.ended_at is None or item.ended_at >= window.until
        ):
            still_open += 1
    return DurationSummary(
        completed=len(durations),
        open=still_open,
        p50_seconds=percentile(durations, 50),
        p90_seconds=percentile(durations, 90),
        max_seconds=max(durations) if durations else None,
    )


@dataclass(frozen=True, slots=True)
class Rate:
    succeeded: int
    total: int

    @property
    def value(self) -> float | None:
        return None if self.total == 0 else self.succeeded / self.total

    def to_json(self) -> dict[str, Any]:
        return {"succeeded": self.succeeded, "total": self.total, "rate": self.value}


def case_sync_outcomes(hops: Iterable[HopRecord]) -> list[tuple[HopRecord, bool]]:
    """Each case-to-ERP sync (one operation of one correlation) with its final outcome.

    A sync is an outbound call or workflow step to the ERP made for a case; retries of the
    same operation in the same correlation are one sync, decided by its latest record.
    """
    latest: dict[tuple[str, str], HopRecord] = {}
    for hop in hops:
        if hop.system != "erp" or not hop.case_id:
            continue
        if hop.kind not in {"outbound_call", "workflow_step"}:
            continue
        key = (hop.correlation_id or f"seq:{hop.seq}", hop.operation)
        current = latest.get(key)
        if current is None or (hop.at, hop.seq) >= (current.at, current.seq):
            latest[key] = hop
    return [(hop, hop.status in OK_STATUSES) for hop in latest.values()]


def case_sync_rate(outcomes: Iterable[tuple[HopRecord, bool]], window: Window) -> Rate:
    decided = [ok for hop, ok in outcomes if hop.at in window]
    return Rate(succeeded=sum(decided), total=len(decided))


@dataclass(frozen=True, slots=True)
class InterventionVolume:
    opened: int
    resolved: int
    open_at_end: int

    def to_json(self) -> dict[str, Any]:
        return {"opened": self.opened, "resolved": self.resolved, "open_at_end": self.open_at_end}


def intervention_volume(
    exceptions: Iterable[ExceptionRecord], window: Window
) -> InterventionVolume:
    """Exceptions opened and closed (resolved or discarded) in the window; open at its end."""
    opened = resolved = still_open = 0
    for item in exceptions:
        if item.opened_at in window:
            opened += 1
        if item.closed_at is not None and item.closed_at in window:
            resolved += 1
        if item.opened_at < window.until and (
            item.closed_at is None or item.closed_at >= window.until
        ):
            still_open += 1
    return InterventionVolume(opened=opened, resolved=resolved, open_at_end=still_open)


def drift_counts(drifts: Iterable[DriftRecord], window: Window) -> dict[str, int]:
    """Drift rows found by reconciliation runs that finished in the window, per job."""
    counts: dict[str, int] = defaultdict(int)
    for run in drifts:
        if run.finished_at in window:
            counts[run.job] += run.drift_count
    return dict(sorted(counts.items()))


@dataclass(frozen=True, slots=True)
class KpiGroup:
    """The KPIs of one channel or region (``value`` None: the item's dimension is unknown)."""

    value: str | None
    durations: Mapping[Measure, DurationSummary]
    case_sync: Rate

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            **{measure.value: summary.to_json() for measure, summary in self.durations.items()},
            "case_to_erp_sync": self.case_sync.to_json(),
        }


@dataclass(frozen=True, slots=True)
class KpiReport:
    window: Window
    group_by: GroupBy
    overall: KpiGroup
    groups: tuple[KpiGroup, ...]
    manual_intervention: InterventionVolume
    reconciliation_drift: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "window": {
                "since": self.window.since.isoformat(),
                "until": self.window.until.isoformat(),
            },
            "group_by": self.group_by,
            "percentile_method": "nearest-rank",
            "overall": self.overall.to_json(),
            "groups": [group.to_json() for group in self.groups],
            "manual_intervention": self.manual_intervention.to_json(),
            "reconciliation_drift": dict(self.reconciliation_drift),
        }


def compute_kpis(
    inputs: KpiInputs,
    window: Window,
    *,
    group_by: GroupBy = None,
    settings: KpiSettings | None = None,
) -> KpiReport:
    """Every KPI for ``window``, overall and per channel or region."""
    if group_by not in (None, "channel", "region"):
        raise KpiQueryInvalid(f"group_by must be 'channel' or 'region', got {group_by!r}")
    intervals = build_intervals(inputs, settings)
    outcomes = case_sync_outcomes(inputs.hops)
    order_dims: dict[str, tuple[str | None, str | None]] = {}
    for items in intervals.values():
        for item in items:
            if item.order_id and (item.channel or item.region):
                order_dims[item.order_id] = (item.channel, item.region)

    def group(value: str | None, keep: Any) -> KpiGroup:
        return KpiGroup(
            value=value,
            durations={
                measure: summarise([i for i in items if keep(i.dimension(group_by))], window)
                for measure, items in intervals.items()
            },
            case_sync=case_sync_rate(
                [(hop, ok) for hop, ok in outcomes if keep(_hop_dimension(hop, group_by))],
                window,
            ),
        )

    def _hop_dimension(hop: HopRecord, by: GroupBy) -> str | None:
        channel, region = order_dims.get(hop.order_id or "", (None, None))
        return channel if by == "channel" else region if by == "region" else None

    groups: list[KpiGroup] = []
    if group_by is not None:
        values = {i.dimension(group_by) for items in intervals.values() for i in items}
        values |= {_hop_dimension(hop, group_by) for hop, _ in outcomes}
        for value in sorted(values, key=lambda v: (v is None, v or "")):
            groups.append(group(value, lambda v, value=value: v == value))
    return KpiReport(
        window=window,
        group_by=group_by,
        overall=group(None, lambda _v: True),
        groups=tuple(groups),
        manual_intervention=intervention_volume(inputs.exceptions, window),
        reconciliation_drift=drift_counts(inputs.drifts, window),
    )
