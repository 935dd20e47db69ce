"""What every workflow shares: its visible state, its trace, compensation and the way it ends.

:class:`ProcessRun` keeps the trace of one workflow run (every step with its outcome), publishes
the current state as the DBOS event ``state`` (the process API reads it), remembers how to undo
each effect (compensation, in reverse), and builds the final JSON result. Everything here runs
inside the workflow body and is deterministic; the effects are in :mod:`steps`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dbos import DBOS

from retailsync.observability import metrics
from retailsync.observability.instrument import observe_workflow_step
from retailsync.workflows import steps
from retailsync.workflows.runtime import current_runtime

Json = dict[str, Any]
StepCall = Callable[..., Awaitable[Json]]

STATE_EVENT = "state"
APPROVAL_TOPIC = "approval"


class ProcessKind:
    """Workflow kinds, also the path segment of the process API and the workflow id prefix."""

    REFUND = "refunds"
    RETURN = "returns"
    REPLACEMENT = "replacements"
    CANCELLATION = "cancellations"
    FULFILLMENT = "fulfillments"

    ALL = (REFUND, RETURN, REPLACEMENT, CANCELLATION, FULFILLMENT)


def workflow_id_for(kind: str, client_id: str, idempotency_key: str) -> str:
    """The workflow id an ``Idempotency-Key`` maps to: same client + key -> same workflow."""
    digest = hashlib.sha256(f"{kind}\x1f{client_id}\x1f{idempotency_key}".encode()).hexdigest()
    return f"{kind.rstrip('s')}-{digest[:26]}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Compensation:
    """How to undo one effect: a step to run, or a finance task for a person."""

    effect: str
    undo: str
    step: StepCall | None = None
    args: tuple[Any, ...] = ()


@dataclass
class ProcessRun:
    """The running workflow's trace, state and compensation stack."""

    kind: str
    correlation_id: str
    subject: Json
    trace: list[Json] = field(default_factory=list)
    compensations: list[Compensation] = field(default_factory=list)
    state_name: str = "started"
    details: Json = field(default_factory=dict)

    @property
    def workflow_id(self) -> str:
        workflow_id = DBOS.workflow_id
        assert workflow_id is not None, "ProcessRun used outside a workflow"
        return workflow_id

    def key(self, step_name: str) -> str:
        """``f"{workflow_id}:{step_name}"``: the idempotency key of one step."""
        return f"{self.workflow_id}:{step_name}"

    async def state(self, name: str, **details: Any) -> None:
        """Move to ``name`` and publish it (``DBOS.set_event``) for the process API."""
        self.state_name = name
        self.details.update(details)
        self.trace.append({"state": name, **({"details": details} if details else {})})
        await DBOS.set_event_async(STATE_EVENT, self.snapshot())

    def snapshot(self) -> Json:
        return {
            "kind": self.kind,
            "state": self.state_name,
            "subject": self.subject,
            "correlation_id": self.correlation_id,
            "details": self.details,
            "trace": self.trace,
            "compensation": [{"effect": c.effect, "undo": c.undo} for c in self.compensations],
        }

    async def run(self, name: str, step: StepCall, *args: Any) -> Json:
        """Run one step (through the ERP queue when ``name`` is ERP-bound), observe it (span,
        step metrics, a hop in the order's trace) and trace it."""
        async with observe_workflow_step(
            self.kind,
            name,
            workflow_id=self.workflow_id,
            correlation_id=self.correlation_id,
            order_id=self.subject.get("order_id"),
            case_id=self.subject.get("case_ref"),
            system=steps.system_of(step),
        ) as observed:
            outcome: Json = dict(observed.outcome(await steps.run_step(name, step, *args)))
        entry: Json = {"step": name, "ok": outcome["ok"]}
        if outcome["ok"]:
            entry["value"] = outcome["value"]
        else:
            entry["failure"] = outcome["failure"]
        self.trace.append(entry)
        return outcome

    def on_failure_undo(
        self, effect: str, undo: str, step: StepCall | None = None, *args: Any
    ) -> None:
        """Remember how to undo ``effect`` should a later step fail permanently."""
        self.compensations.append(Compensation(effect, undo, step, args))

    async def compensate(self) -> list[Json]:
        """Undo what can be undone, newest first; what cannot becomes a task for finance."""
        results: list[Json] = []
        while self.compensations:
            item = self.compensations.pop()
            if item.step is None:
                results.append({"effect": item.effect, "undo": item.undo, "done": False})
                continue
            outcome = await self.run(f"compensate:{item.effect}", item.step, *item.args)
            results.append(
                {
                    "effect": item.effect,
                    "undo": item.undo,
                    "done": outcome["ok"],
                    **({} if outcome["ok"] else {"failure": outcome["failure"]}),
                }
            )
        return results

    async def emit(self, step_name: str, *events: tuple[str, Json]) -> None:
        """Publish canonical events (type, data) in one step; ids derive from the step key."""
        payload = [{"type": event_type, "data": data} for event_type, data in events]
        await self.run(
            step_name, steps.publish_events, self.key(step_name), payload, self.correlation_id
        )

    async def note(
        self, step_name: str, case_ref: str | None, body: str, status: str | None = None
    ) -> Json | None:
        """Write to the service case (when the request names one)."""
        if not case_ref:
            return None
        return await self.run(
            step_name, steps.note_case, self.key(step_name), case_ref, body, status
        )

    async def audit(
        self,
        step_name: str,
        action: str,
        entity_kind: str,
        entity_id: str,
        after: Json | None,
        reason: str | None = None,
    ) -> None:
        await self.run(
            step_name,
            steps.record_audit_step,
            self.key(step_name),
            action,
            entity_kind,
            entity_id,
            after,
            self.correlation_id,
            reason,
        )

    async def finish(self, outcome: str, **details: Any) -> Json:
        """End the workflow in ``outcome`` (completed, rejected, failed, finance_exception...)."""
        await self.state(outcome, **details)
        metrics.workflow_finished(self.kind, outcome)
        steps.step_boundary()
        return {"workflow_id": self.workflow_id, **self.snapshot()}


def policies() -> Any:
    return current_runtime().options
