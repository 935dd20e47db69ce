"""What the hub needs from the ERP, the system of record for orders, stock and money.

Everything is in canonical terms (:mod:`retailsync.domain`): canonical ids in, canonical
statuses and :class:`~retailsync.domain.money.Money` out. The ERP's own ids are carried only as
opaque strings (``erp_id``) and kept in the cross-reference table by the adapter.

Mutating calls are idempotent on the canonical id they carry: creating the same order, return
or adjustment twice finds the first one instead of making a second. Failures raise the errors in
``retailsync.connectors.erp.errors`` (business vs transient), never a silent success.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from retailsync.domain.customers import Customer
from retailsync.domain.finance import FinancialPosting
from retailsync.domain.inventory import InventoryAdjustment, InventoryPosition
from retailsync.domain.money import Money
from retailsync.domain.orders import Order, OrderStatus
from retailsync.domain.returns import ReturnAuthorization
from retailsync.domain.shipments import Shipment


@dataclass(frozen=True)
class ErpOrderState:
    """An order as the ERP holds it: status, shipments and invoices, in canonical terms."""

    order_id: str
    erp_id: str
    status: OrderStatus
    erp_state: str  # the ERP's own words, e.g. "processing / shipment waiting / invoice pending"
    total: Money
    shipments: tuple[Shipment, ...] = ()
    postings: tuple[FinancialPosting, ...] = ()
    cancellable: bool = False


@dataclass(frozen=True)
class ErpReturnState:
    """A return as the ERP holds it: whether the goods are back and the credit note posted."""

    rma_id: str
    order_id: str
    erp_id: str
    received: bool
    credit_notes: tuple[FinancialPosting, ...] = field(default_factory=tuple)

    @property
    def credited(self) -> bool:
        return any(note.status.value in {"posted", "settled"} for note in self.credit_notes)


class ErpPort(Protocol):
    """Orders, returns, stock and customers in the ERP."""

    async def find_or_create_customer(self, customer: Customer) -> str:
        """The ERP's id for ``customer``, creating the customer there when it is new."""
        ...

    async def create_order(self, order: Order, customer: Customer | None = None) -> ErpOrderState:
        """Record ``order`` in the ERP (draft); a second call finds the first order."""
        ...

    async def confirm_order(self, order_id: str) -> ErpOrderState:
        """Confirm the order so the ERP plans shipments and invoices; raises if it did not."""
        ...

    async def submit_order(self, order: Order, customer: Customer | None = None) -> ErpOrderState:
        """``create_order`` then ``confirm_order``."""
        ...

    async def get_order(self, order_id: str) -> ErpOrderState:
        """The order's current state in the ERP."""
        ...

    async def cancel_order(self, order_id: str) -> ErpOrderState:
        """Cancel an order that has not shipped; a business error once anything shipped."""
        ...

    async def record_dispatch(self, order_id: str) -> ErpOrderState:
        """Mark the order's open shipments as sent (the warehouse handed them to the carrier)."""
        ...

    async def post_invoices(self, order_id: str) -> ErpOrderState:
        """Post the order's draft invoices in the ERP's books."""
        ...

    async def create_return(self, rma: ReturnAuthorization) -> ErpReturnState:
        """Record an authorized return (and its draft credit note); idempotent on the RMA id."""
        ...

    async def receive_return(self, rma_id: str) -> ErpReturnState:
        """Book the returned goods back into stock."""
        ...

    async def post_credit_note(self, rma_id: str) -> ErpReturnState:
        """Post the return's credit note (the money owed back to the customer)."""
        ...

    async def settle_return(self, rma_id: str, credited: Mapping[str, int]) -> ErpReturnState:
        """Reduce the return's draft credit note to ``credited`` units per SKU.

        Inspection may accept fewer units than were authorized: the draft credit note then
        credits only those (a SKU at 0 leaves the credit note; every SKU at 0 cancels the draft
        credit note). Idempotent: settling again with the same units changes nothing. Refused
        with a business error once the credit note is posted (correct it in the ERP instead).
        """
        ...

    async def get_return(self, rma_id: str) -> ErpReturnState:
        """The return's current state in the ERP."""
        ...

    async def get_stock(self, sku: str, location: str) -> InventoryPosition:
        """On-hand and reserved units of ``sku`` at ``location`` as the ERP counts them."""
        ...

    async def adjust_inventory(self, adjustment: InventoryAdjustment) -> InventoryPosition:
        """Apply a signed stock change once (idempotent on the adjustment id)."""
        ...


@runtime_checkable
class ErpOrderBatchReads(Protocol):
    """An ERP port that can read the state of many orders in one request (optional).

    The order 360 groups its freshness checks through it, so keeping many watched orders
    confirmed costs a few ERP requests (and rate-limit tokens), not one per order.
    """

    async def get_orders(self, order_ids: Sequence[str]) -> dict[str, ErpOrderState]:
        """The current state of each of ``order_ids`` the ERP has; orders it does not have
        are left out of the answer."""
        ...
