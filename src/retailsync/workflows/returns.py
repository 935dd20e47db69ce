"""Return-to-refund: the customer sends goods back, the warehouse inspects them, money goes back.

check eligibility (order, payment, return policy) -> authorize the return (RMA) in the ERP and
announce it to the warehouse -> tell the case -> wait durably for the warehouse's receipt and
inspection -> book the receipt in the ERP, then write off what cannot be sold -> credit only
the accepted units -> post the credit note -> refund -> close the case.

The warehouse's answer arrives as canonical ``return.received`` / ``return.inspected`` events;
whoever consumes them calls :func:`deliver_warehouse_receipt`, which sends them (``DBOS.send``)
to the return's receipt mailbox, a small child workflow whose id derives from the RMA id.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dbos import DBOS, SetWorkflowID
from pydantic import BaseModel, Field, ValidationError

from retailsync.domain.catalogue import (
    CreditNotePosted,
    RefundCompleted,
    RefundFailed,
    RefundRejected,
    ReturnAuthorized,
    ReturnInspected,
    ReturnReceived,
)
from retailsync.domain.identifiers import EntityKind, is_valid_id
from retailsync.domain.inventory import AdjustmentReason
from retailsync.domain.policies import (
    Disposition,
    LineSettlement,
    ReturnFacts,
    Verdict,
    evaluate_return,
    settle_return_lines,
)
from retailsync.domain.returns import InspectionOutcome, ReturnReason
from retailsync.workflows import steps
from retailsync.workflows.errors import InvalidWarehouseReceipt, NoReturnAwaitingReceipt
from retailsync.workflows.process import ProcessKind, ProcessRun, now_iso
from retailsync.workflows.runtime import current_runtime

Json = dict[str, Any]
RECEIPT_TOPIC = "warehouse_receipt"
RECEIVED = "return.received"
INSPECTED = "return.inspected"
MAX_RECEIPT_MESSAGES = 20


class ReturnLineIn(BaseModel):
    sku: str = Field(min_length=1, max_length=100)
    quantity: int = Field(ge=1, le=1_000_000)
    reason: ReturnReason = ReturnReason.DAMAGED


class ReturnToRefundRequest(BaseModel):
    """What the customer (through an agent or the storefront) asks to send back."""

    order_id: str
    payment_ref: str
    lines: list[ReturnLineIn] = Field(min_length=1, max_length=1000)
    case_ref: str | None = None
    customer_id: str | None = None
    requested_by: str | None = None
    requested_at: datetime
    ordered_at: datetime | None = None
    stock_location: str = Field(default="STO", min_length=1, max_length=40)
    """The ERP location the returned units are booked into (and written off from)."""
    warehouse_location: str = Field(default="WH1", min_length=1, max_length=40)
    """The warehouse (WMS location code) the customer ships to."""
    correlation_id: str | None = None


def receipt_mailbox_id(return_id: str) -> str:
    """The id of the child workflow that collects the warehouse's answer for ``return_id``."""
    return f"return-receipt-{return_id}"


def _ev(payload: Any) -> tuple[str, Json]:
    return f"retailsync.{payload.event_name}", payload.model_dump(mode="json")


def _case_id(case_ref: str | None) -> str | None:
    return case_ref if case_ref and is_valid_id(case_ref, EntityKind.CASE) else None


# --- the warehouse receipt mailbox ---------------------------------------------------------


