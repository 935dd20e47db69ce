"""Cancellation: stop an order before it ships, or turn it into a return once it has.

read the order in the ERP -> (shipped) start a return-to-refund for what shipped and say so ->
(not shipped) stop the warehouse's pick -> cancel the order in the ERP -> void the payment
authorization, or refund what was captured -> show it in the storefront -> tell the case.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dbos import DBOS, SetWorkflowID
from pydantic import BaseModel, Field

from retailsync.domain.catalogue import OrderCancelled
from retailsync.domain.identifiers import EntityKind, is_valid_id
from retailsync.workflows import steps
from retailsync.workflows.process import ProcessKind, ProcessRun, now_iso

Json = dict[str, Any]


class CancellationRequest(BaseModel):
    """Cancel this order (and its pick task, when the caller knows it)."""

    order_id: str
    payment_ref: str | None = None
    pick_task_id: str | None = Field(default=None, max_length=100)
    storefront_order_ref: str | None = Field(default=None, max_length=100)
    case_ref: str | None = None
    customer_id: str | None = None
    reason: str = Field(default="customer request", min_length=1, max_length=200)
    requested_by: str | None = None
    requested_at: datetime
    correlation_id: str | None = None


def return_workflow_id(workflow_id: str) -> str:
    """The id of the return-to-refund a cancellation of a shipped order turns into."""
    return f"{workflow_id}-return"


@DBOS.workflow(name="cancellation")
async def cancellation(request: Json) -> Json:
    """Cancel an order everywhere, or hand a shipped one to the return process."""
    req = CancellationRequest.model_validate(request)
    workflow_id = DBOS.workflow_id or ""
    run = ProcessRun(
        kind=ProcessKind.CANCELLATION,
        correlation_id=req.correlation_id or workflow_id,
        subject={"order_id": req.order_id, "case_ref": req.case_ref},
    )
    await run.state("checking")
    order = await run.run("read_erp_order", steps.read_erp_order, req.order_id)
    if not order["ok"]:
        return await _not_cancelled(run, req, f"order: {order['failure']['message']}")
    if order["value"]["status"] == "cancelled":
        return await run.finish("already_cancelled")
    if order["value"]["shipped"]:
        return await _turn_into_return(run, req, order["value"]["shipped_quantities"])

    if req.pick_task_id:
        pick = await run.run(
            "cancel_warehouse_pick",
            steps.cancel_warehouse_pick,
            run.key("cancel_warehouse_pick"),
            req.pick_task_id,
            req.reason,
        )
        if not pick["ok"]:
            failure = pick["failure"]
            if failure["kind"] == "business":
                return await _not_cancelled(
                    run, req, f"the warehouse could not stop the pick: {failure['message']}"
                )
            return await _failed(run, req, failure)
        run.on_failure_undo(
            "warehouse_pick",
            f"pick task {req.pick_task_id} is cancelled in the warehouse; release it again",
        )

    cancelled = await run.run(
        "cancel_erp_order", steps.cancel_erp_order, run.key("cancel_erp_order"), req.order_id
    )
    if not cancelled["ok"]:
        return await _failed(run, req, cancelled["failure"])
    run.compensations.clear()
    await run.state("cancelled_in_erp")

    money = await _release_payment(run, req, order["value"]["total"])
    if req.storefront_order_ref:
        await run.run(
            "update_storefront_status",
            steps.update_storefront_status,
            run.key("update_storefront_status"),
            req.storefront_order_ref,
            "cancelled",
            None,
            req.reason,
        )
    await run.audit(
        "audit_order_cancelled",
        "order.cancelled",
        "order",
        req.order_id,
        {"reason": req.reason, "payment": money},
    )
    await run.note(
        "note_case_cancelled",
        req.case_ref,
        f"Order cancelled before shipment ({req.reason}). Payment: {money['summary']}.",
        status="on_hold" if money["action"] == "finance_task" else "solved",
    )
    if is_valid_id(req.order_id, EntityKind.ORDER):
        await run.emit(
            "emit_order_cancelled",
            (
                f"retailsync.{OrderCancelled.event_name}",
                OrderCancelled(
                    order_id=req.order_id,
                    version=2,
                    reason=req.reason,
                    cancelled_at=datetime.fromisoformat(now_iso()),
                    cancelled_by=req.requested_by,
                ).model_dump(mode="json"),
            ),
        )
    outcome = "cancelled" if money["action"] != "finance_task" else "finance_exception"
    return await run.finish(outcome, payment=money)


async def _release_payment(run: ProcessRun, req: CancellationRequest, total: Json) -> Json:
    """Void an authorization, refund a capture (up to the order total), or nothing to do."""
    if not req.payment_ref:
        return {"action": "none", "summary": "no payment named"}
    payment = await run.run("read_payment", steps.read_payment, req.payment_ref)
    if not payment["ok"]:
        return _finance_task(payment["failure"])
    state = payment["value"]
    if state["voidable"]:
        voided = await run.run(
            "void_payment", steps.void_payment, run.key("void_payment"), req.payment_ref
        )
        if not voided["ok"]:
            return _finance_task(voided["failure"])
        return {"action": "voided", "summary": f"authorization {req.payment_ref} voided"}
    if not state["settled"]:
        return {"action": "none", "summary": f"nothing captured ({state['status']})"}
    refundable = steps.money_of(state["refundable"])
    order_total = steps.money_of(total)
    amount = order_total if order_total.currency == refundable.currency else refundable
    amount = min(amount, refundable)
    if amount.is_zero():
        return {"action": "none", "summary": "nothing left to refund"}
    refund_id = steps.derived_refund_id(run.workflow_id)
    paid = await run.run(
        "issue_refund",
        steps.issue_refund,
        run.key("issue_refund"),
        req.payment_ref,
        steps.money_json(amount),
        refund_id,
        req.order_id,
        "cancelled",
    )
    if not paid["ok"]:
        return _finance_task(paid["failure"])
    return {
        "action": "refunded",
        "amount": steps.money_json(amount),
        "refund_ref": paid["value"]["refund_ref"],
        "summary": f"{amount} refunded (ref {paid['value']['refund_ref']})",
    }


def _finance_task(failure: Json) -> Json:
    return {
        "action": "finance_task",
        "failure": failure,
        "summary": f"not released automatically ({failure['message']}); finance follows up",
    }


async def _turn_into_return(
    run: ProcessRun, req: CancellationRequest, shipped: dict[str, int]
) -> Json:
    """Too late to cancel: the shipped units come back through return-to-refund."""
    from retailsync.workflows.returns import return_to_refund

    if not req.payment_ref or not shipped:
        return await _not_cancelled(
            run, req, "the order has shipped; start a return for the shipped lines"
        )
    child_id = return_workflow_id(run.workflow_id)
    with SetWorkflowID(child_id):
        await DBOS.start_workflow_async(
            return_to_refund,
            {
                "order_id": req.order_id,
                "payment_ref": req.payment_ref,
                "lines": [
                    {"sku": sku, "quantity": units, "reason": "changed_mind"}
                    for sku, units in sorted(shipped.items())
                ],
                "case_ref": req.case_ref,
                "customer_id": req.customer_id,
                "requested_by": req.requested_by,
                "requested_at": req.requested_at.isoformat(),
                "correlation_id": run.correlation_id,
            },
        )
    await run.note(
        "note_case_turned_into_return",
        req.case_ref,
        f"The order has already shipped, so it cannot be cancelled; a return was started "
        f"instead ({child_id}). The refund follows when the parcel is back.",
    )
    return await run.finish("converted_to_return", return_workflow_id=child_id)


async def _not_cancelled(run: ProcessRun, req: CancellationRequest, reason: str) -> Json:
    await run.note("note_case_not_cancelled", req.case_ref, f"Order not cancelled: {reason}")
    return await run.finish("not_cancelled", reason=reason)


async def _failed(run: ProcessRun, req: CancellationRequest, failure: Json) -> Json:
    compensation = await run.compensate()
    await run.note(
        "note_case_failed",
        req.case_ref,
        f"Cancellation could not be completed ({failure['step']}: {failure['message']}); "
        "no money moved.",
        status="on_hold",
    )
    return await run.finish("failed", failure=failure, compensation_result=compensation)
