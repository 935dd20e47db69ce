"""The reads the System APIs need beyond :class:`~retailsync.ports.erp.ErpPort`: listings.

A port extension: the ERP connector implements it next to the port
(``retailsync.connectors.erp.queries``). Every answer is in canonical terms; pages are ordered
by the ERP's own record order and ``next_cursor`` is an opaque string for the next page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from pydantic import BaseModel

from retailsync.domain.customers import AccountStatus
from retailsync.domain.finance import FinancialPosting, PostingKind, PostingStatus
from retailsync.domain.inventory import InventoryPosition
from retailsync.domain.money import Money
from retailsync.domain.orders import Order, OrderStatus
from retailsync.domain.returns import ReturnAuthorization, ReturnStatus

__all__ = ["CustomerAccount", "ErpPage", "ErpQueries"]

T = TypeVar("T")


@dataclass(frozen=True)
class ErpPage(Generic[T]):
    """One page of a listing; ``next_cursor`` is None on the last page."""

    items: list[T]
    next_cursor: str | None


class CustomerAccount(BaseModel):
    """A customer's standing in the ERP: may they order, and what do they owe."""

    customer_id: str
    account_status: AccountStatus
    receivable: Money
    as_of: datetime


class ErpQueries(Protocol):
    """Listings and canonical documents read from the ERP."""

    async def list_orders(
        self,
        *,
        status: OrderStatus | None = None,
        customer_id: str | None = None,
        changed_since: datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> ErpPage[Order]: ...

    async def order_document(self, order_id: str) -> Order:
        """The canonical order (with its lines) as the ERP holds it."""
        ...

    async def list_invoices(
        self,
        *,
        order_id: str | None = None,
        kind: PostingKind | None = None,
        status: PostingStatus | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> ErpPage[FinancialPosting]: ...

    async def invoice(self, posting_id: str) -> FinancialPosting: ...

    async def list_returns(
        self,
        *,
        order_id: str | None = None,
        status: ReturnStatus | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> ErpPage[ReturnAuthorization]: ...

    async def return_authorization(self, rma_id: str) -> ReturnAuthorization: ...

    async def list_positions(
        self,
        *,
        location: str | None = None,
        skus: list[str] | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> ErpPage[InventoryPosition]: ...

    async def customer_account(self, customer_id: str) -> CustomerAccount: ...
