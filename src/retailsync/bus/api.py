"""``POST /v1/events``: ingest a batch of CloudEvents, durable before the answer.

Request: a JSON array of structured-mode CloudEvents (``application/json`` or
``application/cloudevents-batch+json``), at most the bus's ``max_batch_size``.
Responses:

- **202** every event is stored (``accepted`` now or ``duplicate`` of an earlier one):
  ``{"results": [{"index", "status", "source", "id", "sequence"}]}``.
- **207** some events were stored and some rejected: ``application/problem+json`` with
  ``errors[]`` (one per rejected index, with its field errors) and ``results[]`` for all.
- **422** no event was stored: ``application/problem+json`` with ``errors[]`` by index.
- **400** the body is not a JSON array; **413** the batch is larger than the limit.

The router reads the bus from ``request.app.state.bus`` (an ``EventBusBackend``). Events
without a ``correlationid`` get the request's (its ``traceparent`` trace id); each request is
one ``inbound`` hop of the trace store, and each event stored now counts in
``retailsync_events_ingested_total``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from retailsync.bus.backend import BusOptions, EventBusBackend, PublishOutcome, PublishStatus
from retailsync.bus.errors import BatchTooLarge
from retailsync.domain.events import CloudEvent
from retailsync.observability.instrument import record_inbound, trace_store
from retailsync.observability.tracecontext import correlation_id

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://retailsync.dev/problems/"

router = APIRouter(tags=["events"])

_EVENT_BATCH_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": CloudEvent.model_json_schema(),
    "maxItems": BusOptions().max_batch_size,
    "description": "CloudEvents 1.0 in structured mode (a single event object is accepted too)",
}


def _result(outcome: PublishOutcome) -> dict[str, Any]:
    body: dict[str, Any] = {"index": outcome.index, "status": outcome.status.value}
    if outcome.source is not None:
        body["source"] = outcome.source
    if outcome.id is not None:
        body["id"] = outcome.id
    if outcome.sequence is not None:
        body["sequence"] = outcome.sequence
    if outcome.errors:
        body["errors"] = [{"name": e.location, "reason": e.message} for e in outcome.errors]
    return body


def _problem(
    request: Request, status: int, problem: str, title: str, detail: str, **extra: Any
) -> JSONResponse:
    body = {
        "type": PROBLEM_BASE + problem,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _stamp_correlation(payload: list[Any]) -> None:
    """Events sent without a ``correlationid`` join the request's trace."""
    correlation = correlation_id()
    if correlation is None:
        return
    for item in payload:
        if isinstance(item, dict) and not item.get("correlationid"):
            item["correlationid"] = correlation


async def _record_batch(
    payload: list[Any], outcomes: list[PublishOutcome], stored: int, at: datetime
) -> None:
    """The request as one ``inbound`` hop: the batch's event type, outcome and order."""
    if trace_store() is None:
        return
    events = [
        payload[o.index]
        for o in outcomes
        if o.status is not PublishStatus.REJECTED and isinstance(payload[o.index], dict)
    ]
    types = sorted({str(item.get("type")) for item in payload if isinstance(item, dict)})
    accepted = sum(o.status is PublishStatus.ACCEPTED for o in outcomes)
    if stored == 0:
        status = "rejected"
    elif stored < len(outcomes):
        status = "partially_rejected"
    else:
        status = "accepted" if accepted else "duplicate"
    await record_inbound(
        "events-api",
        types[0] if len(types) == 1 else "batch",
        status,
        events=events,
        detail={
            "events": len(outcomes),
            "accepted": accepted,
            "duplicates": stored - accepted,
            "rejected": len(outcomes) - stored,
            "types": types[:20],
        },
        at=at,
    )


@router.post(
    "/v1/events",
    status_code=202,
    summary="Ingest a batch of CloudEvents (stored durably before the answer)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _EVENT_BATCH_SCHEMA}},
        }
    },
    responses={
        207: {"description": "Some events stored, some rejected (problem+json)"},
        400: {"description": "Body is not a JSON array"},
        413: {"description": "Batch larger than the limit"},
        422: {"description": "No event was valid (problem+json)"},
    },
)
async def ingest_events(request: Request) -> JSONResponse:
    received_at = datetime.now(UTC)
    bus: EventBusBackend = request.app.state.bus
    try:
        payload = json.loads(await request.body())
    except ValueError as exc:
        return _problem(
            request, 400, "invalid-json", "Body is not JSON", f"could not parse the body: {exc}"
        )
    if isinstance(payload, dict) and "specversion" in payload:
        payload = [payload]
    if not isinstance(payload, list):
        return _problem(
            request,
            400,
            "not-a-batch",
            "Body is not a batch of events",
            "send a JSON array of CloudEvents (structured mode), e.g. [{...}, {...}]",
        )
    _stamp_correlation(payload)
    try:
        outcomes = await bus.publish(payload)
    except BatchTooLarge as exc:
        return _problem(
            request, 413, "batch-too-large", "Batch too large", str(exc), limit=exc.limit
        )
    results = [_result(o) for o in outcomes]
    rejected = [
        r for r, o in zip(results, outcomes, strict=True) if o.status is PublishStatus.REJECTED
    ]
    stored = len(outcomes) - len(rejected)
    await _record_batch(payload, outcomes, stored, received_at)
    if not rejected:
        return JSONResponse({"results": results}, status_code=202)
    errors = [{"index": r["index"], "errors": r["errors"]} for r in rejected]
    if stored == 0:
        return _problem(
            request,
            422,
            "invalid-events",
            "No valid event in the batch",
            f"all {len(rejected)} events were rejected; see errors[] by index",
            errors=errors,
        )
    return _problem(
        request,
        207,
        "partially-rejected-events",
        "Some events were rejected",
        f"{stored} events stored, {len(rejected)} rejected; see errors[] by index",
        errors=errors,
        results=results,
    )
