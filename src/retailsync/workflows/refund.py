"""Service-initiated refund: an agent refunds a damaged item that does not come back.

validate the order in the ERP -> check the payment is settled -> evaluate the refund policy ->
(above the threshold) wait for a person, escalating when nobody answers -> post the credit note
in the ERP -> refund at the payment service -> update the case -> emit events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dbos import DBOS
from pydantic import BaseModel, Field

from retailsync.domain.catalogue import (
    CreditNotePosted,
    RefundApproved,
    RefundCompleted,
    RefundFailed,
    RefundRejected,
    RefundRequested,
)
from retailsync.domain.identifiers import EntityKind, is_valid_id
from retailsync.domain.money import Money
from retailsync.domain.policies import RefundFacts, Verdict, evaluate_refund
from retailsync.domain.refunds import Refund, RefundStatus
from retailsync.workflows import steps
from retailsync.workflows.process import APPROVAL_TOPIC, ProcessKind, ProcessRun, now_iso
from retailsync.workflows.runtime import current_runtime

Json = dict[str, Any]


class RefundLine(BaseModel):
    sku: str = Field(min_length=1, max_length=100)
    quantity: int = Field(ge=1, le=1_000_000)


class MoneyIn(BaseModel):
    amount: str = Field(pattern=r"^\d+(\.\d+)?$")
    currency: str = Field(min_length=3, max_length=3)

    def money(self) -> Money:
        return Money.of(self.amount, self.currency)


class ServiceRefundRequest(BaseModel):
    """What an agent asks for: refund these lines of this order, paid with this payment."""

    order_id: str
    payment_ref: str
    amount: MoneyIn
    lines: list[RefundLine] = Field(min_length=1, max_length=1000)
    reason: str = Field(default="damaged", min_length=1, max_length=200)
    case_ref: str | None = None
    requested_by: str | None = None
    requested_at: datetime
    ordered_at: datetime | None = None
    fraud_flag: bool = False
    correlation_id: str | None = None


def _case_id(case_ref: str | None) -> str | None:
    return case_ref if case_ref and is_valid_id(case_ref, EntityKind.CASE) else None


def _ev(payload: Any) -> tuple[str, Json]:
    return f"retailsync.{payload.event_name}", payload.model_dump(mode="json")


@DBOS.workflow(name="service_refund")
async def service_refund(request: Json) -> Json:
    """Refund a damaged item without a return shipment, end to end."""
    req = ServiceRefundRequest.model_validate(request)
    workflow_id = DBOS.workflow_id or ""
    refund_id = steps.derived_refund_id(workflow_id)
    rma_id = steps.derived_return_id(workflow_id)
    run = ProcessRun(
        kind=ProcessKind.REFUND,
        correlation_id=req.correlation_id or workflow_id,
        subject={"order_id": req.order_id, "refund_id": refund_id, "case_ref": req.case_ref},
    )
    policy = current_runtime().options.refund_policy
    amount = req.amount.money()
    await run.state("validating")

    order = await run.run("read_erp_order", steps.read_erp_order, req.order_id)
    if not order["ok"]:
        return await _reject(run, req, refund_id, f"order: {order['failure']['message']}")
    payment = await run.run("read_payment", steps.read_payment, req.payment_ref)
    if not payment["ok"]:
        return await _reject(run, req, refund_id, f"payment: {payment['failure']['message']}")

    invoiced_at = order["value"]["invoiced_at"]
    ordered_at = req.ordered_at or (
        datetime.fromisoformat(invoiced_at) if invoiced_at else req.requested_at
    )
    decision = evaluate_refund(
        policy,
        RefundFacts(
            amount=amount,
            refundable=steps.money_of(payment["value"]["refundable"]),
            payment_settled=payment["value"]["settled"],
            ordered_at=ordered_at,
            requested_at=req.requested_at,
            requested_by=req.requested_by,
            fraud_flag=req.fraud_flag,
            order_cancelled=order["value"]["status"] == "cancelled",
        ),
    )
    refund = Refund(
        id=refund_id,
        amount=amount,
        reason=req.reason,
        order_id=req.order_id if is_valid_id(req.order_id, EntityKind.ORDER) else None,
        case_id=_case_id(req.case_ref),
        requested_at=req.requested_at,
        requested_by=req.requested_by,
        status=RefundStatus.REQUESTED,
    )
    await run.emit("emit_refund_requested", _ev(RefundRequested(refund=refund)))
    await run.state("evaluated", decision=decision.to_json())

    approver = "policy"
    if decision.verdict is Verdict.REJECT:
        return await _reject(run, req, refund_id, "; ".join(decision.reasons), version=2)
    if decision.verdict is Verdict.NEEDS_APPROVAL:
        answer = await _wait_for_approval(run, req, decision.reasons, policy)
        if answer is None:
            return await _reject(
                run,
                req,
                refund_id,
                "approval: nobody decided before the escalation expired",
                by="timeout",
                version=2,
            )
        if answer.get("decision") != "approve":
            reason = answer.get("reason") or "rejected by the approver"
            return await _reject(run, req, refund_id, str(reason), by=answer.get("by"), version=2)
        approver = str(answer.get("by") or "approver")

    await run.emit(
        "emit_refund_approved",
        _ev(
            RefundApproved(
                refund_id=refund_id,
                version=2,
                amount=amount,
                approved_by=approver,
                approved_at=datetime.fromisoformat(now_iso()),
            )
        ),
    )
    await run.state("approved", approved_by=approver)

    # The credit note: the ERP records what is owed back before any money moves.
    rma = {
        "id": rma_id,
        "order_id": req.order_id,
        "case_id": _case_id(req.case_ref),
        "status": "authorized",
        "lines": [
            {"sku": line.sku, "quantity": line.quantity, "reason": "damaged"} for line in req.lines
        ],
        "requested_at": req.requested_at.isoformat(),
        "authorized_at": req.requested_at.isoformat(),
    }
    created = await run.run(
        "authorize_return_in_erp",
        steps.authorize_return_in_erp,
        run.key("authorize_return_in_erp"),
        rma,
    )
    if not created["ok"]:
        return await _failed(run, req, refund_id, created["failure"])
    run.on_failure_undo(
        "erp_return", f"the draft return {rma_id} in the ERP has no effect on money; close it"
    )
    posted = await run.run(
        "post_credit_note", steps.post_credit_note, run.key("post_credit_note"), rma_id
    )
    if not posted["ok"]:
        return await _failed(run, req, refund_id, posted["failure"])
    credit = posted["value"]
    credited = steps.money_of(credit["credited_total"]) if credit["credited_total"] else None
    run.on_failure_undo(
        "credit_note",
        f"credit note(s) {[n['document'] for n in credit['credit_notes']]} for {rma_id} are "
        "posted but the money did not go back: reverse them in the ERP or refund by hand",
    )
    await run.emit(
        "emit_credit_note_posted",
        *[
            _ev(
                CreditNotePosted(
                    posting_id=note["id"],
                    version=2,
                    document_number=note["document"] or note["id"],
                    order_id=refund.order_id,
                    amount=steps.money_of(note["amount"]),
                    posted_at=datetime.fromisoformat(now_iso()),
                    refund_id=refund_id,
                    rma_id=rma_id,
                    reason=req.reason,
                )
            )
            for note in credit["credit_notes"]
            if note["status"] in {"posted", "settled"}
        ],
    )
    if credited is None or credited.currency != amount.currency or credited > amount:
        return await _finance_exception(
            run,
            req,
            refund_id,
            {
                "step": "post_credit_note",
                "kind": "business",
                "error": "CreditMismatch",
                "code": "conflict",
                "attempts": 1,
                "message": f"the ERP credited {credited} but {amount} was approved; no money moved",
            },
        )

    paid = await run.run(
        "issue_refund",
        steps.issue_refund,
        run.key("issue_refund"),
        req.payment_ref,
        steps.money_json(credited),
        refund_id,
        req.order_id,
        req.reason,
    )
    if not paid["ok"]:
        return await _finance_exception(run, req, refund_id, paid["failure"])
    run.compensations.clear()

    refund_ref = paid["value"]["refund_ref"]
    await run.audit(
        "audit_refund",
        "refund.completed",
        "refund",
        refund_id,
        {
            "amount": steps.money_json(credited),
            "refund_ref": refund_ref,
            "rma_id": rma_id,
            "approved_by": approver,
        },
    )
    await run.note(
        "note_case_refunded",
        req.case_ref,
        f"Refund of {credited} issued (payment service ref {refund_ref}); credit note posted "
        f"in the ERP for {rma_id}. Approved by {approver}.",
        status="solved",
    )
    await run.emit(
        "emit_refund_completed",
        _ev(
            RefundCompleted(
                refund_id=refund_id,
                version=3,
                amount=credited,
                payment_reference=refund_ref,
                completed_at=datetime.fromisoformat(now_iso()),
            )
        ),
    )
    return await run.finish(
        "completed", refund_ref=refund_ref, amount=steps.money_json(credited), rma_id=rma_id
    )


async def _wait_for_approval(
    run: ProcessRun, req: ServiceRefundRequest, reasons: tuple[str, ...], policy: Any
) -> Json | None:
    """Wait durably for approve/reject; escalate once when nobody answers in time."""
    await run.state(
        "awaiting_approval",
        reasons=list(reasons),
        approval_timeout_seconds=policy.approval_timeout_seconds,
    )
    await run.note(
        "note_case_awaiting_approval",
        req.case_ref,
        "Refund waits for approval: " + "; ".join(reasons),
    )
    answer: Json | None = await DBOS.recv_async(
        APPROVAL_TOPIC, timeout_seconds=policy.approval_timeout_seconds
    )
    if answer is not None:
        return answer
    await run.state("escalated", escalation_timeout_seconds=policy.escalation_timeout_seconds)
    await run.note(
        "note_case_escalated",
        req.case_ref,
        f"Refund approval escalated: no decision within {policy.approval_timeout_seconds:g} s.",
    )
    await run.audit(
        "audit_escalated",
        "refund.approval_escalated",
        "refund",
        steps.derived_refund_id(run.workflow_id),
        {"reasons": list(reasons)},
    )
    result: Json | None = await DBOS.recv_async(
        APPROVAL_TOPIC, timeout_seconds=policy.escalation_timeout_seconds
    )
    return result


async def _reject(
    run: ProcessRun,
    req: ServiceRefundRequest,
    refund_id: str,
    reason: str,
    by: str | None = "policy",
    version: int = 1,
) -> Json:
    """End without touching money: tell the case and emit ``refund.rejected``."""
    await run.note("note_case_rejected", req.case_ref, f"Refund not issued: {reason}")
    await run.emit(
        "emit_refund_rejected",
        _ev(
            RefundRejected(
                refund_id=refund_id,
                version=version,
                reason=reason[:200],
                rejected_by=by,
                rejected_at=datetime.fromisoformat(now_iso()),
            )
        ),
    )
    return await run.finish("rejected", reason=reason, rejected_by=by)


async def _failed(
    run: ProcessRun, req: ServiceRefundRequest, refund_id: str, failure: Json
) -> Json:
    """A step before any money or posted document failed permanently: undo and say so."""
    compensation = await run.compensate()
    await run.note(
        "note_case_failed",
        req.case_ref,
        f"Refund could not be completed ({failure['step']}: {failure['message']}); no money moved.",
    )
    await run.emit(
        "emit_refund_failed",
        _ev(
            RefundFailed(
                refund_id=refund_id,
                version=3,
                reason=failure["message"][:4000],
                retryable=failure["kind"] == "transient",
                failed_at=datetime.fromisoformat(now_iso()),
            )
        ),
    )
    return await run.finish("failed", failure=failure, compensation_result=compensation)


async def _finance_exception(
    run: ProcessRun, req: ServiceRefundRequest, refund_id: str, failure: Json
) -> Json:
    """The credit note is posted but the money did not go back: a classified exception with
    the whole trace, for finance to resolve. Never a silent half-state."""
    compensation = await run.compensate()
    await run.audit(
        "audit_finance_exception",
        "refund.finance_exception",
        "refund",
        refund_id,
        {"failure": failure, "compensation": compensation},
        reason=failure["message"],
    )
    await run.note(
        "note_case_finance_exception",
        req.case_ref,
        f"Refund blocked after the credit note was posted ({failure['message']}); "
        "finance has been asked to resolve it.",
        status="on_hold",
    )
    await run.emit(
        "emit_refund_failed",
        _ev(
            RefundFailed(
                refund_id=refund_id,
                version=3,
                reason=failure["message"][:4000],
                retryable=failure["kind"] == "transient",
                failed_at=datetime.fromisoformat(now_iso()),
            )
        ),
    )
    return await run.finish(
        "finance_exception",
        exception={"class": "finance", "failure": failure, "compensation": compensation},
    )
