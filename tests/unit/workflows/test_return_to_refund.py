"""Return-to-refund on the durable runtime, against file-backed fakes of the ports."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from workflow_fakes import Ledger

from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.workflows import steps
from retailsync.workflows.errors import InvalidWarehouseReceipt, NoReturnAwaitingReceipt
from retailsync.workflows.returns import deliver_warehouse_receipt
from retailsync.workflows.runtime import WorkflowRuntime
from retailsync.workflows.service import process_result, process_status, start_process

ORDER = derive_id(EntityKind.ORDER, "test", "2001")
CASE = "ZD-5001"


def seed(ledger: Ledger) -> None:
    ledger.add_order(ORDER, "200.00", lines={"MUG-1": (4, "25.00"), "TEE-2": (2, "50.00")})
    ledger.add_payment("pi_2", "200.00")


def request(*lines: tuple[str, int], **extra: Any) -> dict:
    return {
        "order_id": ORDER,
        "payment_ref": "pi_2",
        "lines": [{"sku": sku, "quantity": q, "reason": "damaged"} for sku, q in lines],
        "case_ref": CASE,
        "requested_by": "agent-bob",
        "requested_at": "2026-03-05T10:00:00+00:00",
        **extra,
    }


async def start_and_wait_for_receipt(workflow_id: str, body: dict) -> str:
    await start_process("returns", workflow_id, body)
    for _ in range(200):
        status = await process_status(workflow_id, with_steps=False)
        if status["state"] == "awaiting_receipt":
            return steps.derived_return_id(workflow_id)
        assert status["status"] != "SUCCESS", status
        await asyncio.sleep(0.05)
    raise AssertionError(f"{workflow_id} never waited for the warehouse")


def received(*lines: tuple[str, int]) -> dict:
    return {
        "type": "retailsync.return.received",
        "data": {
            "order_id": ORDER,
            "version": 10,
            "location": "WH1",
            "lines": [{"sku": sku, "quantity": q} for sku, q in lines],
            "received_at": "2026-03-08T09:00:00+00:00",
        },
    }


def inspected(*lines: tuple[str, str, int]) -> dict:
    return {
        "type": "retailsync.return.inspected",
        "data": {
            "version": 11,
            "lines": [
                {
                    "sku": sku,
                    "result": {
                        "outcome": outcome,
                        "accepted_quantity": accepted,
                        "inspected_at": "2026-03-08T10:00:00+00:00",
                    },
                }
                for sku, outcome, accepted in lines
            ],
            "inspected_at": "2026-03-08T10:00:00+00:00",
        },
    }


async def test_full_return_restocks_credits_refunds_and_closes_the_case(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    seed(ledger)
    rma = await start_and_wait_for_receipt("return-full", request(("MUG-1", 2)))
    assert ledger.count("expectations") == 1 and ledger.refunds() == []
    assert any("Return" in n and "authorized" in n for n in ledger.notes(CASE))
    assert await deliver_warehouse_receipt(rma, received(("MUG-1", 2))) is True
    assert await deliver_warehouse_receipt(rma, inspected(("MUG-1", "restock", 2))) is True
    result = await process_result("return-full")
    assert result["state"] == "completed", result
    assert [r["amount"] for r in ledger.refunds()] == ["50.00"]
    assert ledger.refunds()[0]["key"] == "return-full:issue_refund"
    assert ledger.credit_notes() == 1
    assert ledger.q("SELECT received FROM returns")[0]["received"] == 1
    assert ledger.count("adjustments") == 0  # everything stays in stock
    assert ledger.count("calls", "op = 'settle_return'") == 0
    assert ledger.q("SELECT status FROM case_status")[0]["status"] == "solved"
    assert any("Refund of 50.00 EUR issued" in n for n in ledger.notes(CASE))
    # A redelivery after the end is absorbed, never applied twice.
    assert await deliver_warehouse_receipt(rma, inspected(("MUG-1", "restock", 2))) is False


async def test_partial_return_with_per_line_inspection(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    seed(ledger)
    rma = await start_and_wait_for_receipt("return-partial", request(("MUG-1", 3), ("TEE-2", 2)))
    # Two of three mugs came back, one of them sellable; both tees are scrapped.
    await deliver_warehouse_receipt(rma, received(("MUG-1", 2), ("TEE-2", 2)))
    await deliver_warehouse_receipt(rma, inspected(("MUG-1", "restock", 1), ("TEE-2", "scrap", 0)))
    result = await process_result("return-partial")
    assert result["state"] == "completed", result["details"].get("failure")
    lines = {line["sku"]: line for line in result["details"]["lines"]}
    assert (lines["MUG-1"]["credited"], lines["MUG-1"]["restocked"]) == (1, 1)
    assert (lines["MUG-1"]["written_off"], lines["MUG-1"]["not_kept"]) == (1, 1)
    assert (lines["TEE-2"]["credited"], lines["TEE-2"]["written_off"]) == (2, 2)
    # The ERP credited only the accepted units: 1 x 25 + 2 x 50 (scrap is refunded).
    assert ledger.count("calls", "op = 'settle_return'") == 1
    assert [r["amount"] for r in ledger.refunds()] == ["125.00"]
    adjustments = sorted(
        (r["sku"], r["delta"]) for r in ledger.q("SELECT sku, delta FROM adjustments")
    )
    assert adjustments == [("MUG-1", -1), ("MUG-1", -1), ("TEE-2", -2)]
    assert ledger.count("adjustments", "sku = 'TEE-2' AND delta = -2") == 1
    notes = "\n".join(ledger.notes(CASE))
    assert "MUG-1: restock, 1 restocked, 1 written off, 1 not kept, 1 of 3 credited" in notes


async def test_nothing_refundable_closes_without_money(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    seed(ledger)
    rma = await start_and_wait_for_receipt("return-none", request(("TEE-2", 1)))
    await deliver_warehouse_receipt(rma, inspected(("TEE-2", "return_to_customer", 0)))
    result = await process_result("return-none")
    assert result["state"] == "closed_without_refund", result
    assert ledger.refunds() == [] and ledger.credit_notes() == 0
    assert ledger.count("adjustments", "delta = -1") == 1


async def test_an_erp_that_refuses_to_settle_a_partial_credit_hands_it_to_finance(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    seed(ledger)
    ledger.arm("settle_refused")
    rma = await start_and_wait_for_receipt("return-unsettled", request(("MUG-1", 2)))
    await deliver_warehouse_receipt(rma, inspected(("MUG-1", "restock", 1)))
    result = await process_result("return-unsettled")
    assert result["state"] == "finance_exception", result["details"].get("failure")
    failure = result["details"]["exception"]["failure"]
    assert (failure["step"], failure["code"]) == ("settle_return_in_erp", "policy")
    assert ledger.refunds() == [] and ledger.credit_notes() == 0
    assert ledger.q("SELECT status FROM case_status")[0]["status"] == "on_hold"


async def test_ineligible_returns_are_rejected_before_anything_is_authorized(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    seed(ledger)
    await start_process("returns", "return-too-many", request(("MUG-1", 9)))
    result = await process_result("return-too-many")
    assert result["state"] == "rejected"
    assert "quantity: 9 x MUG-1 is more than the 4 returnable" in result["details"]["reason"]
    await start_process(
        "returns", "return-late", request(("MUG-1", 1), ordered_at="2025-10-01T00:00:00+00:00")
    )
    assert (await process_result("return-late"))["details"]["reason"].startswith("return_window")
    assert ledger.count("calls") == 0
    assert any("Return not authorized" in n for n in ledger.notes(CASE))


async def test_a_receipt_for_an_unknown_return_or_a_bad_payload_is_refused(
    runtime: WorkflowRuntime,
) -> None:
    unknown = derive_id(EntityKind.RETURN, "nobody")
    with pytest.raises(NoReturnAwaitingReceipt):
        await deliver_warehouse_receipt(unknown, inspected(("MUG-1", "restock", 1)))
    with pytest.raises(InvalidWarehouseReceipt):
        await deliver_warehouse_receipt(unknown, {"type": "return.inspected", "data": {}})


async def test_no_parcel_in_time_expires_without_money(
    runtime: WorkflowRuntime, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    seed(ledger)
    options = replace(
        runtime.options,
        return_policy=replace(runtime.options.return_policy, receipt_timeout_seconds=0.5),
    )
    monkeypatch.setattr(runtime, "options", options)
    await start_process("returns", "return-lost", request(("MUG-1", 1)))
    result = await process_result("return-lost")
    assert result["state"] == "expired"
    assert result["details"]["compensation_result"][0]["effect"] == "erp_return"
    assert ledger.refunds() == [] and ledger.credit_notes() == 0
    assert any("never arrived" in n for n in ledger.notes(CASE))
