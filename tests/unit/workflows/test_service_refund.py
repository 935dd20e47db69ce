"""Service-initiated refund on the durable runtime, against file-backed fakes of the ports."""

from __future__ import annotations

import asyncio
from typing import Any

from workflow_fakes import Ledger

from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.workflows.runtime import WorkflowRuntime
from retailsync.workflows.service import decide, process_result, process_status, start_process

ORDER = derive_id(EntityKind.ORDER, "test", "1001")
CASE = "ZD-4711"


def seed(ledger: Ledger, *, price: str = "25.00") -> None:
    ledger.add_order(ORDER, "200.00", lines={"MUG-1": (4, price), "TEE-2": (2, "50.00")})
    ledger.add_payment("pi_1", "200.00")


def request(amount: str = "25.00", sku: str = "MUG-1", quantity: int = 1, **extra: Any) -> dict:
    return {
        "order_id": ORDER,
        "payment_ref": "pi_1",
        "amount": {"amount": amount, "currency": "EUR"},
        "lines": [{"sku": sku, "quantity": quantity}],
        "reason": "damaged",
        "case_ref": CASE,
        "requested_by": "agent-bob",
        "requested_at": "2026-03-05T10:00:00+00:00",
        **extra,
    }


async def run(workflow_id: str, body: dict) -> dict:
    await start_process("refunds", workflow_id, body)
    return await process_result(workflow_id)


async def wait_state(workflow_id: str, state: str) -> dict:
    for _ in range(200):
        status = await process_status(workflow_id)
        if status["state"] == state:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"{workflow_id} never reached {state}: {status}")


async def test_small_refund_is_approved_by_policy_and_completes(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    seed(ledger)
    result = await run("refund-small", request())
    assert result["state"] == "completed", result
    assert ledger.credit_notes() == 1
    refunds = ledger.refunds()
    assert [(r["amount"], r["key"]) for r in refunds] == [("25.00", "refund-small:issue_refund")]
    assert any("Refund of 25.00 EUR issued" in n for n in ledger.notes(CASE))
    assert ledger.q("SELECT status FROM case_status")[0]["status"] == "solved"
    status = await process_status("refund-small")
    names = [s["name"] for s in status["steps"]]
    assert (
        names.index("read_erp_order")
        < names.index("post_credit_note")
        < names.index("issue_refund")
    )


async def test_starting_the_same_id_twice_runs_once(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    seed(ledger)
    assert await start_process("refunds", "refund-twice", request()) is True
    assert await start_process("refunds", "refund-twice", request()) is False
    await process_result("refund-twice")
    assert await start_process("refunds", "refund-twice", request()) is False
    assert len(ledger.refunds()) == 1


async def test_above_threshold_waits_for_a_person_and_an_approval_completes_it(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    seed(ledger)
    # 3 x TEE-2 is more than ordered: the policy (on the amount) asks a person first, and
    # only the ERP then refuses the lines.
    await start_process("refunds", "refund-big", request("150.00", "TEE-2", 3))
    status = await wait_state("refund-big", "awaiting_approval")
    assert any(r.startswith("approval_threshold") for r in status["details"]["reasons"])
    assert ledger.refunds() == []
    await decide("refund-big", approve=True, by="lead-anna")
    result = await process_result("refund-big")
    # The ERP refused 3 x TEE-2 (only 2 ordered): a permanent failure before any money.
    assert result["state"] == "failed"
    assert result["details"]["failure"]["step"] == "authorize_return_in_erp"
    assert ledger.refunds() == [] and ledger.credit_notes() == 0


async def test_approved_refund_above_threshold_pays_out(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    seed(ledger)
    await start_process(
        "refunds", "refund-approved", request("100.00", "TEE-2", 2, fraud_flag=True)
    )
    await wait_state("refund-approved", "awaiting_approval")
    await decide("refund-approved", approve=True, by="lead-anna")
    result = await process_result("refund-approved")
    assert result["state"] == "completed", result
    assert result["details"]["approved_by"] == "lead-anna"
    assert [r["amount"] for r in ledger.refunds()] == ["100.00"]


async def test_a_rejected_refund_touches_no_money(runtime: WorkflowRuntime, ledger: Ledger) -> None:
    seed(ledger)
    await start_process("refunds", "refund-rejected", request("150.00", "MUG-1", 4))
    await wait_state("refund-rejected", "awaiting_approval")
    await decide("refund-rejected", approve=False, by="lead-anna", reason="photo shows no damage")
    result = await process_result("refund-rejected")
    assert result["state"] == "rejected"
    assert result["details"]["reason"] == "photo shows no damage"
    assert ledger.refunds() == [] and ledger.credit_notes() == 0
    assert ledger.count("calls", "system IN ('erp', 'payments')") == 0
    assert any("Refund not issued" in n for n in ledger.notes(CASE))


async def test_an_unanswered_approval_escalates_then_expires(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    seed(ledger)
    await start_process("refunds", "refund-timeout", request("150.00", "MUG-1", 4))
    await wait_state("refund-timeout", "escalated")
    result = await process_result("refund-timeout")
    assert result["state"] == "rejected"
    assert result["details"]["rejected_by"] == "timeout"
    states = [t["state"] for t in result["trace"] if "state" in t]
    assert states.index("awaiting_approval") < states.index("escalated") < states.index("rejected")
    assert any("escalated" in n for n in ledger.notes(CASE))
    assert ledger.refunds() == []


async def test_a_declined_refund_after_the_credit_note_is_a_finance_exception(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    seed(ledger)
    ledger.arm("refund_declined")
    result = await run("refund-declined", request())
    assert result["state"] == "finance_exception"
    exception = result["details"]["exception"]
    assert exception["class"] == "finance"
    assert exception["failure"]["step"] == "issue_refund"
    assert exception["failure"]["kind"] == "business"
    assert exception["failure"]["code"] == "policy"
    undo = [c["effect"] for c in exception["compensation"]]
    assert undo == ["credit_note", "erp_return"]  # newest first
    assert ledger.credit_notes() == 1 and ledger.refunds() == []
    assert ledger.q("SELECT status FROM case_status")[0]["status"] == "on_hold"


async def test_a_refused_credit_note_fails_before_money_moves(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    seed(ledger)
    ledger.arm("credit_note_refused")
    result = await run("refund-closed-period", request())
    assert result["state"] == "failed"
    assert result["details"]["failure"]["step"] == "post_credit_note"
    assert ledger.refunds() == [] and ledger.credit_notes() == 0


async def test_transient_failures_are_retried_and_exhausted_ones_are_classified(
    runtime: WorkflowRuntime, ledger: Ledger
) -> None:
    seed(ledger)
    ledger.arm("erp_down", 2)
    result = await run("refund-flaky", request())
    assert result["state"] == "completed"
    ledger.arm("payments_down", 10)
    result = await run("refund-down", request("50.00", "TEE-2", 1))
    assert result["state"] == "finance_exception"
    failure = result["details"]["exception"]["failure"]
    assert failure["kind"] == "transient" and failure["attempts"] == 3


async def test_policy_rejection_names_the_rule(runtime: WorkflowRuntime, ledger: Ledger) -> None:
    seed(ledger)
    result = await run("refund-late", request(ordered_at="2025-12-01T00:00:00+00:00"))
    assert result["state"] == "rejected"
    assert result["details"]["reason"].startswith("refund_window")