def receipt_message(return_id: str, payload: Mapping[str, Any]) -> Json:
    """``{"type": "return.received" | "return.inspected", "data": {...}}`` from a canonical
    event (CloudEvent JSON or its ``data``), validated against the event catalogue."""
    event_type = str(payload.get("type", "")).removeprefix("retailsync.")
    data = payload.get("data") if isinstance(payload.get("data"), Mapping) else payload
    assert isinstance(data, Mapping)
    if event_type not in {RECEIVED, INSPECTED}:
        lines = data.get("lines") or []
        inspected = bool(lines) and all(isinstance(x, Mapping) and "result" in x for x in lines)
        event_type = INSPECTED if inspected else RECEIVED
    model = ReturnInspected if event_type == INSPECTED else ReturnReceived
    try:
        parsed = model.model_validate({**data, "rma_id": return_id})
    except ValidationError as exc:
        raise InvalidWarehouseReceipt(
            f"the warehouse receipt for {return_id} is not a valid {event_type} event: "
            + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None
    return {"type": event_type, "data": parsed.model_dump(mode="json")}


async def deliver_warehouse_receipt(return_id: str, payload: Mapping[str, Any]) -> bool:
    """Hand a ``return.received`` / ``return.inspected`` event to the workflow of ``return_id``.

    True when delivered; False when that return's workflow already has its answer (a
    redelivery, absorbed). Raises :class:`NoReturnAwaitingReceipt` when no workflow waits for
    this return, :class:`InvalidWarehouseReceipt` for a payload that is not such an event.
    """
    message = receipt_message(return_id, payload)
    mailbox = receipt_mailbox_id(return_id)
    status = await DBOS.get_workflow_status_async(mailbox)
    if status is None:
        raise NoReturnAwaitingReceipt(return_id)
    if status.status not in {"PENDING", "ENQUEUED"}:
        return False
    version = message["data"].get("version", 0)
    await DBOS.send_async(
        mailbox,
        message,
        topic=RECEIPT_TOPIC,
        idempotency_key=f"{return_id}:{message['type']}:{version}",
    )
    return True


@DBOS.workflow(name="await_warehouse_receipt")
async def await_warehouse_receipt(timeout_seconds: float) -> Json:
    """Collect the warehouse's receipt and inspection (each wait up to ``timeout_seconds``).

    Ends when the inspection arrives, or when nothing arrives in time (the answer then has no
    ``inspected``).
    """
    answer: Json = {"received": None, "inspected": None}
    for _ in range(MAX_RECEIPT_MESSAGES):
        message: Json | None = await DBOS.recv_async(RECEIPT_TOPIC, timeout_seconds)
        if message is None:
            break
        if message["type"] == RECEIVED:
            answer["received"] = message["data"]
        else:
            answer["inspected"] = message["data"]
            break
    return answer


# --- the workflow --------------------------------------------------------------------------


@DBOS.workflow(name="return_to_refund")
async def return_to_refund(request: Json) -> Json:
    """Take goods back and refund what the warehouse accepted, end to end."""
    req = ReturnToRefundRequest.model_validate(request)
    workflow_id = DBOS.workflow_id or ""
    rma_id = steps.derived_return_id(workflow_id)
    refund_id = steps.derived_refund_id(workflow_id)
    run = ProcessRun(
        kind=ProcessKind.RETURN,
        correlation_id=req.correlation_id or workflow_id,
        subject={
            "order_id": req.order_id,
            "rma_id": rma_id,
            "refund_id": refund_id,
            "case_ref": req.case_ref,
        },
    )
    policy = current_runtime().options.return_policy
    await run.state("checking_eligibility")

    order = await run.run("read_erp_order", steps.read_erp_order, req.order_id)
    if not order["ok"]:
        return await _reject(run, req, refund_id, f"order: {order['failure']['message']}")
    payment = await run.run("read_payment", steps.read_payment, req.payment_ref)
    if not payment["ok"]:
        return await _reject(run, req, refund_id, f"payment: {payment['failure']['message']}")
    invoiced_at = order["value"]["invoiced_at"]
    decision = evaluate_return(
        policy,
        ReturnFacts(
            ordered_at=req.ordered_at
            or (datetime.fromisoformat(invoiced_at) if invoiced_at else req.requested_at),
            requested_at=req.requested_at,
            lines=[(line.sku, line.quantity) for line in req.lines],
            ordered_quantities=order["value"]["shipped_quantities"],
        ),
    )
    reasons = list(decision.reasons)
    if not payment["value"]["settled"]:
        reasons.append("payment: the payment is not settled, so there is nothing to refund")
    if decision.verdict is Verdict.REJECT or not payment["value"]["settled"]:
        return await _reject(run, req, refund_id, "; ".join(r for r in reasons if r))
    await run.state("eligible", decision=decision.to_json())

    # Authorize: the ERP records the return and its draft credit note, the warehouse expects it.
    authorized_at = now_iso()
    rma = {
        "id": rma_id,
        "order_id": req.order_id,
        "customer_id": req.customer_id,
        "case_id": _case_id(req.case_ref),
        "status": "authorized",
        "lines": [
            {"sku": line.sku, "quantity": line.quantity, "reason": line.reason.value}
            for line in req.lines
        ],
        "requested_at": req.requested_at.isoformat(),
        "authorized_at": authorized_at,
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
        "erp_return", f"the return {rma_id} in the ERP is authorized but never settled; close it"
    )
    with SetWorkflowID(receipt_mailbox_id(rma_id)):
        mailbox = await DBOS.start_workflow_async(
            await_warehouse_receipt, policy.receipt_timeout_seconds
        )
    lines_json = [{"sku": line.sku, "quantity": line.quantity} for line in req.lines]
    expected = await run.run(
        "expect_return_at_warehouse",
        steps.expect_return_at_warehouse,
        run.key("expect_return_at_warehouse"),
        rma_id,
        req.order_id,
        req.warehouse_location,
        lines_json,
    )
    if not expected["ok"]:
        return await _failed(run, req, refund_id, expected["failure"])
    await run.emit(
        "emit_return_authorized",
        _ev(
            ReturnAuthorized(
                rma_id=rma_id,
                order_id=req.order_id,
                version=2,
                authorized_at=datetime.fromisoformat(authorized_at),
            )
        ),
    )
    await run.note(
        "note_case_return_authorized",
        req.case_ref,
        f"Return {rma_id} authorized for "
        + ", ".join(f"{line.quantity} x {line.sku}" for line in req.lines)
        + f". The warehouse ({req.warehouse_location}) expects the parcel; the refund follows "
        "its inspection.",
        status="pending",
    )

    await run.state(
        "awaiting_receipt",
        receipt_timeout_seconds=policy.receipt_timeout_seconds,
        expectation=expected["value"]["expectation_id"],
    )
    receipt: Json = await mailbox.get_result()
    if receipt["inspected"] is None:
        return await _expired(run, req, refund_id, received=receipt["received"] is not None)

    received = receipt["received"]
    settlement = settle_return_lines(
        policy,
        [(line.sku, line.quantity) for line in req.lines],
        _received_units(received) if received else None,
        _inspections(receipt["inspected"]),
    )
    await run.state("inspected", lines=[line.to_json() for line in settlement])

    # Stock: the ERP's receipt books every authorized unit in; what cannot stay leaves again.
    booked = await run.run(
        "receive_return_in_erp",
        steps.receive_return_in_erp,
        run.key("receive_return_in_erp"),
        rma_id,
    )
    if not booked["ok"]:
        return await _failed(run, req, refund_id, booked["failure"])
    for line in settlement:
        if line.removed:
            outcome = await _take_out_of_stock(run, req, rma_id, line)
            if not outcome["ok"]:
                return await _failed(run, req, refund_id, outcome["failure"])
    await run.state("restocked", stock=_stock_summary(settlement))

    credited_units = {line.sku: line.credited for line in settlement}
    if any(line.credited != line.authorized for line in settlement):
        settled = await run.run(
            "settle_return_in_erp",
            steps.settle_return_in_erp,
            run.key("settle_return_in_erp"),
            rma_id,
            credited_units,
        )
        if not settled["ok"]:
            return await _finance_exception(run, req, refund_id, settled["failure"])
    if not any(credited_units.values()):
        return await _closed_without_refund(run, req, settlement)

    posted = await run.run(
        "post_credit_note", steps.post_credit_note, run.key("post_credit_note"), rma_id
    )
    if not posted["ok"]:
        return await _failed(run, req, refund_id, posted["failure"])
    credit = posted["value"]
    run.on_failure_undo(
        "credit_note",
        f"credit note(s) {[n['document'] for n in credit['credit_notes']]} for {rma_id} are "
        "posted but the money did not go back: refund by hand or reverse them in the ERP",
    )
    await run.emit(
        "emit_credit_note_posted",
        *[
            _ev(
                CreditNotePosted(
                    posting_id=note["id"],
                    version=2,
                    document_number=note["document"] or note["id"],
                    order_id=req.order_id if is_valid_id(req.order_id, EntityKind.ORDER) else None,
                    amount=steps.money_of(note["amount"]),
                    posted_at=datetime.fromisoformat(now_iso()),
                    refund_id=refund_id,
                    rma_id=rma_id,
                    reason="return",
                )
            )
            for note in credit["credit_notes"]
            if note["status"] in {"posted", "settled"}
        ],
    )
    if credit["credited_total"] is None:
        return await _finance_exception(
            run,
            req,
            refund_id,
            _failure("post_credit_note", f"the ERP shows no posted credit note for {rma_id}"),
        )
    credited = steps.money_of(credit["credited_total"])

    paid = await run.run(
        "issue_refund",
        steps.issue_refund,
        run.key("issue_refund"),
        req.payment_ref,
        steps.money_json(credited),
        refund_id,
        req.order_id,
        "return",
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
            "lines": [line.to_json() for line in settlement],
        },
    )
    await run.note(
        "note_case_refunded",
        req.case_ref,
        f"Return {rma_id} inspected: "
        + "; ".join(_describe(line) for line in settlement)
        + f". Refund of {credited} issued (payment service ref {refund_ref}); credit note "
        "posted in the ERP.",
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
        "completed",
        refund_ref=refund_ref,
        amount=steps.money_json(credited),
        rma_id=rma_id,
        credit_notes=[n["document"] for n in credit["credit_notes"]],
    )


