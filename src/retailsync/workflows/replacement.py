"""Replacement: send the customer a new unit at no charge, or refund when there is none.

read the order in the ERP -> check the ERP has the units to promise -> (in stock) create and
confirm a zero-price replacement order in the ERP, which reserves the units -> tell the case.
(out of stock, or the ERP refuses the order) -> credit the lines in the ERP -> refund the
credited amount -> tell the customer through the case.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dbos import DBOS
from pydantic import BaseModel, Field

from retailsync.domain.identifiers import EntityKind, derive_id, is_valid_id
from retailsync.domain.money import Money
from retailsync.domain.orders import Order, OrderLine
from retailsync.workflows import steps
from retailsync.workflows.process import ProcessKind, ProcessRun

Json = dict[str, Any]


class ReplacementLine(BaseModel):
    sku: str = Field(min_length=1, max_length=100)
    quantity: int = Field(ge=1, le=1_000_000)


class ReplacementRequest(BaseModel):
    """Replace these lines of this order (paid with this payment, for the refund fallback)."""

    order_id: str
    payment_ref: str
    customer_id: str | None = None
    lines: list[ReplacementLine] = Field(min_length=1, max_length=1000)
    reason: str = Field(default="damaged", min_length=1, max_length=200)
    case_ref: str | None = None
    stock_location: str = Field(default="STO", min_length=1, max_length=40)
    requested_by: str | None = None
    requested_at: datetime
    correlation_id: str | None = None


def replacement_order_id(workflow_id: str) -> str:
    return derive_id(EntityKind.ORDER, workflow_id, "replacement")


def _zero_price_order(req: ReplacementRequest, order_id: str, currency: str) -> Json:
    zero = Money.zero(currency)
    order = Order.place(
        id=order_id,
        channel="replacement",
        currency=currency,
        lines=[
            OrderLine.priced(
                line_no=number,
                sku=line.sku,
                quantity=line.quantity,
                unit_price=zero,
                tax=zero,
                description=f"Replacement for {req.order_id}: {req.reason}"[:200],
            )
            for number, line in enumerate(req.lines, start=1)
        ],
        placed_at=req.requested_at,
        customer_id=req.customer_id,
    )
    return order.model_dump(mode="json")


@DBOS.workflow(name="replacement")
async def replacement(request: Json) -> Json:
    """Reserve and ship a free replacement, falling back to a refund when out of stock."""
    req = ReplacementRequest.model_validate(request)
    workflow_id = DBOS.workflow_id or ""
    new_order_id = replacement_order_id(workflow_id)
    run = ProcessRun(
        kind=ProcessKind.REPLACEMENT,
        correlation_id=req.correlation_id or workflow_id,
        subject={
            "order_id": req.order_id,
            "replacement_order_id": new_order_id,
            "case_ref": req.case_ref,
        },
    )
    await run.state("checking_stock")
    order = await run.run("read_erp_order", steps.read_erp_order, req.order_id)
    if not order["ok"]:
        return await _rejected(run, req, f"order: {order['failure']['message']}")
    if order["value"]["status"] == "cancelled":
        return await _rejected(run, req, "order: the order is cancelled")

    short: list[str] = []
    for line in req.lines:
        stock = await run.run(
            f"read_erp_stock:{line.sku}", steps.read_erp_stock, line.sku, req.stock_location
        )
        if not stock["ok"]:
            return await _rejected(run, req, f"stock: {stock['failure']['message']}")
        if stock["value"]["available"] < line.quantity:
            short.append(f"{line.sku} ({stock['value']['available']} of {line.quantity})")
    await run.state("stock_checked", short=short)

    if not short:
        currency = order["value"]["total"]["currency"]
        placed = await run.run(
            "submit_erp_order",
            steps.submit_erp_order,
            run.key("submit_erp_order"),
            _zero_price_order(req, new_order_id, currency),
        )
        if placed["ok"]:
            await run.audit(
                "audit_replacement",
                "order.replacement_created",
                "order",
                new_order_id,
                {"replaces": req.order_id, "lines": [x.model_dump() for x in req.lines]},
            )
            await run.note(
                "note_case_replaced",
                req.case_ref,
                f"Replacement order {new_order_id} created at no charge for "
                + ", ".join(f"{x.quantity} x {x.sku}" for x in req.lines)
                + "; the units are reserved and ship with the next wave.",
                status="pending",
            )
            return await run.finish(
                "replaced", replacement_order_id=new_order_id, erp=placed["value"]
            )
        if placed["failure"]["kind"] == "transient":
            return await _failed(run, req, placed["failure"])
        short.append(f"the ERP refused the replacement order: {placed['failure']['message']}")

    return await _refund_instead(run, req, short)


async def _refund_instead(run: ProcessRun, req: ReplacementRequest, short: list[str]) -> Json:
    """No stock to replace from: credit the lines in the ERP and refund the credited amount."""
    await run.state("refunding_instead", short=short)
    rma_id = steps.derived_return_id(run.workflow_id)
    refund_id = steps.derived_refund_id(run.workflow_id)
    rma = {
        "id": rma_id,
        "order_id": req.order_id,
        "customer_id": req.customer_id,
        "case_id": req.case_ref
        if req.case_ref and is_valid_id(req.case_ref, EntityKind.CASE)
        else None,
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
        return await _failed(run, req, created["failure"])
    posted = await run.run(
        "post_credit_note", steps.post_credit_note, run.key("post_credit_note"), rma_id
    )
    if not posted["ok"] or posted["value"]["credited_total"] is None:
        failure = posted.get("failure") or {
            "step": "post_credit_note",
            "kind": "business",
            "message": f"the ERP shows no posted credit note for {rma_id}",
        }
        return await _failed(run, req, failure)
    credited = steps.money_of(posted["value"]["credited_total"])
    paid = await run.run(
        "issue_refund",
        steps.issue_refund,
        run.key("issue_refund"),
        req.payment_ref,
        steps.money_json(credited),
        refund_id,
        req.order_id,
        "replacement_out_of_stock",
    )
    if not paid["ok"]:
        await run.note(
            "note_case_finance_exception",
            req.case_ref,
            f"No replacement in stock and the refund is blocked ({paid['failure']['message']}); "
            "finance has been asked to resolve it.",
            status="on_hold",
        )
        return await run.finish(
            "finance_exception", exception={"class": "finance", "failure": paid["failure"]}
        )
    refund_ref = paid["value"]["refund_ref"]
    await run.audit(
        "audit_refund",
        "refund.completed",
        "refund",
        refund_id,
        {"amount": steps.money_json(credited), "refund_ref": refund_ref, "rma_id": rma_id},
    )
    await run.note(
        "note_case_refunded_instead",
        req.case_ref,
        "We could not send a replacement (out of stock: "
        + "; ".join(short)
        + f"). A refund of {credited} was issued instead (payment service ref {refund_ref}).",
        status="solved",
    )
    return await run.finish(
        "refunded_instead",
        short=short,
        refund_ref=refund_ref,
        amount=steps.money_json(credited),
        rma_id=rma_id,
    )


async def _rejected(run: ProcessRun, req: ReplacementRequest, reason: str) -> Json:
    await run.note("note_case_rejected", req.case_ref, f"Replacement not started: {reason}")
    return await run.finish("rejected", reason=reason)


async def _failed(run: ProcessRun, req: ReplacementRequest, failure: Json) -> Json:
    await run.note(
        "note_case_failed",
        req.case_ref,
        f"Replacement could not be completed ({failure['step']}: {failure['message']}).",
        status="on_hold",
    )
    return await run.finish("failed", failure=failure)
