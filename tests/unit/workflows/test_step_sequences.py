"""The steps of the refund and return workflows, by name and in order, pinned.

DBOS recovers a workflow by running its body again and matching each step, in order, to what it
checkpointed; the step names of the workflow are also the idempotency keys the outside systems
saw. A change that renames, adds, drops or reorders a step breaks workflows in flight unless it
comes with a new application version (docs/workflows.md): when one of these tests fails, either
the change is a mistake, or it needs that version bump and the expected lists updated here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from workflow_fakes import Ledger

from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.workflows import steps
from retailsync.workflows.returns import deliver_warehouse_receipt
from retailsync.workflows.runtime import WorkflowRuntime
from retailsync.workflows.service import decide, process_result, process_status, start_process

ORDER = derive_id(EntityKind.ORDER, "test", "7001")
CASE = "ZD-7001"

# The money-back part both workflows share (``workflows.refunding``), paid or declined.
CREDITED_AND_PAID = [
    "post_credit_note",
    "emit_credit_note_posted",
    "issue_refund",
    "audit_refund",
    "note_case_refunded",
    "emit_refund_completed",
    "state:completed",
]
CREDITED_AND_PAID_DBOS = [
    "post_credit_note",
    "publish_events",
    "issue_refund",
    "record_audit",
    "note_case",
    "publish_events",
    "DBOS.setEvent",
]
CREDITED_BUT_DECLINED = [
    "post_credit_note",
    "emit_credit_note_posted",
    "issue_refund",
    "audit_finance_exception",
    "note_case_finance_exception",
    "emit_refund_failed",
    "state:finance_exception",
]

REFUND_EVALUATED = [
    "state:validating",
    "read_erp_order",
    "read_payment",
    "emit_refund_requested",
    "state:evaluated",
]
REFUND_EVALUATED_DBOS = [
    "DBOS.setEvent",
    "read_erp_order",
    "read_payment",
    "publish_events",
    "DBOS.setEvent",
]
WAITING_FOR_APPROVAL = ["state:awaiting_approval", "note_case_awaiting_approval"]
WAITING_FOR_APPROVAL_DBOS = ["DBOS.setEvent", "note_case", "DBOS.recv", "DBOS.sleep"]
REFUND_APPROVED = ["emit_refund_approved", "state:approved", "authorize_return_in_erp"]
REFUND_APPROVED_DBOS = ["publish_events", "DBOS.setEvent", "authorize_return_in_erp"]

RETURN_UP_TO_THE_CREDIT_NOTE = [
    "state:checking_eligibility",
    "read_erp_order",
    "read_payment",
    "state:eligible",
    "authorize_return_in_erp",
    "expect_return_at_warehouse",
    "emit_return_authorized",
    "note_case_return_authorized",
    "state:awaiting_receipt",
    "state:inspected",
    "receive_return_in_erp",
    "write_off:MUG-1",
    "audit_write_off:MUG-1",
    "not_kept:MUG-1",
    "audit_not_kept:MUG-1",
    "write_off:TEE-2",
    "audit_write_off:TEE-2",
    "state:restocked",
    "settle_return_in_erp",
]
RETURN_UP_TO_THE_CREDIT_NOTE_DBOS = [
    "DBOS.setEvent",
    "read_erp_order",
    "read_payment",
    "DBOS.setEvent",
    "authorize_return_in_erp",
    "await_warehouse_receipt",
    "expect_return_at_warehouse",
    "publish_events",
    "note_case",
    "DBOS.setEvent",
    "DBOS.getResult",
    "DBOS.setEvent",
    "receive_return_in_erp",
    "adjust_stock_in_erp",
    "record_audit",
    "adjust_stock_in_erp",
    "record_audit",
    "adjust_stock_in_erp",
    "record_audit",
    "DBOS.setEvent",
    "settle_return_in_erp",
]


def seed(ledger: Ledger) -> None:
    ledger.add_order(ORDER, "200.00", lines={"MUG-1": (4, "25.00"), "TEE-2": (2, "50.00")})
    ledger.add_payment("pi_7", "200.00")


def refund_request(amount: str, sku: str, quantity: int, **extra: Any) -> dict[str, Any]:
    return {
        "order_id": ORDER,
        "payment_ref": "pi_7",
        "amount": {"amount": amount, "currency": "EUR"},
        "lines": [{"sku": sku, "quantity": quantity}],
        "case_ref": CASE,
        "requested_at": "2026-03-05T10:00:00+00:00",
        **extra,
    }


def return_request() -> dict[str, Any]:
    return {
        "order_id": ORDER,
        "payment_ref": "pi_7",
        "lines": [
            {"sku": "MUG-1", "quantity": 3, "reason": "damaged"},
            {"sku": "TEE-2", "quantity": 2, "reason": "damaged"},
        ],
        "case_ref": CASE,
        "requested_at": "2026-03-05T10:00:00+00:00",
    }


def warehouse_event(kind: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {"version": 10 if kind == "received" else 11, "lines": lines}
    if kind == "received":
        data.update(order_id=ORDER, location="WH1", received_at="2026-03-08T09:00:00+00:00")
    else:
        data["inspected_at"] = "2026-03-08T10:00:00+00:00"
    return {"type": f"retailsync.return.{kind}", "data": data}


def inspection(outcome: str, accepted: int) -> dict[str, Any]:
    return {
        "outcome": outcome,
        "accepted_quantity": accepted,
        "inspected_at": "2026-03-08T10:00:00+00:00",
    }


async def wait_state(workflow_id: str, state: str) -> None:
    for _ in range(400):
        if (await process_status(workflow_id, with_steps=False))["state"] == state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{workflow_id} never reached {state}")


async def run_return(workflow_id: str) -> dict[str, Any]:
    await start_process("returns", workflow_id, return_request())
    await wait_state(workflow_id, "awaiting_receipt")
    rma_id = steps.derived_return_id(workflow_id)
    received = [{"sku": "MUG-1", "quantity": 2}, {"sku": "TEE-2", "quantity": 2}]
    inspected = [
        {"sku": "MUG-1", "result": inspection("restock", 1)},
        {"sku": "TEE-2", "result": inspection("scrap", 0)},
    ]
    assert await deliver_warehouse_receipt(rma_id, warehouse_event("received", received))
    assert await deliver_warehouse_receipt(rma_id, warehouse_event("inspected", inspected))
    return await process_result(workflow_id)


def traced_steps(result: dict[str, Any]) -> list[str]:
    """The workflow's own step names and states, in the order it took them."""
    return [f"state:{t['state']}" if "state" in t else t["step"] for t in result["trace"]]


