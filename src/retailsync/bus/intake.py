"""Inbound data that could not become a canonical event, recorded in the exception queue.

A webhook payload that cannot be mapped, or a CSV row with a bad value, is a data problem for a
person: it is stored (raw content included) as an exception entry of subscriber
``intake:<system>``, classified ``business``, so nothing received is dropped silently. Such an
entry has no event to redeliver; it is resolved (after the source is fixed and resent) or
discarded, never retried from here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from retailsync.bus import tables as t
from retailsync.bus.backend import Classification, ExceptionStatus
from retailsync.domain.events import CloudEvent
from retailsync.observability import metrics as hub_metrics

INTAKE_PREFIX = "intake:"
INTAKE_EVENT_TYPE = "retailsync.intake.rejected"


def is_intake_subscriber(subscriber: str) -> bool:
    return subscriber.startswith(INTAKE_PREFIX)


def record_intake_failure(
    engine: Engine,
    system: str,
    failure: Any = None,
    *,
    reference: str | None = None,
    reason: str | None = None,
    raw: str | bytes | None = None,
    correlation_id: str | None = None,
) -> bool:
    """Store one rejected inbound item once (by system + reference); True when newly stored.

    ``failure`` may be an object with ``error_id``, ``reason`` and ``raw`` attributes (a CSV
    ``RowError``); otherwise pass ``reference``, ``reason`` and ``raw``.
    """
    if failure is not None:
        reference = reference or str(failure.error_id)
        reason = reason or str(failure.reason)
        raw = raw if raw is not None else getattr(failure, "raw", None)
        detail = {
            key: getattr(failure, key)
            for key in ("file_name", "row_number")
            if hasattr(failure, key)
        }
    else:
        detail = {}
    if not reference or not reason:
        raise ValueError("an intake failure needs a reference (delivery or row id) and a reason")
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else (raw or "")
    now = datetime.now(UTC)
    source = f"urn:retailsync:intake:{system}"
    envelope = CloudEvent.new(
        type=INTAKE_EVENT_TYPE,
        source=source,
        id=reference,
        subject=reference,
        correlationid=correlation_id,
        data={"system": system, "reason": reason, "raw": text[:100_000], **detail},
        time=now,
    )
    subscriber = f"{INTAKE_PREFIX}{system}"
    with engine.begin() as conn:
        exists = conn.execute(
            sa.select(t.exceptions.c.id).where(
                t.exceptions.c.subscriber == subscriber,
                t.exceptions.c.event_source == source,
                t.exceptions.c.event_id == reference,
            )
        ).first()
        if exists is not None:
            return False
        conn.execute(
            t.exceptions.insert().values(
                subscriber=subscriber,
                event_source=source,
                event_id=reference,
                event_type=INTAKE_EVENT_TYPE,
                partition_key=reference,
                correlation_id=correlation_id,
                sequence=0,
                system=system,
                classification=Classification.BUSINESS.value,
                status=ExceptionStatus.OPEN.value,
                error_type="retailsync.intake.Rejected",
                error_message=reason[:4000],
                history=json.dumps([]),
                manual_retry_count=0,
                envelope=envelope.model_dump_json(exclude_none=True),
                created_at=now,
                updated_at=now,
            )
        )
    hub_metrics.event_dead_lettered(INTAKE_EVENT_TYPE, subscriber)
    return True
