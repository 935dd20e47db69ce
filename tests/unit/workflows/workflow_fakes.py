"""File-backed stand-ins for the ERP, payments, service desk and warehouse ports.

They keep their state in one SQLite file, so a workflow process killed with SIGKILL and
restarted sees what the first process did (like a real remote system would), and they honour
the same idempotency contracts as the real adapters: the ERP on canonical ids, payments /
warehouse / service desk on the idempotency key. Each records every mutating call it received
(``calls``) so tests can assert "exactly one credit note, exactly one refund".
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from retailsync.domain.cases import CaseStatus, ServiceCase
from retailsync.domain.customers import Customer
from retailsync.domain.finance import FinancialPosting, PostingKind, PostingStatus
from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.domain.inventory import InventoryAdjustment, InventoryPosition
from retailsync.domain.money import Money
from retailsync.domain.orders import Order, OrderStatus
from retailsync.domain.returns import ReturnAuthorization
from retailsync.domain.shipments import Shipment, ShipmentLine, ShipmentStatus
from retailsync.ports.commerce import StorefrontOrder, StorefrontOrderLine
from retailsync.ports.erp import ErpOrderState, ErpReturnState
from retailsync.ports.payments import PaymentState, PaymentStatus, RefundRecord, RefundStatus
from retailsync.ports.warehouse import Allocation, ExpectedReturnLine
from retailsync.resilience.errors import (
    ConflictRejected,
    DownstreamUnavailable,
    PolicyRejected,
    UnknownReference,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, status TEXT, total TEXT,
    currency TEXT, shipped INTEGER, invoiced_at TEXT, lines TEXT);
CREATE TABLE IF NOT EXISTS returns (rma_id TEXT PRIMARY KEY, order_id TEXT, lines TEXT,
    received INTEGER DEFAULT 0, credit_posted INTEGER DEFAULT 0, credit_amount TEXT);
CREATE TABLE IF NOT EXISTS adjustments (id TEXT PRIMARY KEY, sku TEXT, location TEXT, delta INT);
CREATE TABLE IF NOT EXISTS stock (sku TEXT, location TEXT, on_hand INT,
    PRIMARY KEY (sku, location));
CREATE TABLE IF NOT EXISTS payments (ref TEXT PRIMARY KEY, status TEXT, amount TEXT,
    currency TEXT, refunded TEXT DEFAULT '0', decline INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS refunds (key TEXT PRIMARY KEY, refund_ref TEXT, payment_ref TEXT,
    amount TEXT, currency TEXT, refund_id TEXT);
CREATE TABLE IF NOT EXISTS notes (key TEXT PRIMARY KEY, case_ref TEXT, body TEXT);
CREATE TABLE IF NOT EXISTS case_status (case_ref TEXT PRIMARY KEY, status TEXT);
CREATE TABLE IF NOT EXISTS expectations (key TEXT PRIMARY KEY, rma_id TEXT, lines TEXT);
CREATE TABLE IF NOT EXISTS picks (task_id TEXT PRIMARY KEY, state TEXT);
CREATE TABLE IF NOT EXISTS calls (n INTEGER PRIMARY KEY AUTOINCREMENT, system TEXT, op TEXT,
    ref TEXT);
CREATE TABLE IF NOT EXISTS faults (name TEXT PRIMARY KEY, remaining INT);
CREATE TABLE IF NOT EXISTS storefront (ref TEXT PRIMARY KEY, data TEXT, status TEXT,
    tracking TEXT, note TEXT);
"""

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Ledger:
    """The shared state of every fake, in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._db() as db:
            db.executescript(SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    def q(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        db = self._db()
        try:
            return list(db.execute(sql, args).fetchall())
        finally:
            db.close()

    def call(self, system: str, op: str, ref: str) -> None:
        self.q("INSERT INTO calls (system, op, ref) VALUES (?, ?, ?)", system, op, ref)

    def fault(self, name: str) -> bool:
        """Consume one injected fault named ``name``; True when one was armed."""
        rows = self.q("SELECT remaining FROM faults WHERE name = ?", name)
        if not rows or rows[0]["remaining"] == 0:
            return False
        self.q("UPDATE faults SET remaining = remaining - 1 WHERE name = ?", name)
        return True

    def arm(self, name: str, times: int = 1) -> None:
        self.q("INSERT OR REPLACE INTO faults VALUES (?, ?)", name, times)

    # --- seeding ---------------------------------------------------------------------------

    def add_order(
        self,
        order_id: str,
        total: str,
        currency: str = "EUR",
        *,
        shipped: bool = True,
        lines: Mapping[str, tuple[int, str]] | None = None,
        status: str = "completed",
    ) -> None:
        self.q(
            "INSERT OR REPLACE INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)",
            order_id,
            status,
            total,
            currency,
            int(shipped),
            NOW.isoformat(),
            json.dumps({sku: [q, p] for sku, (q, p) in (lines or {}).items()}),
        )

    def add_payment(
        self, ref: str, amount: str, currency: str = "EUR", status: str = "captured"
    ) -> None:
        self.q(
            "INSERT OR REPLACE INTO payments (ref, status, amount, currency) VALUES (?, ?, ?, ?)",
            ref,
            status,
            amount,
            currency,
        )

    def add_stock(self, sku: str, location: str, on_hand: int) -> None:
        self.q("INSERT OR REPLACE INTO stock VALUES (?, ?, ?)", sku, location, on_hand)

    def add_storefront_order(
        self,
        ref: str,
        lines: Mapping[str, tuple[int, str]],
        *,
        currency: str = "EUR",
        customer_ref: str | None = "cust-1",
        email: str | None = "ada@example.com",
        status: str = "pending",
    ) -> None:
        data = {
            "currency": currency,
            "customer_ref": customer_ref,
            "email": email,
            "lines": [{"sku": sku, "quantity": q, "price": p} for sku, (q, p) in lines.items()],
        }
        self.q(
            "INSERT OR REPLACE INTO storefront (ref, data, status) VALUES (?, ?, ?)",
            ref,
            json.dumps(data),
            status,
        )

    def storefront(self, ref: str) -> sqlite3.Row:
        return self.q("SELECT * FROM storefront WHERE ref = ?", ref)[0]

    def add_pick(self, task_id: str) -> None:
        self.q("INSERT OR REPLACE INTO picks VALUES (?, 'open')", task_id)

    # --- assertions ------------------------------------------------------------------------

    def count(self, table: str, where: str = "1=1", *args: Any) -> int:
        return int(self.q(f"SELECT count(*) AS n FROM {table} WHERE {where}", *args)[0]["n"])

    def credit_notes(self) -> int:
        return self.count("returns", "credit_posted = 1")

    def refunds(self) -> list[sqlite3.Row]:
        return self.q("SELECT * FROM refunds")

    def notes(self, case_ref: str) -> list[str]:
        return [r["body"] for r in self.q("SELECT body FROM notes WHERE case_ref = ?", case_ref)]


def _money(amount: str, currency: str) -> Money:
    return Money.of(Decimal(amount), currency)


class FakeErp:
    """The ERP port: idempotent on canonical ids (order, RMA, adjustment), like the adapter."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def _order(self, order_id: str) -> sqlite3.Row:
        if self.ledger.fault("erp_down"):
            raise DownstreamUnavailable("ERP answered 503", downstream="erp")
        rows = self.ledger.q("SELECT * FROM orders WHERE order_id = ?", order_id)
        if not rows:
            raise UnknownReference(f"the ERP has no order {order_id}", downstream="erp")
        return rows[0]

    def _state(self, row: sqlite3.Row) -> ErpOrderState:
        postings = (
            FinancialPosting(
                id=derive_id(EntityKind.POSTING, row["order_id"], "invoice"),
                kind=PostingKind.INVOICE,
                status=PostingStatus.POSTED,
                amount=_money(row["total"], row["currency"]),
                created_at=datetime.fromisoformat(row["invoiced_at"]),
            ),
        )
        lines = json.loads(row["lines"] or "{}")
        shipments = (
            (
                Shipment(
                    id=derive_id(EntityKind.SHIPMENT, row["order_id"], "1"),
                    order_id=row["order_id"],
                    status=ShipmentStatus.DELIVERED,
                    carrier="DHL",
                    lines=[ShipmentLine(sku=sku, quantity=q) for sku, (q, _p) in lines.items()],
                ),
            )
            if row["shipped"] and lines
            else ()
        )
        return ErpOrderState(
            shipments=shipments,
            order_id=row["order_id"],
            erp_id=f"sale-{row['order_id'][-6:]}",
            status=OrderStatus(row["status"]),
            erp_state=row["status"],
            total=_money(row["total"], row["currency"]),
            postings=postings,
            cancellable=not row["shipped"] and row["status"] != "cancelled",
        )

    async def get_order(self, order_id: str) -> ErpOrderState:
        return self._state(self._order(order_id))

    async def find_or_create_customer(self, customer: Customer) -> str:
        return customer.id

    async def create_order(self, order: Order, customer: Customer | None = None) -> ErpOrderState:
        return await self.submit_order(order, customer)

    async def confirm_order(self, order_id: str) -> ErpOrderState:
        return await self.get_order(order_id)

    async def submit_order(self, order: Order, customer: Customer | None = None) -> ErpOrderState:
        if not self.ledger.q("SELECT 1 FROM orders WHERE order_id = ?", order.id):
            self.ledger.call("erp", "submit_order", order.id)
            self.ledger.add_order(
                order.id,
                format(order.grand_total.amount, "f"),
                order.currency,
                shipped=False,
                lines={
                    ln.sku: (ln.quantity, format(ln.unit_price.amount, "f")) for ln in order.lines
                },
                status="confirmed",
            )
        return await self.get_order(order.id)

    async def cancel_order(self, order_id: str) -> ErpOrderState:
        row = self._order(order_id)
        if row["shipped"]:
            raise ConflictRejected(f"order {order_id} has shipped", downstream="erp")
        if row["status"] != "cancelled":
            self.ledger.call("erp", "cancel_order", order_id)
            self.ledger.q("UPDATE orders SET status = 'cancelled' WHERE order_id = ?", order_id)
        return await self.get_order(order_id)

    async def record_dispatch(self, order_id: str) -> ErpOrderState:
        self._order(order_id)
        self.ledger.q(
            "UPDATE orders SET shipped = 1, status = 'shipped' WHERE order_id = ?", order_id
        )
        return await self.get_order(order_id)

    async def post_invoices(self, order_id: str) -> ErpOrderState:
        return await self.get_order(order_id)

    def _return_state(self, rma_id: str) -> ErpReturnState:
        rows = self.ledger.q("SELECT * FROM returns WHERE rma_id = ?", rma_id)
        if not rows:
            raise UnknownReference(f"the ERP has no return {rma_id}", downstream="erp")
        row = rows[0]
        order = self._order(row["order_id"])
        notes = (
            FinancialPosting(
                id=derive_id(EntityKind.POSTING, rma_id, "credit"),
                kind=PostingKind.CREDIT_NOTE,
                status=PostingStatus.POSTED if row["credit_posted"] else PostingStatus.DRAFT,
                amount=_money(row["credit_amount"], order["currency"]),
                document_number=f"CN-{rma_id[-6:]}",
                created_at=NOW,
            ),
        )
        return ErpReturnState(
            rma_id=rma_id,
            order_id=row["order_id"],
            erp_id=f"ret-{rma_id[-6:]}",
            received=bool(row["received"]),
            credit_notes=notes,
        )

    async def create_return(self, rma: ReturnAuthorization) -> ErpReturnState:
        if self.ledger.fault("erp_down"):
            raise DownstreamUnavailable("ERP answered 503", downstream="erp")
        if not self.ledger.q("SELECT 1 FROM returns WHERE rma_id = ?", rma.id):
            order = self._order(rma.order_id)
            prices = json.loads(order["lines"])
            total = Decimal(0)
            for line in rma.lines:
                if line.sku not in prices:
                    raise UnknownReference(f"order {rma.order_id} has no line {line.sku}")
                if line.quantity > prices[line.sku][0]:
                    raise ConflictRejected(
                        f"{line.quantity} x {line.sku} is more than the {prices[line.sku][0]} "
                        "ordered",
                        downstream="erp",
                    )
                total += Decimal(prices[line.sku][1]) * line.quantity
            self.ledger.call("erp", "create_return", rma.id)
            self.ledger.q(
                "INSERT INTO returns (rma_id, order_id, lines, credit_amount) VALUES (?, ?, ?, ?)",
                rma.id,
                rma.order_id,
                json.dumps([[ln.sku, ln.quantity] for ln in rma.lines]),
                str(total),
            )
        return self._return_state(rma.id)

    async def receive_return(self, rma_id: str) -> ErpReturnState:
        self.ledger.q("UPDATE returns SET received = 1 WHERE rma_id = ?", rma_id)
        return self._return_state(rma_id)

    async def post_credit_note(self, rma_id: str) -> ErpReturnState:
        if self.ledger.fault("credit_note_refused"):
            raise PolicyRejected("the accounting period is closed", downstream="erp")
        state = self._return_state(rma_id)
        if not state.credited:
            self.ledger.call("erp", "post_credit_note", rma_id)
            self.ledger.q("UPDATE returns SET credit_posted = 1 WHERE rma_id = ?", rma_id)
        return self._return_state(rma_id)

    async def get_return(self, rma_id: str) -> ErpReturnState:
        return self._return_state(rma_id)

    def credited_units(self, rma_id: str) -> dict[str, int]:
        row = self.ledger.q("SELECT lines FROM returns WHERE rma_id = ?", rma_id)[0]
        return {sku: quantity for sku, quantity in json.loads(row["lines"])}

    async def get_stock(self, sku: str, location: str) -> InventoryPosition:
        rows = self.ledger.q(
            "SELECT on_hand FROM stock WHERE sku = ? AND location = ?", sku, location
        )
        return InventoryPosition(
            sku=sku,
            location=location,
            on_hand=rows[0]["on_hand"] if rows else 0,
            reserved=0,
            allocated=0,
            in_transit=0,
            as_of=NOW,
        )

    async def adjust_inventory(self, adjustment: InventoryAdjustment) -> InventoryPosition:
        if not self.ledger.q("SELECT 1 FROM adjustments WHERE id = ?", adjustment.id):
            self.ledger.call("erp", "adjust_inventory", adjustment.id)
            self.ledger.q(
                "INSERT INTO adjustments VALUES (?, ?, ?, ?)",
                adjustment.id,
                adjustment.sku,
                adjustment.location,
                adjustment.delta,
            )
            self.ledger.q(
                "INSERT INTO stock VALUES (?, ?, 0) ON CONFLICT DO NOTHING",
                adjustment.sku,
                adjustment.location,
            )
            self.ledger.q(
                "UPDATE stock SET on_hand = on_hand + ? WHERE sku = ? AND location = ?",
                adjustment.delta,
                adjustment.sku,
                adjustment.location,
            )
        return await self.get_stock(adjustment.sku, adjustment.location)

    async def settle_return(self, rma_id: str, credited: Mapping[str, int]) -> ErpReturnState:
        if self.ledger.fault("settle_refused"):
            raise PolicyRejected("the accounting period is closed", downstream="erp")
        state = self._return_state(rma_id)
        if state.credited:
            raise ConflictRejected(f"the credit note of {rma_id} is posted", downstream="erp")
        order = self._order(state.order_id)
        prices = json.loads(order["lines"])
        total = sum(
            (Decimal(prices[sku][1]) * units for sku, units in credited.items()), Decimal(0)
        )
        self.ledger.call("erp", "settle_return", rma_id)
        self.ledger.q(
            "UPDATE returns SET lines = ?, credit_amount = ? WHERE rma_id = ?",
            json.dumps([[sku, units] for sku, units in credited.items() if units]),
            str(total),
            rma_id,
        )
        return self._return_state(rma_id)


