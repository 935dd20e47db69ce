"""The System API listings on Tryton: orders, invoices, returns, stock positions, accounts.

Implements :class:`retailsync.views.erp_queries.ErpQueries` next to the ERP port: every record
is mapped to the canonical model (ids from the cross-reference table, or derived from the ERP
id for records the hub did not create). Pages are ordered by Tryton record id and the cursor is
the last id of the page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from retailsync.connectors.erp import mapping_invoice, mapping_order
from retailsync.connectors.erp.adapter.outbound import (
    INVOICE,
    SALE,
    SHIPMENT_RETURN,
    TrytonErpAdapter,
)
from retailsync.connectors.erp.client import Domain, Record
from retailsync.connectors.erp.errors import ErpNotFound
from retailsync.connectors.erp.mapping_common import aware, derived_id, last_change, money
from retailsync.connectors.erp.mapping_inventory import position
from retailsync.domain.customers import AccountStatus
from retailsync.domain.finance import FinancialPosting, PostingKind, PostingStatus
from retailsync.domain.identifiers import EntityKind, is_valid_id
from retailsync.domain.inventory import InventoryPosition
from retailsync.domain.money import Money
from retailsync.domain.orders import Order, OrderLine, OrderStatus
from retailsync.domain.returns import ReturnAuthorization, ReturnLine, ReturnReason, ReturnStatus
from retailsync.views.erp_queries import CustomerAccount, ErpPage

__all__ = ["TrytonErpQueries"]

RETURN_PREFIX = "rma\\_%"
LINE_FIELDS = ("sequence", "product", "quantity", "unit_price", "amount", "description", "type")
ORDER_STATES_BY_STATUS: Mapping[OrderStatus, Domain] = {
    OrderStatus.PENDING: [("state", "in", ["draft", "quotation"])],
    OrderStatus.CONFIRMED: [("state", "=", "confirmed")],
    OrderStatus.PROCESSING: [
        ("state", "=", "processing"),
        ("shipment_state", "not in", ["partially shipped", "sent"]),
    ],
    OrderStatus.PARTIALLY_SHIPPED: [
        ("state", "=", "processing"),
        ("shipment_state", "=", "partially shipped"),
    ],
    OrderStatus.SHIPPED: [("state", "=", "processing"), ("shipment_state", "=", "sent")],
    OrderStatus.COMPLETED: [("state", "=", "done")],
    OrderStatus.CANCELLED: [("state", "=", "cancelled")],
}
"""Canonical status -> the Tryton sale domain that selects it (see mapping_order)."""
INVOICE_STATES_BY_STATUS: Mapping[PostingStatus, list[str]] = {
    status: [state for state, s in mapping_invoice.POSTING_STATUS_BY_STATE.items() if s is status]
    for status in PostingStatus
}


def _after(cursor: str | None) -> Domain:
    if cursor is None:
        return []
    try:
        return [("id", ">", int(cursor))]
    except ValueError:
        raise ErpNotFound(f"{cursor!r} is not a cursor this listing gave out") from None


def _page(records: Sequence[Record], items: list[Any], limit: int) -> ErpPage[Any]:
    more = len(records) == limit and records
    return ErpPage(items=items, next_cursor=str(records[-1]["id"]) if more else None)


class TrytonErpQueries:
    """:class:`~retailsync.views.erp_queries.ErpQueries` on the Tryton adapter."""

    def __init__(self, adapter: TrytonErpAdapter) -> None:
        self.adapter = adapter
        self.client = adapter.client

    # --- orders -----------------------------------------------------------------------------

    async def list_orders(
        self,
        *,
        status: OrderStatus | None = None,
        customer_id: str | None = None,
        changed_since: dt.datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> ErpPage[Order]:
        domain: Domain = [
            ["OR", ("reference", "=", None), ("reference", "not like", RETURN_PREFIX)],
            *_after(cursor),
        ]
        if status is not None:
            if status not in ORDER_STATES_BY_STATUS:
                return ErpPage([], None)  # the ERP does not know deliveries or holds
            domain += ORDER_STATES_BY_STATUS[status]
        if customer_id is not None:
            party = await self.adapter.external_id(EntityKind.CUSTOMER, customer_id)
            if party is None:
                return ErpPage([], None)
            domain.append(("party", "=", party))
        if changed_since is not None:
            since = changed_since.astimezone(dt.UTC).replace(tzinfo=None)
            domain.append(["OR", ("create_date", ">=", since), ("write_date", ">=", since)])
        records = await self.client.search_read(
            SALE,
            domain,
            [*mapping_order.SALE_FIELDS, "lines", "untaxed_amount", "tax_amount", "sale_date"],
            limit=limit,
            order=[("id", "ASC")],
        )
        return _page(records, await self._orders(records), limit)

    async def order_document(self, order_id: str) -> Order:
        sale_id = await self.adapter._sale_id(order_id)
        assert sale_id is not None
        records = await self.client.read(
            SALE,
            [sale_id],
            [*mapping_order.SALE_FIELDS, "lines", "untaxed_amount", "tax_amount", "sale_date"],
        )
        (order,) = await self._orders(records, order_ids={sale_id: order_id})
        return order

    async def _order_id(self, sale: Record) -> str:
        known = await self.adapter.canonical_id(EntityKind.ORDER, sale["id"])
        if known is not None:
            return known
        reference = sale.get("reference") or ""
        if is_valid_id(reference, EntityKind.ORDER):
            return str(reference)
        return derived_id(EntityKind.ORDER, SALE, sale["id"])

    async def _orders(
        self, sales: Sequence[Record], order_ids: Mapping[int, str] | None = None
    ) -> list[Order]:
        company = await self.adapter.company()
        currency = company.currency
        line_ids = [line for sale in sales for line in sale["lines"]]
        lines = {
            rec["id"]: rec for rec in await self.client.read("sale.line", line_ids, LINE_FIELDS)
        }
        skus = await self.adapter.skus(
            rec["product"] for rec in lines.values() if rec.get("product")
        )
        orders = []
        for sale in sales:
            records = [lines[i] for i in sale["lines"] if lines[i].get("type", "line") == "line"]
            if not records:
                continue  # a sale without product lines is not an order the hub can describe
            orders.append(
                await self._order(sale, records, skus, currency, (order_ids or {}).get(sale["id"]))
            )
        return orders

    async def _order(
        self,
        sale: Record,
        records: Sequence[Record],
        skus: Mapping[int, str],
        currency: str,
        order_id: str | None,
    ) -> Order:
        tax_total = money(sale.get("tax_amount"), currency)
        amounts = [money(rec.get("amount"), currency) for rec in records]
        weights = [max(Decimal(0), a.amount) for a in amounts]
        taxes = (
            tax_total.allocate(weights)
            if sum(weights) > 0
            else [Money.zero(currency)] * len(records)
        )
        lines = [
            OrderLine(
                line_no=int(rec.get("sequence") or number),
                sku=skus[rec["product"]],
                description=(rec.get("description") or None),
                quantity=max(1, int(rec["quantity"])),
                unit_price=money(rec.get("unit_price"), currency),
                line_total=amount,
                tax=tax,
            )
            for number, (rec, amount, tax) in enumerate(
                zip(records, amounts, taxes, strict=True), start=1
            )
        ]
        description = sale.get("description") or ""
        channel = description.split(" order ", 1)[0] if " order " in description else "erp"
        party = sale.get("party")
        customer = (
            await self.adapter.canonical_id(EntityKind.CUSTOMER, int(party)) if party else None
        )
        placed = aware(sale.get("create_date")) or aware(last_change(sale))
        assert placed is not None
        subtotal = money(sale.get("untaxed_amount"), currency)
        return Order(
            id=order_id or await self._order_id(sale),
            customer_id=customer,
            channel=channel[:200] or "erp",
            status=mapping_order.order_status(sale["state"], sale.get("shipment_state")),
            currency=currency,
            lines=lines,
            subtotal=subtotal,
            shipping_total=Money.zero(currency),
            tax_total=tax_total,
            grand_total=money(sale.get("total_amount"), currency),
            placed_at=placed,
        )

    # --- invoices ---------------------------------------------------------------------------

    async def list_invoices(
        self,
        *,
        order_id: str | None = None,
        kind: PostingKind | None = None,
        status: PostingStatus | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> ErpPage[FinancialPosting]:
        domain: Domain = [("type", "=", "out"), *_after(cursor)]
        if order_id is not None:
            sale_id = await self.adapter._sale_id(order_id, required=False)
            if sale_id is None:
                return ErpPage([], None)
            domain.append(("sales", "=", sale_id))
        if kind is PostingKind.INVOICE:
            domain.append(("total_amount", ">=", Decimal(0)))
        elif kind is PostingKind.CREDIT_NOTE:
            domain.append(("total_amount", "<", Decimal(0)))
        elif kind is not None:
            return ErpPage([], None)  # payments and write-offs are not invoices
        if status is not None:
            domain.append(("state", "in", INVOICE_STATES_BY_STATUS[status]))
        records = await self.client.search_read(
            INVOICE, domain, mapping_invoice.INVOICE_FIELDS, limit=limit, order=[("id", "ASC")]
        )
        return _page(records, await self._postings(records), limit)

    async def invoice(self, posting_id: str) -> FinancialPosting:
        invoice_id = await self.adapter.external_id(EntityKind.POSTING, posting_id)
        if invoice_id is None:
            raise ErpNotFound(f"the ERP has no invoice or credit note for {posting_id}")
        records = await self.client.read(INVOICE, [invoice_id], mapping_invoice.INVOICE_FIELDS)
        if not records:
            raise ErpNotFound(f"the ERP has no invoice or credit note for {posting_id}")
        (posting,) = await self._postings(records)
        return posting

    async def _postings(self, records: Sequence[Record]) -> list[FinancialPosting]:
        company = await self.adapter.company()
        sale_ids = sorted({s for rec in records for s in rec.get("sales") or ()})
        sales = {
            rec["id"]: rec
            for rec in await self.client.read(SALE, sale_ids, ["reference", "origin"])
        }
        postings = []
        for rec in records:
            sale = sales.get(rec["sales"][0]) if rec.get("sales") else None
            rma_id = order_id = None
            if sale is not None:
                reference = sale.get("reference") or ""
                if is_valid_id(reference, EntityKind.RETURN):
                    rma_id = reference
                    order_id = await self.adapter.order_id_of_return(sale)
                else:
                    order_id = await self._order_id(sale)
            posting_id = await self.adapter.canonical_id(EntityKind.POSTING, rec["id"])
            if posting_id is None:
                posting_id = derived_id(EntityKind.POSTING, INVOICE, rec["id"])
                await self.adapter.link(EntityKind.POSTING, posting_id, rec["id"])
            postings.append(
                mapping_invoice.to_posting(
                    rec,
                    posting_id=posting_id,
                    currency=company.currency,
                    order_id=order_id
                    if order_id and is_valid_id(order_id, EntityKind.ORDER)
                    else None,
                    rma_id=rma_id,
                )
            )
        return postings

    # --- returns ----------------------------------------------------------------------------

    async def list_returns(
        self,
        *,
        order_id: str | None = None,
        status: ReturnStatus | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> ErpPage[ReturnAuthorization]:
        domain: Domain = [("reference", "like", RETURN_PREFIX), *_after(cursor)]
        if order_id is not None:
            sale_id = await self.adapter._sale_id(order_id, required=False)
            if sale_id is None:
                return ErpPage([], None)
            domain.append(("origin", "=", f"{SALE},{sale_id}"))
        records = await self.client.search_read(
            SALE,
            domain,
            [*mapping_order.SALE_FIELDS, "lines"],
            limit=limit,
            order=[("id", "ASC")],
        )
        returns = await self._returns(records)
        if status is not None:
            returns = [rma for rma in returns if rma.status is status]
        return _page(records, returns, limit)

    async def return_authorization(self, rma_id: str) -> ReturnAuthorization:
        sale_id, sale = await self.adapter._return_sale(rma_id)
        (rma,) = await self._returns([{**sale, "id": sale_id}])
        return rma

    async def _returns(self, sales: Sequence[Record]) -> list[ReturnAuthorization]:
        line_ids = [line for sale in sales for line in sale.get("lines", ())]
        lines = {
            rec["id"]: rec for rec in await self.client.read("sale.line", line_ids, LINE_FIELDS)
        }
        skus = await self.adapter.skus(
            rec["product"] for rec in lines.values() if rec.get("product")
        )
        shipment_ids = [s for sale in sales for s in sale.get("shipment_returns") or ()]
        shipments = {
            rec["id"]: rec["state"]
            for rec in await self.client.read(SHIPMENT_RETURN, shipment_ids, ["state"])
        }
        result = []
        for sale in sales:
            items = [lines[i] for i in sale.get("lines", ()) if lines[i].get("product")]
            order_id = await self.adapter.order_id_of_return(sale)
            if not items or order_id is None or not is_valid_id(order_id, EntityKind.ORDER):
                continue
            received = bool(sale.get("shipment_returns")) and all(
                shipments.get(s) == "done" for s in sale["shipment_returns"]
            )
            requested = aware(sale.get("create_date")) or aware(last_change(sale))
            assert requested is not None
            result.append(
                ReturnAuthorization(
                    id=sale["reference"],
                    order_id=order_id,
                    status=_return_status(sale["state"], received),
                    lines=[
                        ReturnLine(
                            sku=skus[rec["product"]],
                            quantity=max(1, abs(int(rec["quantity"]))),
                            reason=_reason(rec.get("description")),
                        )
                        for rec in items
                    ],
                    requested_at=requested,
                )
            )
        return result

    # --- stock ------------------------------------------------------------------------------

    async def list_positions(
        self,
        *,
        location: str | None = None,
        skus: list[str] | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> ErpPage[InventoryPosition]:
        company = await self.adapter.company()
        code = location or company.storage_code
        location_id = company.location_id(code)
        domain: Domain = [("code", "!=", None), *_after(cursor)]
        if skus:
            domain.append(("code", "in", sorted(set(skus))))
        records = await self.client.with_context(
            "product.product",
            "search_read",
            [domain, 0, limit, [["id", "ASC"]], ["code", "quantity", "forecast_quantity"]],
            locations=[location_id],
        )
        now = dt.datetime.now(dt.UTC)
        items = [
            position(
                sku=rec["code"],
                location=code,
                quantity=rec["quantity"],
                forecast_quantity=rec["forecast_quantity"],
                as_of=now,
            )
            for rec in records
        ]
        return _page(records, items, limit)

    # --- customers --------------------------------------------------------------------------

    async def customer_account(self, customer_id: str) -> CustomerAccount:
        party_id = await self.adapter.external_id(EntityKind.CUSTOMER, customer_id)
        if party_id is None:
            raise ErpNotFound(f"the ERP has no customer for {customer_id}")
        company = await self.adapter.company()
        records = await self.client.read("party.party", [party_id], ["active", "receivable"])
        if not records:
            raise ErpNotFound(f"the ERP has no customer for {customer_id}")
        (party,) = records
        return CustomerAccount(
            customer_id=customer_id,
            account_status=AccountStatus.ACTIVE
            if party.get("active", True)
            else AccountStatus.CLOSED,
            receivable=money(party.get("receivable"), company.currency),
            as_of=dt.datetime.now(dt.UTC),
        )


def _return_status(state: str, received: bool) -> ReturnStatus:
    if state == "cancelled":
        return ReturnStatus.CANCELLED
    if state == "done":
        return ReturnStatus.CLOSED
    if received:
        return ReturnStatus.RECEIVED
    if state in {"confirmed", "processing"}:
        return ReturnStatus.AUTHORIZED
    return ReturnStatus.REQUESTED


def _reason(description: str | None) -> ReturnReason:
    """``"Return of SKU: damaged"`` (how the adapter describes return lines) -> the reason."""
    word = (description or "").rpartition(":")[2].strip()
    try:
        return ReturnReason(word)
    except ValueError:
        return ReturnReason.OTHER
