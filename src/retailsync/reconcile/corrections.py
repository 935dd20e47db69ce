"""Turn decided drifts into correction events and exception tickets, with derived ids.

Ids are derived from the job's scope, the key, the target system and the target value (and
the observed values), never random: re-running a reconciliation that finds the same drift
makes the same event id, which the bus absorbs as a duplicate, and the same ticket id, which
the exception queue keeps as one entry.

A status correction names the storefront order it is for in its CloudEvents ``subject``
(``storefront-order/<the storefront's order id>``): the canonical id is derived from that id
and cannot be turned back into it, and the payload carries canonical ids only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from retailsync.domain.catalogue import (
    InventoryAdjusted,
    InventoryPositionReported,
    OrderCreated,
    OrderStatusChanged,
    build_event,
)
from retailsync.domain.events import CloudEvent
from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.domain.inventory import AdjustmentReason, InventoryAdjustment, InventoryPosition
from retailsync.reconcile.drift import (
    Drift,
    LevelCorrection,
    OrderResend,
    OrderStatusCorrection,
    StockAdjustmentCorrection,
)
from retailsync.reconcile.policy import Action

__all__ = [
    "CORRECTION_SOURCE",
    "STOREFRONT_LEVEL_REPORTER",
    "STOREFRONT_ORDER_SUBJECT",
    "DriftTicket",
    "correction_event",
    "correction_id",
    "storefront_order_ref",
    "ticket_for",
]

CORRECTION_SOURCE = "urn:retailsync:reconcile"
"""CloudEvents ``source`` of every correction; consumers that apply facts skip it."""

STOREFRONT_LEVEL_REPORTER = "reconcile:storefront"
"""``reported_by`` of a position that asks the storefront to publish its available units."""

STOREFRONT_ORDER_SUBJECT = "storefront-order/"
"""``subject`` prefix of a status correction, followed by the storefront's own order id."""


def storefront_order_ref(event: CloudEvent) -> str | None:
    """The storefront order id a status correction is for (None when it names none)."""
    subject = event.subject or ""
    if not subject.startswith(STOREFRONT_ORDER_SUBJECT):
        return None
    return subject[len(STOREFRONT_ORDER_SUBJECT) :] or None


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _fingerprint(drift: Drift) -> tuple[str, ...]:
    return tuple(f"{system}={value}" for system, value in sorted(drift.observed.items()))


def correction_id(scope: str, drift: Drift) -> str:
    """The event id of ``drift``'s correction: same scope, key, target and values, same id."""
    return (
        "rcn-"
        + _digest(
            scope,
            drift.kind.value,
            drift.key,
            drift.target or "",
            drift.expected or "",
            *_fingerprint(drift),
        )[:40]
    )


def correction_event(
    scope: str, drift: Drift, *, now: datetime, correlationid: str | None = None
) -> CloudEvent | None:
    """The event that corrects ``drift`` in its target system; None unless it is a correction."""
    if drift.action is not Action.CORRECT or drift.correction is None:
        return None
    event_id = correction_id(scope, drift)
    fix = drift.correction
    subject: str | None = None
    if isinstance(fix, StockAdjustmentCorrection):
        payload: (
            InventoryAdjusted | InventoryPositionReported | OrderCreated | OrderStatusChanged
        ) = InventoryAdjusted(
            adjustment=InventoryAdjustment(
                id=derive_id(EntityKind.INVENTORY_ADJUSTMENT, "reconcile", event_id),
                sku=fix.sku,
                location=fix.location,
                delta=fix.delta,
                reason=AdjustmentReason.CYCLE_COUNT,
                reference=f"reconcile {scope} to {fix.target_on_hand}"[:200],
                occurred_at=now,
            )
        )
    elif isinstance(fix, LevelCorrection):
        payload = InventoryPositionReported(
            position=InventoryPosition(
                sku=fix.sku,
                location=fix.location,
                on_hand=fix.available,
                reserved=0,
                allocated=0,
                in_transit=0,
                as_of=now,
            ),
            reported_by=STOREFRONT_LEVEL_REPORTER,
        )
    elif isinstance(fix, OrderResend):
        payload = OrderCreated(order=fix.order)
    elif isinstance(fix, OrderStatusCorrection):
        payload = OrderStatusChanged(
            order_id=fix.order_id,
            version=fix.version,
            from_status=fix.from_status,
            to_status=fix.to_status,
            changed_at=now,
            reason="reconciliation: the ERP's status",
        )
        subject = f"{STOREFRONT_ORDER_SUBJECT}{fix.order_ref}"
    else:  # pragma: no cover - exhaustive
        raise TypeError(f"unknown correction {fix!r}")
    return build_event(
        payload,
        source=CORRECTION_SOURCE,
        subject=subject,
        id=event_id,
        time=now,
        correlationid=correlationid,
    )


@dataclass(frozen=True, slots=True)
class DriftTicket:
    """An exception for a person: what differs, where, who should look, and the run that saw it."""

    id: str
    job: str
    scope: str
    run_id: str
    kind: str
    key: str
    assignee: str
    summary: str
    observed: dict[str, str]
    opened_at: datetime


def ticket_for(scope: str, run_id: str, drift: Drift, *, now: datetime) -> DriftTicket | None:
    """The exception ticket for ``drift`` (None unless the policy sends it to a person)."""
    if drift.action is not Action.EXCEPTION:
        return None
    ticket_id = "rex-" + _digest(scope, drift.kind.value, drift.key, *_fingerprint(drift))[:40]
    return DriftTicket(
        id=ticket_id,
        job=drift.kind.job,
        scope=scope,
        run_id=run_id,
        kind=drift.kind.value,
        key=drift.key,
        assignee=drift.assignee,
        summary=drift.detail,
        observed=dict(drift.observed),
        opened_at=now,
    )
