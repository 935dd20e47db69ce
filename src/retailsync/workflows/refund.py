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

from retailsync.domain.catalogue import RefundApproved, RefundRequested
from retailsync.domain.identifiers import EntityKind, is_valid_id
from retailsync.domain.money import Money
from retailsync.domain.policies import RefundFacts, Verdict, evaluate_refund
from retailsync.domain.refunds import Refund, RefundStatus
from retailsync.workflows import refunding, steps
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


REFUND_WORDING = refunding.RefundWording(
    subject="Refund",
    not_done="Refund not issued",
    blocked="Refund blocked after the credit note was posted",
    credit_note_undo="reverse them in the ERP or refund by hand",
)


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
    refund_run = refunding.RefundRun.of(run, req, REFUND_WORDING)
    policy = current_runtime().options.refund_policy
    amount = req.amount.money()
    await run.state("validating")

    read = await refund_run.read_order_and_payment()
    if isinstance(read, refunding.ReadFailed):
        return await refund_run.reject(read.reason)
    order, payment = read.order, read.payment
    decision = evaluate_refund(
        policy,
        RefundFacts(
            amount=amount,
            refundable=steps.money_of(payment["refundable"]),
            payment_settled=payment["settled"],
            ordered_at=refunding.order_placed_at(order, req.ordered_at, req.requested_at),
            requested_at=req.requested_at,
            requested_by=req.requested_by,
            fraud_flag=req.fraud_flag,
            order_cancelled=order["status"] == "cancelled",
        ),
    )
    refund = Refund(
        id=refund_id,
        amount=amount,
        reason=req.reason,
        order_id=req.order_id if is_valid_id(req.order_id, EntityKind.ORDER) else None,
        case_id=refunding.service_case_id(req.case_ref),
        requested_at=req.requested_at,
        requested_by=req.requested_by,
        status=RefundStatus.REQUESTED,
    )
    await run.emit("emit_refund_requested", refunding.event_of(RefundRequested(refund=refund)))
    await run.state("evaluated", decision=decision.to_json())

    approver = "policy"
    if decision.verdict is Verdict.REJECT:
        return await refund_run.reject("; ".join(decision.reasons), event_version=2)
    if decision.verdict is Verdict.NEEDS_APPROVAL:
        answer = await _wait_for_approval(run, req, decision.reasons, policy)
        if answer is None:
            return await refund_run.reject(
                "approval: nobody decided before the escalation expired",
                rejected_by="timeout",
                event_version=2,
            )
        if answer.get("decision") != "approve":
            reason = answer.get("reason") or "rejected by the approver"
            return await refund_run.reject(
                str(reason), rejected_by=answer.get("by"), event_version=2
            )
        approver = str(answer.get("by") or "approver")

    await run.emit(
        "emit_refund_approved",
        refunding.event_of(
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
        "case_id": refunding.service_case_id(req.case_ref),
        "status": "authorized",
        "lines": [
            {"sku": line.sku, "quantity": line.quantity, "reason": "damaged"} for line in req.lines
        ],
        "requested_at": req.requested_at.isoformat(),
        "authorized_at": req.requested_at.isoformat(),
    }
    created = await refund_run.authorize_return(
        rma, undo=f"the draft return {rma_id} in the ERP has no effect on money; close it"
    )
    if not created["ok"]:
        return await refund_run.fail(created["failure"])
    posted = await refund_run.post_credit_note(reason=req.reason)
    if not posted["ok"]:
        return await refund_run.fail(posted["failure"])
    credited_total = posted["value"]["credited_total"]
    credited = steps.money_of(credited_total) if credited_total else None
    if credited is None or credited.currency != amount.currency or credited > amount:
        return await refund_run.finance_exception(
            steps.conflict_found(
                "post_credit_note",
                "CreditMismatch",
                f"the ERP credited {credited} but {amount} was approved; no money moved",
            )
        )

    return await refund_run.pay_back(
        credited,
        reason=req.reason,
        audited={"approved_by": approver},
        case_note=lambda refund_ref: (
            f"Refund of {credited} issued (payment service ref {refund_ref}); credit note "
            f"posted in the ERP for {rma_id}. Approved by {approver}."
        ),
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
