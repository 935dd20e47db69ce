"""Process API: start refunds, returns, replacements and cancellations; follow and steer them.

``POST /process/{kind}`` needs an ``Idempotency-Key``: the key (per client) *is* the workflow
id, so the same key returns the same workflow and never starts a second one. ``GET`` returns
the state with the step history; ``POST .../approve`` and ``.../reject`` answer a refund that
waits for a person (scope ``process:approve``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request, Response
from pydantic import BaseModel, Field

from retailsync.api.auth import require_scope
from retailsync.api.problems import ProblemError, problem_responses
from retailsync.api.scopes import Principal, Scope
from retailsync.domain.identifiers import EntityKind, is_valid_id
from retailsync.observability.correlation import joined_correlation
from retailsync.observability.instrument import record_inbound
from retailsync.observability.tracecontext import normalise_correlation_id
from retailsync.workflows.errors import NotAwaitingApproval, WorkflowNotFound
from retailsync.workflows.process import ProcessKind, workflow_id_for
from retailsync.workflows.runtime import is_launched
from retailsync.workflows.service import decide, process_status, start_process


def _workflows_running() -> None:
    if not is_launched():
        raise ProblemError(
            503,
            "workflows-not-running",
            "Durable workflows are not running in this process; start the hub with "
            "`retailsync serve` (embedded) or run `retailsync worker` processes (scale-out).",
            title="Workflows not running",
            headers={"Retry-After": "30"},
        )


router = APIRouter(
    prefix="/process",
    tags=["process"],
    responses=problem_responses(404, 409, 503),
)

PUBLIC_KINDS = (
    ProcessKind.REFUND,
    ProcessKind.RETURN,
    ProcessKind.REPLACEMENT,
    ProcessKind.CANCELLATION,
    ProcessKind.FULFILLMENT,
)
KindPath = Annotated[
    str, Path(pattern="^(refunds|returns|replacements|cancellations|fulfillments)$")
]


class ProcessStarted(BaseModel):
    workflow_id: str
    kind: str
    created: bool = Field(description="False when this Idempotency-Key already named a workflow")
    status_url: str


class Decision(BaseModel):
    reason: str | None = Field(default=None, max_length=200)


def _idempotency_key(request: Request) -> str:
    key = request.headers.get("Idempotency-Key")
    if not key:
        raise ProblemError(
            400,
            "idempotency-key-required",
            "Starting a process needs an Idempotency-Key header: the key names the workflow, "
            "so a retried request finds the same workflow instead of starting a second one.",
            title="Idempotency-Key required",
        )
    return key


def _not_found(exc: WorkflowNotFound) -> ProblemError:
    return ProblemError(404, "workflow-not-found", str(exc), title="No such workflow")


@router.post("/{kind}", status_code=202, response_model=ProcessStarted)
async def start(
    kind: KindPath,
    request: Request,
    response: Response,
    body: Annotated[dict[str, Any], Body()],
    principal: Annotated[Principal, require_scope(Scope.PROCESS_WRITE)],
) -> ProcessStarted:
    """Start a process; the same Idempotency-Key returns the same workflow."""
    _workflows_running()
    arrived_at = datetime.now(UTC)
    workflow_id = workflow_id_for(kind, principal.client_id, _idempotency_key(request))
    order_id = body.get("order_id")
    order_id = (
        order_id if isinstance(order_id, str) and is_valid_id(order_id, EntityKind.ORDER) else None
    )
    # The caller's trace, else the one the order's journey already has, else this request's.
    correlation = normalise_correlation_id(
        request.headers.get("traceparent")
    ) or normalise_correlation_id(body.get("correlation_id"))
    if correlation is None:
        correlation = await joined_correlation(order_id=order_id)
    payload = {
        "requested_at": arrived_at.isoformat(),
        "requested_by": principal.name,
        **body,
        "correlation_id": correlation,
    }
    _validate(kind, payload)
    created = await start_process(kind, workflow_id, payload)
    await record_inbound(
        "process-api",
        f"start {kind}",
        "accepted" if created else "duplicate",
        correlation=correlation,
        order_id=order_id,
        detail={"workflow_id": workflow_id, "client": principal.name},
        at=arrived_at,
    )
    url = f"{request.url.path.rstrip('/')}/{workflow_id}"
    response.headers["Location"] = url
    return ProcessStarted(workflow_id=workflow_id, kind=kind, created=created, status_url=url)


def _validate(kind: str, payload: dict[str, Any]) -> None:
    from pydantic import ValidationError

    from retailsync.workflows.requests import ProcessNotAvailable, request_model

    try:
        request_model(kind).model_validate(payload)
    except ProcessNotAvailable as exc:
        raise ProblemError(
            501, "process-not-available", str(exc), title="Process not available"
        ) from None
    except ValidationError as exc:
        raise ProblemError(
            422,
            "invalid-process-request",
            f"The {kind} request is not valid: "
            + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()),
            title="Invalid process request",
        ) from None


@router.get("/{kind}/{workflow_id}")
async def status(
    kind: KindPath,
    workflow_id: str,
    _principal: Annotated[Principal, require_scope(Scope.PROCESS_WRITE)],
) -> dict[str, Any]:
    """State, trace and step history of one process."""
    _workflows_running()
    try:
        return await process_status(workflow_id)
    except WorkflowNotFound as exc:
        raise _not_found(exc) from None


async def _decide(
    workflow_id: str, approve: bool, principal: Principal, request: Request, reason: str | None
) -> dict[str, Any]:
    _workflows_running()
    try:
        message = await decide(workflow_id, approve=approve, by=principal.name, reason=reason)
    except WorkflowNotFound as exc:
        raise _not_found(exc) from None
    except NotAwaitingApproval as exc:
        raise ProblemError(
            409, "not-awaiting-approval", str(exc), title="Not awaiting approval", state=exc.state
        ) from None
    hub = getattr(request.app.state, "hub", None)
    if hub is not None:
        from retailsync.audit import record_audit

        with hub.engine.begin() as connection:
            record_audit(
                connection,
                actor=principal.actor,
                action=f"refund.{message['decision']}d",
                entity_kind="workflow",
                entity_id=workflow_id,
                before=None,
                after=message,
                correlation_id=normalise_correlation_id(request.headers.get("traceparent")),
                reason=reason,
            )
    return {"workflow_id": workflow_id, **message}


@router.post("/{kind}/{workflow_id}/approve", status_code=202)
async def approve(
    kind: KindPath,
    workflow_id: str,
    request: Request,
    principal: Annotated[Principal, require_scope(Scope.PROCESS_APPROVE)],
    decision: Decision | None = None,
) -> dict[str, Any]:
    """Approve a refund that waits for a person."""
    _workflows_running()
    return await _decide(
        workflow_id, True, principal, request, decision.reason if decision else None
    )


@router.post("/{kind}/{workflow_id}/reject", status_code=202)
async def reject(
    kind: KindPath,
    workflow_id: str,
    request: Request,
    principal: Annotated[Principal, require_scope(Scope.PROCESS_APPROVE)],
    decision: Decision | None = None,
) -> dict[str, Any]:
    """Reject a refund that waits for a person; no money moves."""
    _workflows_running()
    return await _decide(
        workflow_id, False, principal, request, decision.reason if decision else None
    )
