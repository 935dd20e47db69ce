"""Start, inspect and steer workflows: what the process API and the CLI call.

Starting is idempotent on the workflow id (the same id never starts a second run); the status
combines DBOS's record (status, executor, version) with the state the workflow publishes and
its step history, all as plain JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from dbos import DBOS, SetWorkflowID

from retailsync.observability import metrics
from retailsync.workflows.errors import NotAwaitingApproval, WorkflowNotFound
from retailsync.workflows.process import APPROVAL_TOPIC, STATE_EVENT, ProcessKind
from retailsync.workflows.runtime import current_runtime

Json = dict[str, Any]
WAITING_STATES = frozenset({"awaiting_approval", "escalated"})


def workflow_for(kind: str) -> Callable[[Json], Coroutine[Any, Any, Json]]:
    """The workflow function that serves ``kind`` (``refunds``, ``returns``, ...)."""
    import importlib

    table: dict[str, tuple[str, str]] = {
        ProcessKind.REFUND: ("refund", "service_refund"),
        ProcessKind.RETURN: ("returns", "return_to_refund"),
        ProcessKind.REPLACEMENT: ("replacement", "replacement"),
        ProcessKind.CANCELLATION: ("cancellation", "cancellation"),
        ProcessKind.FULFILLMENT: ("fulfillment", "order_to_fulfillment"),
    }
    if kind not in table:
        raise ValueError(f"unknown process {kind!r}; known: {sorted(table)}")
    module, name = table[kind]
    function: Callable[[Json], Coroutine[Any, Any, Json]] = getattr(
        importlib.import_module(f"retailsync.workflows.{module}"), name
    )
    return function


async def start_process(kind: str, workflow_id: str, request: Json) -> bool:
    """Start ``kind`` as ``workflow_id`` unless it exists; True when this call started it.

    On PostgreSQL the run goes on the shared process queue (any worker may run it); on SQLite
    it starts in this process.
    """
    runtime = current_runtime()
    existing = await DBOS.get_workflow_status_async(workflow_id)
    if existing is not None:
        return False
    function = workflow_for(kind)
    with SetWorkflowID(workflow_id):
        if runtime.settings.is_sqlite or runtime.process_queue is None:
            await DBOS.start_workflow_async(function, request)
        else:
            await runtime.process_queue.enqueue_async(function, request)
    metrics.workflow_started(kind)
    return True


async def process_status(workflow_id: str, *, with_steps: bool = True) -> Json:
    """Status, published state and step history of one workflow, as JSON."""
    status = await DBOS.get_workflow_status_async(workflow_id)
    if status is None:
        raise WorkflowNotFound(workflow_id)
    state = await DBOS.get_event_async(workflow_id, STATE_EVENT, timeout_seconds=0)
    result: Json = {
        "workflow_id": workflow_id,
        "workflow": status.name,
        "status": status.status,
        "executor_id": status.executor_id,
        "application_version": status.app_version,
        "created_at": status.created_at,
        "updated_at": status.updated_at,
        "state": (state or {}).get("state", "queued" if status.status == "ENQUEUED" else None),
        "details": (state or {}).get("details", {}),
        "trace": (state or {}).get("trace", []),
        "output": status.output if status.status == "SUCCESS" else None,
        "error": str(status.error) if status.error is not None else None,
    }
    if with_steps:
        step_rows = await DBOS.list_workflow_steps_async(workflow_id) or []
        result["steps"] = [
            {
                "function_id": row["function_id"],
                "name": row["function_name"],
                "output": row.get("output"),
                "error": str(row["error"]) if row.get("error") is not None else None,
                "child_workflow_id": row.get("child_workflow_id"),
            }
            for row in step_rows
        ]
    return result


async def decide(workflow_id: str, *, approve: bool, by: str, reason: str | None = None) -> Json:
    """Send an approve/reject to a refund waiting for one; refuses when it is not waiting."""
    status = await process_status(workflow_id, with_steps=False)
    if status["state"] not in WAITING_STATES or status["status"] not in {"PENDING", "ENQUEUED"}:
        raise NotAwaitingApproval(workflow_id, str(status["state"] or status["status"]))
    message = {"decision": "approve" if approve else "reject", "by": by, "reason": reason}
    await DBOS.send_async(workflow_id, message, topic=APPROVAL_TOPIC)
    return message


async def list_processes(
    *, status: str | None = None, limit: int = 50, executor_id: str | None = None
) -> list[Json]:
    """Recent workflows (newest first), without the step history."""
    rows = await DBOS.list_workflows_async(
        status=status,
        limit=limit,
        sort_desc=True,
        executor_id=executor_id,
        load_input=False,
        load_output=False,
    )
    return [
        {
            "workflow_id": row.workflow_id,
            "workflow": row.name,
            "status": row.status,
            "executor_id": row.executor_id,
            "application_version": row.app_version,
            "created_at": row.created_at,
        }
        for row in rows
    ]


async def process_result(workflow_id: str) -> Json:
    """Wait for the workflow to end and return its result."""
    handle: Any = await DBOS.retrieve_workflow_async(workflow_id)
    result: Json = await handle.get_result()
    return result