async def dbos_steps(workflow_id: str) -> list[str]:
    """What DBOS checkpointed for the workflow, in order: what a recovery replays against."""
    rows = (await process_status(workflow_id))["steps"]
    assert [row["function_id"] for row in rows] == list(range(1, len(rows) + 1))
    return [row["name"] for row in rows]


async def test_a_refund_paid_by_policy_and_one_the_payment_service_declines(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    seed(ledger)
    await start_process("refunds", "refund-paid", refund_request("25.00", "MUG-1", 1))
    paid = await process_result("refund-paid")
    assert paid["state"] == "completed"
    assert traced_steps(paid) == [*REFUND_EVALUATED, *REFUND_APPROVED, *CREDITED_AND_PAID]
    assert await dbos_steps("refund-paid") == [
        *REFUND_EVALUATED_DBOS,
        *REFUND_APPROVED_DBOS,
        *CREDITED_AND_PAID_DBOS,
    ]

    ledger.arm("refund_declined")
    await start_process("refunds", "refund-declined", refund_request("50.00", "TEE-2", 1))
    declined = await process_result("refund-declined")
    assert declined["state"] == "finance_exception"
    assert traced_steps(declined) == [*REFUND_EVALUATED, *REFUND_APPROVED, *CREDITED_BUT_DECLINED]


async def test_a_refund_approved_by_a_person(runtime: WorkflowRuntime, ledger: Ledger) -> None:
    seed(ledger)
    request = refund_request("100.00", "TEE-2", 2, fraud_flag=True)
    await start_process("refunds", "refund-approved", request)
    await wait_state("refund-approved", "awaiting_approval")
    await decide("refund-approved", approve=True, by="lead-anna")
    approved = await process_result("refund-approved")
    assert approved["state"] == "completed"
    assert traced_steps(approved) == [
        *REFUND_EVALUATED,
        *WAITING_FOR_APPROVAL,
        *REFUND_APPROVED,
        *CREDITED_AND_PAID,
    ]
    assert await dbos_steps("refund-approved") == [
        *REFUND_EVALUATED_DBOS,
        *WAITING_FOR_APPROVAL_DBOS,
        *REFUND_APPROVED_DBOS,
        *CREDITED_AND_PAID_DBOS,
    ]


async def test_a_return_partly_credited(runtime: WorkflowRuntime, ledger: Ledger) -> None:
    seed(ledger)
    result = await run_return("return-partly")
    assert result["state"] == "completed"
    assert traced_steps(result) == [*RETURN_UP_TO_THE_CREDIT_NOTE, *CREDITED_AND_PAID]
    assert await dbos_steps("return-partly") == [
        *RETURN_UP_TO_THE_CREDIT_NOTE_DBOS,
        *CREDITED_AND_PAID_DBOS,
    ]


async def test_a_return_the_payment_service_declines_to_refund(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    seed(ledger)
    ledger.arm("refund_declined")
    result = await run_return("return-declined")
    assert result["state"] == "finance_exception"
    assert traced_steps(result) == [*RETURN_UP_TO_THE_CREDIT_NOTE, *CREDITED_BUT_DECLINED]
