"""Cancellation and replacement on the durable runtime, against file-backed fakes."""

from __future__ import annotations

import asyncio
from typing import Any

from workflow_fakes import Ledger

from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.resilience.errors import ConflictRejected
from retailsync.workflows.cancellation import return_workflow_id
from retailsync.workflows.replacement import replacement_order_id
from retailsync.workflows.runtime import WorkflowRuntime
from retailsync.workflows.service import process_result, process_status, start_process

ORDER = derive_id(EntityKind.ORDER, "test", "3001")
CASE = "ZD-6001"
LINES = {"MUG-1": (4, "25.00"), "TEE-2": (2, "50.00")}


async def run(kind: str, workflow_id: str, body: dict) -> dict:
    await start_process(kind, workflow_id, body)
    return await process_result(workflow_id)


def cancel(**extra: Any) -> dict:
    return {
        "order_id": ORDER,
        "payment_ref": "pi_3",
        "pick_task_id": "pick-1",
        "case_ref": CASE,
        "reason": "customer changed their mind",
        "requested_at": "2026-03-05T10:00:00+00:00",
        **extra,
    }


async def test_cancel_before_shipment_stops_the_pick_cancels_and_refunds(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    ledger.add_order(ORDER, "200.00", shipped=False, lines=LINES, status="confirmed")
    ledger.add_payment("pi_3", "200.00")
    ledger.add_pick("pick-1")
    result = await run("cancellations", "cancel-early", cancel())
    assert result["state"] == "cancelled", result["details"]
    assert ledger.q("SELECT state FROM picks")[0]["state"] == "cancelled"
    assert ledger.q("SELECT status FROM orders")[0]["status"] == "cancelled"
    assert [r["amount"] for r in ledger.refunds()] == ["200.00"]
    assert ledger.refunds()[0]["key"] == "cancel-early:issue_refund"
    assert any("Order cancelled before shipment" in n for n in ledger.notes(CASE))
    assert ledger.q("SELECT status FROM case_status")[0]["status"] == "solved"


async def test_an_uncaptured_payment_is_voided_not_refunded(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    ledger.add_order(ORDER, "200.00", shipped=False, lines=LINES, status="confirmed")
    ledger.add_payment("pi_3", "200.00", status="authorized")
    ledger.add_pick("pick-1")
    result = await run("cancellations", "cancel-auth", cancel())
    assert result["state"] == "cancelled", result["details"]
    assert result["details"]["payment"]["action"] == "voided"
    assert ledger.q("SELECT status FROM payments")[0]["status"] == "canceled"
    assert ledger.count("calls", "op = 'void_payment' AND ref = 'cancel-auth:void_payment'") == 1
    assert ledger.q("SELECT status FROM orders")[0]["status"] == "cancelled"
    assert ledger.refunds() == []


async def test_a_payment_the_service_refuses_to_void_becomes_a_finance_task(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    ledger.add_order(ORDER, "200.00", shipped=False, lines=LINES, status="confirmed")
    ledger.add_payment("pi_3", "200.00", status="authorized")
    ledger.add_pick("pick-1")
    original = runtime.ports.payments
    assert original is not None

    class Refusing(type(original)):  # type: ignore[misc]
        async def void_payment(self, payment_ref: str, *, idempotency_key: str) -> None:
            raise ConflictRejected("the authorization expired", downstream="payments")

    runtime.ports.payments = Refusing(ledger)
    try:
        result = await run("cancellations", "cancel-refused", cancel())
    finally:
        runtime.ports.payments = original
    assert result["state"] == "finance_exception"
    assert result["details"]["payment"]["failure"]["code"] == "conflict"
    assert ledger.q("SELECT status FROM orders")[0]["status"] == "cancelled"


async def test_an_already_picked_order_is_not_cancelled(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    ledger.add_order(ORDER, "200.00", shipped=False, lines=LINES, status="confirmed")
    ledger.add_payment("pi_3", "200.00")
    ledger.q("INSERT INTO picks VALUES ('pick-1', 'picked')")
    result = await run("cancellations", "cancel-picked", cancel())
    assert result["state"] == "not_cancelled"
    assert "already picked" in result["details"]["reason"]
    assert ledger.q("SELECT status FROM orders")[0]["status"] == "confirmed"
    assert ledger.refunds() == []


async def test_after_shipment_a_cancellation_turns_into_a_return(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    ledger.add_order(ORDER, "200.00", shipped=True, lines=LINES)
    ledger.add_payment("pi_3", "200.00")
    result = await run("cancellations", "cancel-late", cancel())
    assert result["state"] == "converted_to_return"
    child = return_workflow_id("cancel-late")
    assert result["details"]["return_workflow_id"] == child
    for _ in range(100):
        if (await process_status(child, with_steps=False))["state"] == "awaiting_receipt":
            break
        await asyncio.sleep(0.05)
    expectation = ledger.q("SELECT lines FROM expectations")
    assert expectation and "MUG-1" in expectation[0]["lines"]
    assert ledger.q("SELECT status FROM orders")[0]["status"] == "completed"
    assert ledger.refunds() == []


def replace(**extra: Any) -> dict:
    return {
        "order_id": ORDER,
        "payment_ref": "pi_3",
        "customer_id": derive_id(EntityKind.CUSTOMER, "test", "ada"),
        "lines": [{"sku": "MUG-1", "quantity": 2}],
        "case_ref": CASE,
        "requested_at": "2026-03-05T10:00:00+00:00",
        **extra,
    }


async def test_replacement_in_stock_creates_a_zero_price_order(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    ledger.add_order(ORDER, "200.00", lines=LINES)
    ledger.add_payment("pi_3", "200.00")
    ledger.add_stock("MUG-1", "STO", 5)
    result = await run("replacements", "replace-ok", replace())
    assert result["state"] == "replaced", result["details"]
    new_order = replacement_order_id("replace-ok")
    row = ledger.q("SELECT total, status FROM orders WHERE order_id = ?", new_order)[0]
    assert (row["total"], row["status"]) == ("0.00", "confirmed")
    assert ledger.refunds() == [] and ledger.credit_notes() == 0
    assert any(f"Replacement order {new_order}" in n for n in ledger.notes(CASE))


async def test_replacement_out_of_stock_refunds_and_tells_the_customer(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    ledger.add_order(ORDER, "200.00", lines=LINES)
    ledger.add_payment("pi_3", "200.00")
    ledger.add_stock("MUG-1", "STO", 1)
    result = await run("replacements", "replace-none", replace())
    assert result["state"] == "refunded_instead", result["details"]
    assert result["details"]["short"] == ["MUG-1 (1 of 2)"]
    assert ledger.count("orders") == 1  # no replacement order
    assert ledger.credit_notes() == 1
    assert [r["amount"] for r in ledger.refunds()] == ["50.00"]
    assert any("A refund of 50.00 EUR was issued instead" in n for n in ledger.notes(CASE))
    assert ledger.q("SELECT status FROM case_status")[0]["status"] == "solved"