# --- pieces of the process -----------------------------------------------------------------


def _received_units(received: Json) -> dict[str, int]:
    units: dict[str, int] = {}
    for line in received["lines"]:
        units[line["sku"]] = units.get(line["sku"], 0) + int(line["quantity"])
    return units


def _inspections(inspected: Json) -> dict[str, tuple[InspectionOutcome, int]]:
    results: dict[str, tuple[InspectionOutcome, int]] = {}
    for line in inspected["lines"]:
        result = line["result"]
        results[line["sku"]] = (
            InspectionOutcome(result["outcome"]),
            int(result["accepted_quantity"]),
        )
    return results


async def _take_out_of_stock(
    run: ProcessRun, req: ReturnToRefundRequest, rma_id: str, line: LineSettlement
) -> Json:
    """Write off (damaged) or correct out (never kept) the units the receipt booked in."""
    outcome: Json = {"ok": True, "value": None}
    for units, reason, step in (
        (line.written_off, AdjustmentReason.DAMAGED, "write_off"),
        (line.not_kept, AdjustmentReason.CORRECTION, "not_kept"),
    ):
        if not units:
            continue
        name = f"{step}:{line.sku}"
        adjustment = steps.adjustment_json(
            adjustment_id=steps.derived_adjustment_id(run.workflow_id, name, line.sku),
            sku=line.sku,
            location=req.stock_location,
            delta=-units,
            reason=reason,
            reference=rma_id,
            occurred_at=now_iso(),
        )
        outcome = await run.run(name, steps.adjust_stock_in_erp, run.key(name), adjustment)
        if not outcome["ok"]:
            return outcome
        await run.audit(
            f"audit_{name}",
            f"inventory.{step}",
            "inventory_adjustment",
            adjustment["id"],
            {"sku": line.sku, "delta": -units, "reason": reason.value, "rma_id": rma_id},
        )
    return outcome


