"""The money-back part the service refund and the return-to-refund workflows share.

Both read the order and the payment, authorize a return in the ERP, post its credit note, pay
the credited amount back, audit it, close the case and announce the refund; and both end the
same three ways when they cannot: rejected (nothing touched), failed (no money moved) and
finance exception (a credit note is posted but the money is blocked). :class:`RefundRun` holds
those pieces for one workflow run; what differs between the workflows (the case-note wording,
the refund reason, what the audit entry and the result add) is handed in.

Replay: DBOS recovers a workflow by running its body again and matching each checkpointed step,
in order, by name; the step names are also the idempotency keys the outside systems saw. Every
method here runs exactly the steps, with the names and in the order, that each workflow ran
inline before these pieces were shared, so a workflow started before that change recovers
after it. Keep names and order as they are (``tests/unit/workflows/test_step_sequences.py``
pins them); changing either needs a new application version (docs/workflows.md, "Upgrading
with workflows in flight").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from retailsync.domain.catalogue import (
    CreditNotePosted,
    EventPayload,
    RefundCompleted,
    RefundFailed,
    RefundRejected,
)
from retailsync.domain.identifiers import EntityKind, is_valid_id
from retailsync.domain.money import Money
from retailsync.workflows import steps
from retailsync.workflows.process import ProcessRun, now_iso

Json = dict[str, Any]


def event_of(payload: EventPayload) -> tuple[str, Json]:
    """``(type, data)`` of a canonical event, as :meth:`ProcessRun.emit` takes it."""
    return f"retailsync.{payload.event_name}", payload.model_dump(mode="json")


def service_case_id(case_ref: str | None) -> str | None:
    """``case_ref`` when it is a canonical case id (what the ERP may store), else None."""
    return case_ref if case_ref and is_valid_id(case_ref, EntityKind.CASE) else None


def order_placed_at(order: Json, given: datetime | None, requested_at: datetime) -> datetime:
    """When the order was placed: as the request says, else when the ERP invoiced it, else when
    the refund or return was requested."""
    invoiced_at = order["invoiced_at"]
    return given or (datetime.fromisoformat(invoiced_at) if invoiced_at else requested_at)


class RefundRequest(Protocol):
    """What a refund or return request names: the order, the payment and the case."""

    @property
    def order_id(self) -> str: ...

    @property
    def payment_ref(self) -> str: ...

    @property
    def case_ref(self) -> str | None: ...


@dataclass(frozen=True)
class RefundWording:
    """How one workflow words what the shared pieces write for people to read."""

    subject: str
    """Opens the failure note ("<subject> could not be completed (...); no money moved.")."""
    not_done: str
    """Opens the rejection note ("<not_done>: <reason>")."""
    blocked: str
    """Opens the finance-exception note ("<blocked> (<message>); finance has been ...")."""
    credit_note_undo: str
    """What finance should do with credit notes that are posted but not paid back."""


@dataclass(frozen=True)
class OrderAndPayment:
    """The ERP's view of the order and the payment service's view of the payment."""

    order: Json
    payment: Json


@dataclass(frozen=True)
class ReadFailed:
    """The order or the payment could not be read; ``reason`` is what to reject with."""

    reason: str


@dataclass(frozen=True)
class RefundRun:
    """The refund one workflow run works towards: its ids, its case and its wording."""

    run: ProcessRun
    refund_id: str
    rma_id: str
    order_id: str
    payment_ref: str
    case_ref: str | None
    wording: RefundWording

    @classmethod
    def of(cls, run: ProcessRun, request: RefundRequest, wording: RefundWording) -> RefundRun:
        """The refund of the running workflow; its ids derive from the workflow id."""
        return cls(
            run=run,
            refund_id=steps.derived_refund_id(run.workflow_id),
            rma_id=steps.derived_return_id(run.workflow_id),
            order_id=request.order_id,
            payment_ref=request.payment_ref,
            case_ref=request.case_ref,
            wording=wording,
        )

    # --- steps on the way ------------------------------------------------------------------

    async def read_order_and_payment(self) -> OrderAndPayment | ReadFailed:
        """Steps ``read_erp_order`` then ``read_payment`` (not reached when the order cannot
        be read)."""
        order = await self.run.run("read_erp_order", steps.read_erp_order, self.order_id)
        if not order["ok"]:
            return ReadFailed(f"order: {order['failure']['message']}")
        payment = await self.run.run("read_payment", steps.read_payment, self.payment_ref)
        if not payment["ok"]:
            return ReadFailed(f"payment: {payment['failure']['message']}")
        return OrderAndPayment(order=order["value"], payment=payment["value"])

    async def authorize_return(self, rma: Json, *, undo: str) -> Json:
        """Step ``authorize_return_in_erp``; once it succeeded, ``undo`` is what to do with the
        ERP return should a later step fail (compensation ``erp_return``)."""
        created = await self.run.run(
            "authorize_return_in_erp",
            steps.authorize_return_in_erp,
            self.run.key("authorize_return_in_erp"),
            rma,
        )
        if created["ok"]:
            self.run.on_failure_undo("erp_return", undo)
        return created

    async def post_credit_note(self, *, reason: str) -> Json:
        """Step ``post_credit_note``; once posted, the notes become a finance task should the
        money not follow (compensation ``credit_note``) and ``emit_credit_note_posted``
        announces every posted one."""
        posted = await self.run.run(
            "post_credit_note",
            steps.post_credit_note,
            self.run.key("post_credit_note"),
            self.rma_id,
        )
        if not posted["ok"]:
            return posted
        credit = posted["value"]
        documents = [note["document"] for note in credit["credit_notes"]]
        self.run.on_failure_undo(
            "credit_note",
            f"credit note(s) {documents} for {self.rma_id} are posted but the money did not go "
            f"back: {self.wording.credit_note_undo}",
        )
        order_id = self.order_id if is_valid_id(self.order_id, EntityKind.ORDER) else None
        await self.run.emit(
            "emit_credit_note_posted",
            *[
                event_of(
                    CreditNotePosted(
                        posting_id=note["id"],
                        version=2,
                        document_number=note["document"] or note["id"],
                        order_id=order_id,
                        amount=steps.money_of(note["amount"]),
                        posted_at=datetime.fromisoformat(now_iso()),
                        refund_id=self.refund_id,
                        rma_id=self.rma_id,
                        reason=reason,
                    )
                )
                for note in credit["credit_notes"]
                if note["status"] in {"posted", "settled"}
            ],
        )
        return posted

    async def pay_back(
        self,
        credited: Money,
        *,
        reason: str,
        audited: Json,
        case_note: Callable[[str], str],
        **result: Any,
    ) -> Json:
        """Step ``issue_refund`` for the credited amount. Not paid: the
        :meth:`finance_exception`. Paid: nothing is left to undo; steps ``audit_refund``
        (``audited`` added to the entry), ``note_case_refunded`` (``case_note`` of the payment
        service's refund reference; the case solved) and ``emit_refund_completed``; end
        ``completed`` (``result`` added to the details)."""
        amount = steps.money_json(credited)
        paid = await self.run.run(
            "issue_refund",
            steps.issue_refund,
            self.run.key("issue_refund"),
            self.payment_ref,
            amount,
            self.refund_id,
            self.order_id,
            reason,
        )
        if not paid["ok"]:
            return await self.finance_exception(paid["failure"])
        self.run.compensations.clear()
        refund_ref = paid["value"]["refund_ref"]
        await self.run.audit(
            "audit_refund",
            "refund.completed",
            "refund",
            self.refund_id,
            {"amount": amount, "refund_ref": refund_ref, "rma_id": self.rma_id, **audited},
        )
        await self.run.note(
            "note_case_refunded", self.case_ref, case_note(refund_ref), status="solved"
        )
        await self.run.emit(
            "emit_refund_completed",
            event_of(
                RefundCompleted(
                    refund_id=self.refund_id,
                    version=3,
                    amount=credited,
                    payment_reference=refund_ref,
                    completed_at=datetime.fromisoformat(now_iso()),
                )
            ),
        )
        return await self.run.finish(
            "completed", refund_ref=refund_ref, amount=amount, rma_id=self.rma_id, **result
        )

    # --- the other ways it ends ------------------------------------------------------------

    async def reject(
        self, reason: str, *, rejected_by: str | None = "policy", event_version: int = 1
    ) -> Json:
        """End without touching money: steps ``note_case_rejected`` and
        ``emit_refund_rejected``; end ``rejected``."""
        await self.run.note(
            "note_case_rejected", self.case_ref, f"{self.wording.not_done}: {reason}"
        )
        await self.run.emit(
            "emit_refund_rejected",
            event_of(
                RefundRejected(
                    refund_id=self.refund_id,
                    version=event_version,
                    reason=reason[:200],
                    rejected_by=rejected_by,
                    rejected_at=datetime.fromisoformat(now_iso()),
                )
            ),
        )
        return await self.run.finish("rejected", reason=reason, rejected_by=rejected_by)

    async def fail(self, failure: Json) -> Json:
        """A permanent failure before any money moved: compensate, then steps
        ``note_case_failed`` and ``emit_refund_failed``; end ``failed``."""
        compensation = await self.run.compensate()
        await self.run.note(
            "note_case_failed",
            self.case_ref,
            f"{self.wording.subject} could not be completed ({failure['step']}: "
            f"{failure['message']}); no money moved.",
        )
        await self._announce_refund_failed(failure)
        return await self.run.finish("failed", failure=failure, compensation_result=compensation)

    async def finance_exception(self, failure: Json) -> Json:
        """A credit note may be posted but the money cannot follow automatically: compensate,
        then steps ``audit_finance_exception``, ``note_case_finance_exception`` (case on hold)
        and ``emit_refund_failed``; end ``finance_exception`` with the whole trace for finance
        to resolve. Never a silent half-state."""
        compensation = await self.run.compensate()
        await self.run.audit(
            "audit_finance_exception",
            "refund.finance_exception",
            "refund",
            self.refund_id,
            {"failure": failure, "compensation": compensation},
            reason=failure["message"],
        )
        await self.run.note(
            "note_case_finance_exception",
            self.case_ref,
            f"{self.wording.blocked} ({failure['message']}); finance has been asked to resolve it.",
            status="on_hold",
        )
        await self._announce_refund_failed(failure)
        return await self.run.finish(
            "finance_exception",
            exception={"class": "finance", "failure": failure, "compensation": compensation},
        )

    async def _announce_refund_failed(self, failure: Json) -> None:
        await self.run.emit(
            "emit_refund_failed",
            event_of(
                RefundFailed(
                    refund_id=self.refund_id,
                    version=3,
                    reason=failure["message"][:4000],
                    retryable=failure["kind"] == "transient",
                    failed_at=datetime.fromisoformat(now_iso()),
                )
            ),
        )