class FakePayments:
    """The payments port: a refund per idempotency key, declines on request."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def _payment(self, ref: str) -> sqlite3.Row:
        rows = self.ledger.q("SELECT * FROM payments WHERE ref = ?", ref)
        if not rows:
            raise UnknownReference(f"no payment {ref}", downstream="payments")
        return rows[0]

    async def payment_state(self, payment_ref: str) -> PaymentState:
        row = self._payment(payment_ref)
        amount = _money(row["amount"], row["currency"])
        captured = (
            amount
            if row["status"] in {"captured", "partially_refunded"}
            else Money.zero(row["currency"])
        )
        return PaymentState(
            payment_ref=payment_ref,
            status=PaymentStatus(row["status"]),
            amount=amount,
            amount_captured=captured,
            amount_refunded=_money(row["refunded"], row["currency"]),
        )

    async def issue_refund(
        self,
        *,
        payment_ref: str,
        idempotency_key: str,
        amount: Money | None = None,
        reason: str | None = None,
        order_ref: str | None = None,
        refund_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundRecord:
        existing = self.ledger.q("SELECT * FROM refunds WHERE key = ?", idempotency_key)
        if not existing:
            if self.ledger.fault("payments_down"):
                raise DownstreamUnavailable("payments answered 503", downstream="payments")
            if self.ledger.fault("refund_declined"):
                self.ledger.call("payments", "refund_declined", idempotency_key)
                raise PolicyRejected("card issuer declined the refund", downstream="payments")
            state = await self.payment_state(payment_ref)
            money = amount or state.refundable
            if money > state.refundable:
                raise ConflictRejected(f"{money} is more than {state.refundable} refundable")
            self.ledger.call("payments", "issue_refund", idempotency_key)
            ref = f"re_{abs(hash(idempotency_key)) % 10**10}"
            self.ledger.q(
                "INSERT INTO refunds VALUES (?, ?, ?, ?, ?, ?)",
                idempotency_key,
                ref,
                payment_ref,
                format(money.amount, "f"),
                money.currency,
                refund_id,
            )
            refunded = Decimal(self._payment(payment_ref)["refunded"]) + money.amount
            self.ledger.q(
                "UPDATE payments SET refunded = ?, status = ? WHERE ref = ?",
                str(refunded),
                "partially_refunded",
                payment_ref,
            )
            existing = self.ledger.q("SELECT * FROM refunds WHERE key = ?", idempotency_key)
        row = existing[0]
        return RefundRecord(
            refund_ref=row["refund_ref"],
            payment_ref=payment_ref,
            charge_ref=None,
            status=RefundStatus.SUCCEEDED,
            amount=_money(row["amount"], row["currency"]),
            created_at=NOW,
            refund_id=row["refund_id"],
        )

    async def void_payment(self, payment_ref: str, *, idempotency_key: str) -> None:
        row = self._payment(payment_ref)
        if row["status"] == "canceled":
            return
        if row["status"] != "authorized":
            raise ConflictRejected(f"payment {payment_ref} is {row['status']}", downstream="pay")
        self.ledger.call("payments", "void_payment", idempotency_key)
        self.ledger.q("UPDATE payments SET status = 'canceled' WHERE ref = ?", payment_ref)

    async def get_refund(self, refund_ref: str) -> RefundRecord:
        raise NotImplementedError

    async def list_refunds(self, payment_ref: str | None = None) -> Sequence[RefundRecord]:
        return []


class FakeServiceDesk:
    """The service desk port: one note per idempotency key."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def fetch_case(self, case_ref: str) -> ServiceCase:
        raise NotImplementedError

    def iter_cases(self) -> AsyncIterator[ServiceCase]:
        raise NotImplementedError

    async def add_internal_note(self, case_ref: str, body: str, *, idempotency_key: str) -> bool:
        if self.ledger.q("SELECT 1 FROM notes WHERE key = ?", idempotency_key):
            return False
        self.ledger.q("INSERT INTO notes VALUES (?, ?, ?)", idempotency_key, case_ref, body)
        return True

    async def set_case_status(self, case_ref: str, status: CaseStatus) -> None:
        self.ledger.q("INSERT OR REPLACE INTO case_status VALUES (?, ?)", case_ref, status.value)

    async def set_case_fields(
        self, case_ref: str, *, fields: Any = None, add_tags: Any = (), remove_tags: Any = ()
    ) -> None:
        return None

    async def link_order(self, case_ref: str, order_reference: str) -> None:
        return None