def _stock_summary(settlement: list[LineSettlement]) -> list[Json]:
    return [
        {
            "sku": line.sku,
            "restocked": line.restocked,
            "written_off": line.written_off,
            "not_kept": line.not_kept,
        }
        for line in settlement
    ]


def _describe(line: LineSettlement) -> str:
    parts = [f"{line.sku}: {line.outcome.value}"]
    if line.disposition is Disposition.RESTOCK:
        parts.append(f"{line.restocked} restocked")
    if line.written_off:
        parts.append(f"{line.written_off} written off")
    if line.not_kept:
        parts.append(f"{line.not_kept} not kept")
    parts.append(f"{line.credited} of {line.authorized} credited")
    return ", ".join(parts)


def _failure(step: str, message: str, kind: str = "business") -> Json:
    return {
        "step": step,
        "kind": kind,
        "error": "ReturnNotSettled",
        "code": "conflict",
        "attempts": 1,
        "message": message,
    }


async def _reject(run: ProcessRun, req: ReturnToRefundRequest, refund_id: str, reason: str) -> Json:
    """Not eligible: nothing was authorized anywhere; tell the case."""
    await run.note("note_case_rejected", req.case_ref, f"Return not authorized: {reason}")
    await run.emit(
        "emit_refund_rejected",
        _ev(
            RefundRejected(
                refund_id=refund_id,
                version=1,
                reason=reason[:200],
                rejected_by="policy",
                rejected_at=datetime.fromisoformat(now_iso()),
            )
        ),
    )
    return await run.finish("rejected", reason=reason, rejected_by="policy")


async def _expired(
    run: ProcessRun, req: ReturnToRefundRequest, refund_id: str, *, received: bool
) -> Json:
    """Nothing (or no inspection) arrived in time: no money moves; people follow up."""
    compensation = await run.compensate()
    what = "was received but never inspected" if received else "never arrived"
    await run.note(
        "note_case_return_expired",
        req.case_ref,
        f"The returned parcel {what} within the return window; no refund was issued.",
        status="open",
    )
    return await run.finish("expired", received=received, compensation_result=compensation)


async def _closed_without_refund(
    run: ProcessRun, req: ReturnToRefundRequest, settlement: list[LineSettlement]
) -> Json:
    run.compensations.clear()
    await run.note(
        "note_case_no_refund",
        req.case_ref,
        "Return inspected, nothing is refundable: "
        + "; ".join(_describe(line) for line in settlement),
        status="solved",
    )
    return await run.finish("closed_without_refund", lines=[x.to_json() for x in settlement])


async def _failed(
    run: ProcessRun, req: ReturnToRefundRequest, refund_id: str, failure: Json
) -> Json:
    """A permanent failure before any money moved: undo what can be undone and say so."""
    compensation = await run.compensate()
    await run.note(
        "note_case_failed",
        req.case_ref,
        f"Return could not be completed ({failure['step']}: {failure['message']}); no money moved.",
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
    run: ProcessRun, req: ReturnToRefundRequest, refund_id: str, failure: Json
) -> Json:
    """Goods are back but the money cannot follow automatically: finance resolves it."""
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
        f"Return received but the refund is blocked ({failure['message']}); finance has "
        "been asked to resolve it.",
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
