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

The router reads the bus from ``request.app.state.bus`` (an ``EventBusBackend``).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from retailsync.bus.backend import BusOptions, EventBusBackend, PublishOutcome, PublishStatus
from retailsync.bus.errors import BatchTooLarge
from retailsync.domain.events import CloudEvent

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
    if not rejected:
        return JSONResponse({"results": results}, status_code=202)
    stored = len(outcomes) - len(rejected)
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