class FakeWarehouse:
    """The warehouse port: one expectation per key; picks cancelled once."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def expect_return(
        self,
        *,
        rma_reference: str,
        order_reference: str,
        location: str,
        lines: Sequence[ExpectedReturnLine],
        idempotency_key: str,
    ) -> str:
        if not self.ledger.q("SELECT 1 FROM expectations WHERE key = ?", idempotency_key):
            self.ledger.call("wms", "expect_return", idempotency_key)
            self.ledger.q(
                "INSERT INTO expectations VALUES (?, ?, ?)",
                idempotency_key,
                rma_reference,
                json.dumps([[ln.sku, ln.quantity] for ln in lines]),
            )
        return f"exp-{rma_reference[-6:]}"

    async def cancel_pick_task(self, task_id: str, *, reason: str, idempotency_key: str) -> None:
        rows = self.ledger.q("SELECT state FROM picks WHERE task_id = ?", task_id)
        if not rows:
            raise UnknownReference(f"no pick task {task_id}", downstream="wms")
        if rows[0]["state"] == "picked":
            raise ConflictRejected(f"pick task {task_id} is already picked", downstream="wms")
        self.ledger.q("UPDATE picks SET state = 'cancelled' WHERE task_id = ?", task_id)

    def iter_positions(
        self, *, sku: str | None = None, location: str | None = None
    ) -> AsyncIterator[InventoryPosition]:
        raise NotImplementedError

    def iter_allocations(
        self, *, sku: str | None = None, location: str | None = None
    ) -> AsyncIterator[Allocation]:
        raise NotImplementedError


class FakeCommerce:
    """The commerce port: storefront orders as JSON rows; status changes recorded once."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def get_order(self, order_ref: str) -> StorefrontOrder:
        rows = self.ledger.q("SELECT * FROM storefront WHERE ref = ?", order_ref)
        if not rows:
            raise UnknownReference(f"no storefront order {order_ref}", downstream="shopify")
        data = json.loads(rows[0]["data"])
        currency = data["currency"]
        lines = tuple(
            StorefrontOrderLine(
                line_ref=f"{order_ref}-{n}",
                sku=line["sku"],
                title=line.get("title", line["sku"] or ""),
                quantity=line["quantity"],
                unit_price=_money(line["price"], currency),
            )
            for n, line in enumerate(data["lines"], start=1)
        )
        total = sum((Decimal(x["price"]) * x["quantity"] for x in data["lines"]), Decimal(0))
        return StorefrontOrder(
            order_ref=order_ref,
            name=f"#{order_ref}",
            status=rows[0]["status"],
            financial_status="paid",
            fulfillment_status=None,
            total=Money.of(total, currency),
            created_at=NOW,
            updated_at=NOW,
            customer_ref=data.get("customer_ref"),
            customer_email=data.get("email"),
            lines=lines,
        )

    def iter_orders(self, **_: Any) -> AsyncIterator[StorefrontOrder]:
        raise NotImplementedError

    async def update_order_status(
        self,
        order_ref: str,
        status: str,
        *,
        idempotency_key: str,
        tracking_number: str | None = None,
        note: str | None = None,
    ) -> None:
        if self.ledger.fault("storefront_down"):
            raise DownstreamUnavailable("storefront answered 503", downstream="shopify")
        row = self.ledger.q("SELECT status FROM storefront WHERE ref = ?", order_ref)
        if row and row[0]["status"] == status:
            return
        self.ledger.call("storefront", f"status:{status}", idempotency_key)
        self.ledger.q(
            "UPDATE storefront SET status = ?, tracking = coalesce(?, tracking), note = ? "
            "WHERE ref = ?",
            status,
            tracking_number,
            note,
            order_ref,
        )

    async def set_available(
        self, *, inventory_item_ref: str, location_ref: str, available: int
    ) -> Any:
        raise NotImplementedError


def fake_ports(ledger: Ledger) -> Any:
    from retailsync.workflows.steps import WorkflowPorts

    return WorkflowPorts(
        erp=FakeErp(ledger),
        payments=FakePayments(ledger),
        service_desk=FakeServiceDesk(ledger),
        warehouse=FakeWarehouse(ledger),
        commerce=FakeCommerce(ledger),
    )
