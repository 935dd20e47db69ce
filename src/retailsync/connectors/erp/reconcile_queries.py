"""The Tryton reads reconciliation needs: stock per product and location, sales by reference,
posted credit notes.

Each is a bulk read (one JSON-RPC call per page, never one per record), because a
reconciliation compares whole catalogues. Everything here is read-only and goes through
:class:`~retailsync.connectors.erp.client.TrytonClient`; records come back in canonical terms
(SKU, location code, canonical statuses, :class:`~retailsync.domain.money.Money`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from retailsync.connectors.erp import mapping_order
from retailsync.connectors.erp.client import Domain, TrytonClient
from retailsync.connectors.erp.errors import ErpNotFound
from retailsync.connectors.erp.mapping_common import aware, last_change, money
from retailsync.connectors.erp.mapping_inventory import position
from retailsync.domain.inventory import InventoryPosition
from retailsync.domain.money import Money
from retailsync.domain.orders import OrderStatus

__all__ = ["ErpCreditNote", "ErpSale", "TrytonReconcileQueries"]

SALE = "sale.sale"
INVOICE = "account.invoice"
PRODUCT = "product.product"


@dataclass(frozen=True, slots=True)
class ErpSale:
    """A sale as the ERP holds it, found by its reference (the canonical order id)."""

    reference: str
    erp_id: str
    status: OrderStatus
    total: Money


@dataclass(frozen=True, slots=True)
class ErpCreditNote:
    """A posted (or paid) credit note and the reference of the return sale it credits."""

    erp_id: str
    number: str
    amount: Money  # positive: money owed back
    sale_reference: str | None
    posted_at: dt.datetime | None


class TrytonReconcileQueries:
    """Bulk, read-only Tryton queries for the reconciliation sources."""

    def __init__(self, client: TrytonClient) -> None:
        self.client = client
        self._currency: str | None = None
        self._locations: dict[str, int] | None = None

    async def currency(self) -> str:
        """The company currency (ISO 4217), read once."""
        if self._currency is None:
            context = await self.client.context()
            (company,) = await self.client.read(
                "company.company", [int(context["company"])], ["currency.code"]
            )
            self._currency = str(company["currency."]["code"])
        return self._currency

    async def location_id(self, code: str) -> int:
        if self._locations is None:
            records = await self.client.search_read(
                "stock.location", [("code", "!=", None)], ["code"]
            )
            self._locations = {str(rec["code"]): int(rec["id"]) for rec in records}
        try:
            return self._locations[code]
        except KeyError:
            raise ErpNotFound(
                f"the ERP has no stock location with code {code!r}; known: "
                f"{sorted(self._locations)} (check reconcile.sources.erp_locations)"
            ) from None

    async def stock_by_location(
        self, location: str, *, page_size: int = 500
    ) -> AsyncIterator[list[InventoryPosition]]:
        """Every product with a SKU and its stock at ``location``, in SKU order, a page a call.

        ``quantity`` is on hand; planned outgoing moves count as reserved (as for
        ``ErpPort.get_stock``). Products with no stock there are included with zero.
        """
        location_id = await self.location_id(location)
        offset = 0
        while True:
            now = dt.datetime.now(dt.UTC)
            records = await self.client.with_context(
                PRODUCT,
                "search_read",
                [
                    [("code", "!=", None), ("type", "=", "goods")],
                    offset,
                    page_size,
                    [["code", "ASC"], ["id", "ASC"]],
                    ["code", "quantity", "forecast_quantity"],
                ],
                locations=[location_id],
            )
            if records:
                yield [
                    position(
                        sku=str(rec["code"]),
                        location=location,
                        quantity=rec["quantity"],
                        forecast_quantity=rec["forecast_quantity"],
                        as_of=now,
                    )
                    for rec in records
                ]
            if len(records) < page_size:
                return
            offset += page_size

    async def sales_by_reference(self, references: Sequence[str]) -> list[ErpSale]:
        """The sales whose reference is one of ``references`` (one call), in reference order."""
        if not references:
            return []
        currency = await self.currency()
        records = await self.client.search_read(
            SALE,
            [("reference", "in", sorted(set(references)))],
            ["reference", "state", "shipment_state", "total_amount"],
            order=[("reference", "ASC"), ("id", "ASC")],
        )
        return [
            ErpSale(
                reference=str(rec["reference"]),
                erp_id=str(rec["id"]),
                status=mapping_order.order_status(rec["state"], rec.get("shipment_state")),
                total=mapping_order.order_total(rec, currency),
            )
            for rec in records
        ]

    async def posted_credit_notes(
        self, *, page_size: int = 200, reference_like: str | None = None
    ) -> AsyncIterator[list[ErpCreditNote]]:
        """Customer credit notes that are posted or paid, a page a call, by ERP id.

        ``reference_like`` keeps only credit notes on sales whose reference matches the SQL
        ``LIKE`` pattern (``"rma\\_%"``: returns the hub created).
        """
        currency = await self.currency()
        last_id = 0
        while True:
            domain: Domain = [
                ("type", "=", "out"),
                ("total_amount", "<", Decimal(0)),
                ("state", "in", ["posted", "paid"]),
                ("id", ">", last_id),
            ]
            if reference_like is not None:
                domain.append(("sales.reference", "like", reference_like))
            records = await self.client.search_read(
                INVOICE,
                domain,
                ["number", "total_amount", "sales", "create_date", "write_date"],
                limit=page_size,
                order=[("id", "ASC")],
            )
            if not records:
                return
            sale_ids = sorted({s for rec in records for s in rec.get("sales") or ()})
            references = {
                int(rec["id"]): rec.get("reference")
                for rec in await self.client.read(SALE, sale_ids, ["reference"])
            }
            yield [_credit_note(rec, references, currency) for rec in records]
            if len(records) < page_size:
                return
            last_id = int(records[-1]["id"])


def _credit_note(
    record: dict[str, Any], references: dict[int, Any], currency: str
) -> ErpCreditNote:
    sales = record.get("sales") or ()
    reference = references.get(int(sales[0])) if sales else None
    return ErpCreditNote(
        erp_id=str(record["id"]),
        number=str(record.get("number") or record["id"]),
        amount=money(abs(Decimal(record.get("total_amount") or 0)), currency),
        sale_reference=str(reference) if reference else None,
        posted_at=aware(last_change(record)),
    )
