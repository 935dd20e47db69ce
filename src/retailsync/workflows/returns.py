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

from retailsync.domain.catalogue import ReturnAuthorized, ReturnInspected, ReturnReceived
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
from retailsync.workflows import refunding, steps
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


RETURN_WORDING = refunding.RefundWording(
    subject="Return",
    not_done="Return not authorized",
    blocked="Return received but the refund is blocked",
    credit_note_undo="refund by hand or reverse them in the ERP",
)


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
    refund_run = refunding.RefundRun.of(run, req, RETURN_WORDING)
    policy = current_runtime().options.return_policy
    await run.state("checking_eligibility")

    read = await refund_run.read_order_and_payment()
    if isinstance(read, refunding.ReadFailed):
        return await refund_run.reject(read.reason)
    order, payment = read.order, read.payment
    decision = evaluate_return(
        policy,
        ReturnFacts(
            ordered_at=refunding.order_placed_at(order, req.ordered_at, req.requested_at),
            requested_at=req.requested_at,
            lines=[(line.sku, line.quantity) for line in req.lines],
            ordered_quantities=order["shipped_quantities"],
        ),
    )
    reasons = list(decision.reasons)
    if not payment["settled"]:
        reasons.append("payment: the payment is not settled, so there is nothing to refund")
    if decision.verdict is Verdict.REJECT or not payment["settled"]:
        return await refund_run.reject("; ".join(r for r in reasons if r))
    await run.state("eligible", decision=decision.to_json())

    # Authorize: the ERP records the return and its draft credit note, the warehouse expects it.
    authorized_at = now_iso()
    rma = {
        "id": rma_id,
        "order_id": req.order_id,
        "customer_id": req.customer_id,
        "case_id": refunding.service_case_id(req.case_ref),
        "status": "authorized",
        "lines": [
            {"sku": line.sku, "quantity": line.quantity, "reason": line.reason.value}
            for line in req.lines
        ],
        "requested_at": req.requested_at.isoformat(),
        "authorized_at": authorized_at,
    }
    created = await refund_run.authorize_return(
        rma, undo=f"the return {rma_id} in the ERP is authorized but never settled; close it"
    )
    if not created["ok"]:
        return await refund_run.fail(created["failure"])
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
        return await refund_run.fail(expected["failure"])
    await run.emit(
        "emit_return_authorized",
        refunding.event_of(
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
        return await refund_run.fail(booked["failure"])
    for line in settlement:
        if line.removed:
            outcome = await _take_out_of_stock(run, req, rma_id, line)
            if not outcome["ok"]:
                return await refund_run.fail(outcome["failure"])
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
            return await refund_run.finance_exception(settled["failure"])
    if not any(credited_units.values()):
        return await _closed_without_refund(run, req, settlement)

    posted = await refund_run.post_credit_note(reason="return")
    if not posted["ok"]:
        return await refund_run.fail(posted["failure"])
    credit = posted["value"]
    if credit["credited_total"] is None:
        return await refund_run.finance_exception(
            steps.conflict_found(
                "post_credit_note",
                "ReturnNotSettled",
                f"the ERP shows no posted credit note for {rma_id}",
            )
        )
    credited = steps.money_of(credit["credited_total"])

    return await refund_run.pay_back(
        credited,
        reason="return",
        audited={"lines": [line.to_json() for line in settlement]},
        case_note=lambda refund_ref: (
            f"Return {rma_id} inspected: "
            + "; ".join(_describe(line) for line in settlement)
            + f". Refund of {credited} issued (payment service ref {refund_ref}); credit note "
            "posted in the ERP."
        ),
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
