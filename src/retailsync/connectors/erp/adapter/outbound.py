"""The ERP port implemented on Tryton: orders, returns, stock and customers over JSON-RPC.

Every ERP call goes through :class:`~retailsync.connectors.erp.client.TrytonClient`; record
shapes come from the ``mapping_*`` modules; the canonical id <-> Tryton id bindings live in the
cross-reference table (:mod:`retailsync.xref`, system ``"tryton"``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from retailsync import xref
from retailsync.connectors.erp import (
    mapping_customer,
    mapping_inventory,
    mapping_invoice,
    mapping_order,
    mapping_return,
    mapping_shipment,
)
from retailsync.connectors.erp.client import Record, TrytonClient
from retailsync.connectors.erp.errors import (
    ErpBusinessError,
    ErpNotFound,
    ErpOperationNotCarriedOut,
)
from retailsync.connectors.erp.mapping_common import SYSTEM, derived_id, reference_of
from retailsync.db import run_read, run_write
from retailsync.domain.customers import AddressRole, Customer
from retailsync.domain.finance import FinancialPosting
from retailsync.domain.identifiers import EntityKind
from retailsync.domain.inventory import InventoryAdjustment, InventoryPosition
from retailsync.domain.orders import Order, OrderStatus
from retailsync.domain.returns import ReturnAuthorization
from retailsync.domain.shipments import Shipment
from retailsync.ports.erp import ErpOrderState, ErpReturnState

SALE = "sale.sale"
SHIPMENT_OUT = "stock.shipment.out"
SHIPMENT_RETURN = "stock.shipment.out.return"
INVOICE = "account.invoice"
INVOICE_LINE = "account.invoice.line"

IMMUTABLE_LINKS = frozenset(
    {
        EntityKind.ORDER,
        EntityKind.SHIPMENT,
        EntityKind.POSTING,
        EntityKind.RETURN,
        EntityKind.INVENTORY_ADJUSTMENT,
    }
)
"""Documents whose cross-reference never changes once made (a customer's may: merges)."""
_MAX_REMEMBERED_LINKS = 50_000

ORDER_STATE_FIELDS = (
    *mapping_order.SALE_FIELDS,
    *(f"shipments.{name}" for name in mapping_shipment.SHIPMENT_FIELDS),
    *(f"shipments.outgoing_moves.{name}" for name in mapping_shipment.MOVE_FIELDS),
    "shipments.outgoing_moves.product.code",
    *(f"invoices.{name}" for name in mapping_invoice.INVOICE_FIELDS),
)
"""A sale with its shipments, their moves and product codes, and its invoices: Tryton reads
related records named ``field.subfield`` in the same call, so the ERP state of an order costs
one request (one rate-limit token) instead of five."""


@dataclass(frozen=True)
class ErpCompany:
    """What the adapter reads once from the ERP: company, currency, locations, payment term."""

    company_id: int
    currency_id: int
    currency: str
    payment_term_id: int
    locations: dict[str, int]  # code -> stock.location id
    lost_found_id: int
    storage_code: str

    def location_id(self, code: str) -> int:
        try:
            return self.locations[code]
        except KeyError:
            raise ErpNotFound(
                f"the ERP has no stock location with code {code!r}; known: {sorted(self.locations)}"
            ) from None


class TrytonErpAdapter:
    """:class:`~retailsync.ports.erp.ErpPort` on a Tryton server."""

    def __init__(
        self,
        client: TrytonClient,
        engine: Engine,
        *,
        warehouse_code: str = "WH",
        payment_term: str | None = None,
    ) -> None:
        self.client = client
        self.engine = engine
        self.warehouse_code = warehouse_code
        self.payment_term_name = payment_term
        self._company: ErpCompany | None = None
        self._external_ids: dict[tuple[EntityKind, str], int] = {}
        self._canonical_ids: dict[tuple[EntityKind, int], str] = {}

    # --- cross-reference -------------------------------------------------------------------

    async def external_id(self, kind: EntityKind, canonical_id: str) -> int | None:
        """The ERP id linked to ``canonical_id`` (None when not linked yet)."""
        known = self._external_ids.get((kind, canonical_id))
        if known is not None:
            return known
        value = await run_read(self.engine, self._read_external_id, kind, canonical_id)
        if value is not None:
            self._remember(kind, canonical_id, value)
        return value

    async def canonical_id(self, kind: EntityKind, external_id: int) -> str | None:
        """The canonical id linked to the ERP's ``external_id`` (None when not linked yet)."""
        known = self._canonical_ids.get((kind, external_id))
        if known is not None:
            return known
        value = await run_read(self.engine, self._read_canonical_id, kind, external_id)
        if value is not None:
            self._remember(kind, value, external_id)
        return value

    async def link(self, kind: EntityKind, canonical_id: str, external_id: int) -> None:
        """Record the link (a write: never blocking the event loop on SQLite's one writer)."""
        await run_write(self.engine, self._write_link, kind, canonical_id, external_id)
        self._remember(kind, canonical_id, external_id)

    def _read_external_id(self, kind: EntityKind, canonical_id: str) -> int | None:
        with self.engine.connect() as conn:
            value = xref.external_id_for(
                conn, entity_kind=kind.value, canonical_id=canonical_id, system=SYSTEM
            )
        return int(value) if value is not None else None

    def _read_canonical_id(self, kind: EntityKind, external_id: int) -> str | None:
        with self.engine.connect() as conn:
            return xref.canonical_id_for(
                conn, entity_kind=kind.value, system=SYSTEM, external_id=str(external_id)
            )

    def _write_link(self, kind: EntityKind, canonical_id: str, external_id: int) -> None:
        with self.engine.begin() as conn:
            xref.link(
                conn,
                entity_kind=kind.value,
                canonical_id=canonical_id,
                system=SYSTEM,
                external_id=str(external_id),
            )

    def _remember(self, kind: EntityKind, canonical_id: str, external_id: int) -> None:
        """Keep a document's link in memory: once made it never changes (customers may be
        merged, so theirs are always read)."""
        if kind not in IMMUTABLE_LINKS:
            return
        if len(self._external_ids) >= _MAX_REMEMBERED_LINKS:
            self._external_ids.clear()
            self._canonical_ids.clear()
        self._external_ids[(kind, canonical_id)] = external_id
        self._canonical_ids[(kind, external_id)] = canonical_id

    # --- company setup ---------------------------------------------------------------------

    async def company(self) -> ErpCompany:
        """The ERP company, currency, stock locations and payment term (read once)."""
        if self._company is not None:
            return self._company
        c = self.client
        context = await c.context()
        company_id = int(context["company"])
        (company,) = await c.read("company.company", [company_id], ["currency", "currency.code"])
        locations = {
            rec["code"]: rec["id"]
            for rec in await c.search_read("stock.location", [("code", "!=", None)], ["code"])
        }
        (warehouse,) = await c.read(
            "stock.location",
            [self._required(locations, self.warehouse_code)],
            ["storage_location", "storage_location.code", "lost_found_location"],
        )
        term_domain: list[Any] = (
            [("name", "=", self.payment_term_name)] if self.payment_term_name else []
        )
        terms = await c.search("account.invoice.payment_term", term_domain, limit=1)
        if not terms:
            raise ErpNotFound("the ERP has no payment term to put on sales; create one first")
        if not warehouse.get("lost_found_location"):
            raise ErpNotFound(
                f"warehouse {self.warehouse_code} has no lost-and-found location in the ERP; "
                "set one so inventory adjustments have a counterpart"
            )
        self._company = ErpCompany(
            company_id=company_id,
            currency_id=int(company["currency"]),
            currency=str(company["currency."]["code"]),
            payment_term_id=int(terms[0]),
            locations=locations,
            lost_found_id=int(warehouse["lost_found_location"]),
            storage_code=str(warehouse["storage_location."]["code"]),
        )
        return self._company

    @staticmethod
    def _required(locations: dict[str, int], code: str) -> int:
        if code not in locations:
            raise ErpNotFound(f"the ERP has no stock location with code {code!r}")
        return locations[code]

    async def _products(self, skus: Iterable[str]) -> dict[str, tuple[int, int]]:
        """SKU -> (product id, unit id); ErpNotFound naming every SKU the ERP does not sell."""
        wanted = sorted(set(skus))
        records = await self.client.search_read(
            "product.product", [("code", "in", wanted)], ["code", "default_uom"]
        )
        found = {rec["code"]: (int(rec["id"]), int(rec["default_uom"])) for rec in records}
        missing = [sku for sku in wanted if sku not in found]
        if missing:
            raise ErpNotFound(
                f"the ERP has no product with SKU {', '.join(missing)}; "
                "create it in the ERP catalogue or correct the order"
            )
        return found

    async def skus(self, product_ids: Iterable[int]) -> dict[int, str]:
        ids = sorted(set(product_ids))
        records = await self.client.read("product.product", ids, ["code"])
        return {int(rec["id"]): str(rec["code"]) for rec in records}

    # --- customers -------------------------------------------------------------------------

    async def find_or_create_customer(self, customer: Customer) -> str:
        known = await self.external_id(EntityKind.CUSTOMER, customer.id)
        if known is not None:
            return str(known)
        party_id: int | None = None
        if customer.email:
            found = await self.client.search(
                "party.party",
                [
                    (
                        "contact_mechanisms",
                        "where",
                        [("type", "=", "email"), ("value", "=", customer.email)],
                    )
                ],
                limit=1,
                order=[("id", "ASC")],
            )
            party_id = found[0] if found else None
            if party_id is not None:
                with self.engine.connect() as conn:
                    owner = xref.canonical_id_for(
                        conn,
                        entity_kind=EntityKind.CUSTOMER.value,
                        system=SYSTEM,
                        external_id=str(party_id),
                    )
                if owner is not None and owner != customer.id:
                    # Same e-mail, already known under another canonical id: the same person
                    # (the customer master's exact key). Book on that account; merging the two
                    # canonical ids is the customer master's call, not the ERP connector's.
                    return str(party_id)
        if party_id is None:
            countries = {a.country for a in customer.addresses}
            country_ids = await self._country_ids(countries)
            (party_id,) = await self.client.create(
                "party.party", [mapping_customer.party_values(customer, country_ids)]
            )
        await self.link(EntityKind.CUSTOMER, customer.id, party_id)
        return str(party_id)

    async def _country_ids(self, codes: Iterable[str]) -> dict[str, int]:
        codes = sorted(set(codes))
        if not codes:
            return {}
        records = await self.client.search_read(
            "country.country", [("code", "in", codes)], ["code"]
        )
        return {rec["code"]: int(rec["id"]) for rec in records}

    async def _party_for(self, order: Order, customer: Customer | None) -> int:
        if customer is not None:
            return int(await self.find_or_create_customer(customer))
        if order.customer_id:
            party = await self.external_id(EntityKind.CUSTOMER, order.customer_id)
            if party is not None:
                return party
        raise ErpBusinessError(
            f"order {order.id} names no customer the ERP knows "
            f"({order.customer_id or 'no customer id'}); pass the Customer so it can be created",
            operation="create_order",
        )

    async def _addresses_for(self, order: Order, party_id: int) -> tuple[int, int]:
        (party,) = await self.client.read("party.party", [party_id], ["addresses"])
        if not party["addresses"] and not (order.shipping_address or order.billing_address):
            raise ErpBusinessError(
                f"customer (ERP party {party_id}) has no address and order {order.id} gives none",
                operation="create_order",
            )
        records = await self.client.read(
            "party.address", party["addresses"], mapping_customer.ADDRESS_FIELDS
        )
        chosen: dict[AddressRole, int] = {}
        for wanted in (order.billing_address, order.shipping_address):
            if wanted is None:
                continue
            match = next((r for r in records if mapping_customer.same_address(r, wanted)), None)
            if match is None:
                country_ids = await self._country_ids([wanted.country])
                values = mapping_customer.address_values(wanted, country_ids.get(wanted.country))
                (new_id,) = await self.client.create(
                    "party.address", [{**values, "party": party_id}]
                )
                match = {"id": new_id, **values}
                records.append(match)
            chosen[wanted.role] = int(match["id"])
        default = int(records[0]["id"])
        invoice = chosen.get(AddressRole.BILLING, chosen.get(AddressRole.SHIPPING, default))
        shipment = chosen.get(AddressRole.SHIPPING, invoice)
        return invoice, shipment

    # --- orders ----------------------------------------------------------------------------

    async def _sale_id(self, order_id: str, *, required: bool = True) -> int | None:
        sale_id = await self.external_id(EntityKind.ORDER, order_id)
        if sale_id is not None:
            return sale_id
        found = await self.client.search(
            SALE, [("reference", "=", order_id)], order=[("id", "ASC")]
        )
        if found:
            await self.link(EntityKind.ORDER, order_id, found[0])
            return found[0]
        if required:
            raise ErpNotFound(f"the ERP has no sale for order {order_id}")
        return None

    async def create_order(self, order: Order, customer: Customer | None = None) -> ErpOrderState:
        existing = await self._sale_id(order.id, required=False)
        if existing is not None:
            return await self.get_order(order.id)
        company = await self.company()
        if order.currency != company.currency:
            raise ErpBusinessError(
                f"order {order.id} is in {order.currency} but the ERP company books in "
                f"{company.currency}; convert the order or configure a company for it",
                operation="create_order",
            )
        products = await self._products(line.sku for line in order.lines)
        party_id = await self._party_for(order, customer)
        invoice_address, shipment_address = await self._addresses_for(order, party_id)
        values = mapping_order.sale_values(
            order,
            company_id=company.company_id,
            currency_id=company.currency_id,
            party_id=party_id,
            invoice_address_id=invoice_address,
            shipment_address_id=shipment_address,
            payment_term_id=company.payment_term_id,
            products=products,
        )
        (sale_id,) = await self.client.create(SALE, [values])
        await self.link(EntityKind.ORDER, order.id, sale_id)
        return await self.get_order(order.id)

    async def confirm_order(self, order_id: str) -> ErpOrderState:
        sale_id = await self._sale_id(order_id)
        assert sale_id is not None
        state = await self._sale_state(sale_id)
        if state == "cancelled":
            raise ErpBusinessError(
                f"order {order_id} is cancelled in the ERP and cannot be confirmed",
                operation="confirm_order",
            )
        if state == "draft":
            await self.client.button(SALE, "quote", [sale_id])
            state = "quotation"
        if state == "quotation":
            await self.client.button(SALE, "confirm", [sale_id])
            state = await self._sale_state(sale_id)
        if state == "confirmed":
            # Tryton processes a confirmed sale after the commit and swallows any failure
            # there; processing again explicitly brings the reason back as a UserError.
            await self._process_or_explain(sale_id, order_id)
        return await self.get_order(order_id)

    async def _process_or_explain(self, sale_id: int, order_id: str) -> None:
        try:
            await self.client.button(SALE, "process", [sale_id])
        except ErpBusinessError as exc:
            raise ErpOperationNotCarriedOut(
                exc.erp_message,
                description=exc.description,
                operation=f"confirm_order({order_id})",
                expected_state="processing",
                actual_state="confirmed",
            ) from exc
        state = await self._sale_state(sale_id)
        if state == "confirmed":
            raise ErpOperationNotCarriedOut(
                "the sale stayed confirmed after an explicit process and the ERP gave no reason",
                operation=f"confirm_order({order_id})",
                expected_state="processing",
                actual_state=state,
            )

    async def _sale_state(self, sale_id: int) -> str:
        (record,) = await self.client.read(SALE, [sale_id], ["state"])
        return str(record["state"])

    async def submit_order(self, order: Order, customer: Customer | None = None) -> ErpOrderState:
        await self.create_order(order, customer)
        return await self.confirm_order(order.id)

    async def get_order(self, order_id: str) -> ErpOrderState:
        sale_id = await self._sale_id(order_id)
        assert sale_id is not None
        return await self._order_state(order_id, sale_id)

    async def get_orders(self, order_ids: Sequence[str]) -> dict[str, ErpOrderState]:
        """Many orders' states in one read (:class:`~retailsync.ports.erp.ErpOrderBatchReads`);
        orders the ERP does not have are left out."""
        sale_ids: dict[str, int] = {}
        for order_id in dict.fromkeys(order_ids):
            sale_id = await self._sale_id(order_id, required=False)
            if sale_id is not None:
                sale_ids[order_id] = sale_id
        if not sale_ids:
            return {}
        sales = await self.client.read(SALE, list(set(sale_ids.values())), ORDER_STATE_FIELDS)
        by_id = {int(sale["id"]): sale for sale in sales}
        states: dict[str, ErpOrderState] = {}
        for order_id, sale_id in sale_ids.items():
            if sale_id in by_id:
                states[order_id] = await self._state_of(order_id, sale_id, by_id[sale_id])
                # Mapping a sale takes a fraction of a millisecond; let the requests that share
                # this event loop in between the orders of a large group.
                await asyncio.sleep(0)
        return states

    async def _order_state(self, order_id: str, sale_id: int) -> ErpOrderState:
        (sale,) = await self.client.read(SALE, [sale_id], ORDER_STATE_FIELDS)
        return await self._state_of(order_id, sale_id, sale)

    async def _state_of(self, order_id: str, sale_id: int, sale: Record) -> ErpOrderState:
        """The canonical state of the sale read with :data:`ORDER_STATE_FIELDS`."""
        company = await self.company()
        shipment_records = sale.get("shipments.") or []
        moves = [move for rec in shipment_records for move in rec.get("outgoing_moves.") or []]
        skus = {int(m["product"]): str(m["product."]["code"]) for m in moves}
        shipments = await self._to_shipments(shipment_records, moves, skus, order_id=order_id)
        postings = await self._to_postings(sale.get("invoices.") or [], order_id=order_id)
        voided = self._voided(sale, shipments, postings)
        status = (
            OrderStatus.CANCELLED
            if voided
            else mapping_order.order_status(sale["state"], sale.get("shipment_state"))
        )
        return ErpOrderState(
            order_id=order_id,
            erp_id=str(sale_id),
            status=status,
            erp_state=mapping_order.describe_sale(sale),
            total=mapping_order.order_total(sale, company.currency),
            shipments=tuple(shipments),
            postings=tuple(postings),
            cancellable=not voided and self._cancellable(sale, shipments),
        )

    @staticmethod
    def _voided(
        sale: Record, shipments: Sequence[Shipment], postings: Sequence[FinancialPosting]
    ) -> bool:
        """A processing sale whose every shipment and invoice was cancelled (our cancel)."""
        if sale["state"] != "processing" or not (shipments or postings):
            return False
        documents = [s.status.value for s in shipments] + [p.status.value for p in postings]
        return all(value == "cancelled" for value in documents)

    @staticmethod
    def _cancellable(sale: Record, shipments: Sequence[Shipment]) -> bool:
        if sale["state"] in mapping_order.CANCELLABLE_SALE_STATES | {"confirmed"}:
            return True
        return sale["state"] == "processing" and all(s.status.value == "pending" for s in shipments)

    async def shipments(self, shipment_ids: Sequence[int], *, order_id: str) -> list[Shipment]:
        """Canonical shipments for Tryton customer shipments of one order."""
        if not shipment_ids:
            return []
        records = await self.client.read(
            SHIPMENT_OUT, shipment_ids, mapping_shipment.SHIPMENT_FIELDS
        )
        move_ids = [m for rec in records for m in rec["outgoing_moves"]]
        moves = await self.client.read("stock.move", move_ids, mapping_shipment.MOVE_FIELDS)
        skus = await self.skus(m["product"] for m in moves)
        return await self._to_shipments(records, moves, skus, order_id=order_id)

    async def _to_shipments(
        self,
        records: Sequence[Record],
        moves: Sequence[Record],
        skus: Mapping[int, str],
        *,
        order_id: str,
    ) -> list[Shipment]:
        by_id = {m["id"]: m for m in moves}
        result = []
        for rec in records:
            shipment_id = await self.canonical_id(EntityKind.SHIPMENT, rec["id"])
            if shipment_id is None:
                shipment_id = derived_id(EntityKind.SHIPMENT, SHIPMENT_OUT, rec["id"])
                await self.link(EntityKind.SHIPMENT, shipment_id, rec["id"])
            result.append(
                mapping_shipment.to_shipment(
                    rec,
                    [by_id[m] for m in rec["outgoing_moves"]],
                    shipment_id=shipment_id,
                    order_id=order_id,
                    skus=skus,
                    ship_from=self.warehouse_code,
                )
            )
        return result

    async def postings(
        self, invoice_ids: Sequence[int], *, order_id: str | None = None, rma_id: str | None = None
    ) -> list[FinancialPosting]:
        """Canonical postings for Tryton invoices / credit notes."""
        if not invoice_ids:
            return []
        records = await self.client.read(INVOICE, invoice_ids, mapping_invoice.INVOICE_FIELDS)
        return await self._to_postings(records, order_id=order_id, rma_id=rma_id)

    async def _to_postings(
        self, records: Sequence[Record], *, order_id: str | None = None, rma_id: str | None = None
    ) -> list[FinancialPosting]:
        company = await self.company()
        result = []
        for rec in records:
            posting_id = await self.canonical_id(EntityKind.POSTING, rec["id"])
            if posting_id is None:
                posting_id = derived_id(EntityKind.POSTING, INVOICE, rec["id"])
                await self.link(EntityKind.POSTING, posting_id, rec["id"])
            result.append(
                mapping_invoice.to_posting(
                    rec,
                    posting_id=posting_id,
                    currency=company.currency,
                    order_id=order_id,
                    rma_id=rma_id,
                )
            )
        return result

    async def cancel_order(self, order_id: str) -> ErpOrderState:
        sale_id = await self._sale_id(order_id)
        assert sale_id is not None
        (sale,) = await self.client.read(SALE, [sale_id], mapping_order.SALE_FIELDS)
        state = sale["state"]
        if state == "cancelled":
            return await self.get_order(order_id)
        if state == "confirmed":
            await self.client.button(SALE, "draft", [sale_id])
            state = "draft"
        if state in mapping_order.CANCELLABLE_SALE_STATES:
            await self.client.button(SALE, "cancel", [sale_id])
            return await self._expect_status(order_id, OrderStatus.CANCELLED, "cancel_order")
        # Processing: only while nothing left the warehouse. Cancelling the shipments and the
        # draft invoices releases the stock and leaves nothing to bill.
        shipments = await self.client.read(SHIPMENT_OUT, sale["shipments"], ["state"])
        if any(s["state"] == "done" for s in shipments) or sale["shipment_returns"]:
            raise ErpBusinessError(
                f"order {order_id} has already shipped (ERP sale {sale_id}: "
                f"{mapping_order.describe_sale(sale)}); create a return instead of cancelling",
                operation="cancel_order",
            )
        invoices = await self.client.read(INVOICE, sale["invoices"], ["state"])
        if any(i["state"] in {"posted", "paid"} for i in invoices):
            raise ErpBusinessError(
                f"order {order_id} is already invoiced in the ERP; issue a credit note instead",
                operation="cancel_order",
            )
        open_shipments = [s["id"] for s in shipments if s["state"] != "cancelled"]
        open_invoices = [i["id"] for i in invoices if i["state"] != "cancelled"]
        if open_shipments:
            await self.client.button(SHIPMENT_OUT, "cancel", open_shipments)
        if open_invoices:
            await self.client.button(INVOICE, "cancel", open_invoices)
        return await self._expect_status(order_id, OrderStatus.CANCELLED, "cancel_order")

    async def _expect_status(
        self, order_id: str, expected: OrderStatus, operation: str
    ) -> ErpOrderState:
        state = await self.get_order(order_id)
        if state.status is not expected:
            raise ErpOperationNotCarriedOut(
                f"the ERP shows {state.erp_state}",
                operation=f"{operation}({order_id})",
                expected_state=expected.value,
                actual_state=state.status.value,
            )
        return state

    async def record_dispatch(self, order_id: str) -> ErpOrderState:
        sale_id = await self._sale_id(order_id)
        assert sale_id is not None
        (sale,) = await self.client.read(SALE, [sale_id], ["shipments"])
        await self._complete_shipments(SHIPMENT_OUT, sale["shipments"], order_id)
        return await self.get_order(order_id)

    async def _complete_shipments(self, model: str, shipment_ids: list[int], owner: str) -> None:
        steps = ("assign_try", "pick", "pack", "do") if model == SHIPMENT_OUT else ("receive", "do")
        needs = {
            "assign_try": {"waiting", "draft"},
            "pick": {"assigned"},
            "pack": {"picked"},
            "receive": {"draft"},
            "do": {"packed", "received"},
        }
        for shipment_id in shipment_ids:
            for step in steps:
                (rec,) = await self.client.read(model, [shipment_id], ["state"])
                if rec["state"] in {"done", "cancelled"}:
                    break
                if rec["state"] == "draft" and model == SHIPMENT_OUT:
                    await self.client.button(model, "wait", [shipment_id])
                    rec["state"] = "waiting"
                if rec["state"] not in needs[step]:
                    continue
                await self.client.button(model, step, [shipment_id])
                if step == "assign_try":
                    (after,) = await self.client.read(model, [shipment_id], ["state"])
                    if after["state"] != "assigned":
                        raise ErpOperationNotCarriedOut(
                            "not enough stock to reserve every line of the shipment",
                            operation=f"record_dispatch({owner})",
                            expected_state="assigned",
                            actual_state=after["state"],
                        )
            (final,) = await self.client.read(model, [shipment_id], ["state"])
            if final["state"] not in {"done", "cancelled"}:
                raise ErpOperationNotCarriedOut(
                    f"shipment {shipment_id} did not reach done",
                    operation=f"complete shipment ({owner})",
                    expected_state="done",
                    actual_state=final["state"],
                )

    async def post_invoices(self, order_id: str) -> ErpOrderState:
        sale_id = await self._sale_id(order_id)
        assert sale_id is not None
        (sale,) = await self.client.read(SALE, [sale_id], ["invoices"])
        await self._post(sale["invoices"], f"post_invoices({order_id})")
        return await self.get_order(order_id)

    async def _post(self, invoice_ids: list[int], operation: str) -> None:
        invoices = await self.client.read(INVOICE, invoice_ids, ["state"])
        drafts = [i["id"] for i in invoices if i["state"] in {"draft", "validated"}]
        if drafts:
            today = dt.date.today()
            await self.client.write(INVOICE, drafts, {"invoice_date": today})
            await self.client.button(INVOICE, "post", drafts)
        for rec in await self.client.read(INVOICE, drafts, ["state"]):
            if rec["state"] not in {"posted", "paid"}:
                raise ErpOperationNotCarriedOut(
                    f"invoice {rec['id']} was not posted",
                    operation=operation,
                    expected_state="posted",
                    actual_state=rec["state"],
                )

    # --- returns ---------------------------------------------------------------------------

    async def create_return(self, rma: ReturnAuthorization) -> ErpReturnState:
        existing = await self.external_id(EntityKind.RETURN, rma.id)
        if existing is None:
            found = await self.client.search(SALE, [("reference", "=", rma.id)], limit=1)
            existing = found[0] if found else None
            if existing is not None:
                await self.link(EntityKind.RETURN, rma.id, existing)
        if existing is None:
            original_id = await self._sale_id(rma.order_id)
            assert original_id is not None
            (original,) = await self.client.read(
                SALE,
                [original_id],
                [
                    "company",
                    "currency",
                    "party",
                    "invoice_address",
                    "shipment_address",
                    "payment_term",
                    "lines",
                    "state",
                ],
            )
            lines = await self.client.read(
                "sale.line", original["lines"], ["product", "unit", "unit_price", "quantity"]
            )
            skus = await self.skus(line["product"] for line in lines if line["product"])
            lines_by_sku = {skus[line["product"]]: line for line in lines if line["product"]}
            self._check_returnable(rma, lines_by_sku)
            values = mapping_return.return_sale_values(
                rma, original=original, original_sale_id=original_id, lines_by_sku=lines_by_sku
            )
            (existing,) = await self.client.create(SALE, [values])
            await self.link(EntityKind.RETURN, rma.id, existing)
        state = await self._sale_state(existing)
        if state == "draft":
            await self.client.button(SALE, "quote", [existing])
            state = "quotation"
        if state == "quotation":
            await self.client.button(SALE, "confirm", [existing])
            state = await self._sale_state(existing)
        if state == "confirmed":
            await self._process_or_explain(existing, rma.id)
        return await self.get_return(rma.id)

    @staticmethod
    def _check_returnable(rma: ReturnAuthorization, lines_by_sku: dict[str, Record]) -> None:
        for line in rma.lines:
            original = lines_by_sku.get(line.sku)
            if original is None:
                raise ErpBusinessError(
                    f"return {rma.id}: order {rma.order_id} has no line for SKU {line.sku}",
                    operation="create_return",
                )
            if line.quantity > original["quantity"]:
                raise ErpBusinessError(
                    f"return {rma.id}: {line.quantity} x {line.sku} is more than the "
                    f"{int(original['quantity'])} ordered",
                    operation="create_return",
                )

    async def _return_sale(self, rma_id: str) -> tuple[int, Record]:
        sale_id = await self.external_id(EntityKind.RETURN, rma_id)
        if sale_id is None:
            found = await self.client.search(SALE, [("reference", "=", rma_id)], limit=1)
            if not found:
                raise ErpNotFound(f"the ERP has no return sale for {rma_id}")
            sale_id = found[0]
        (sale,) = await self.client.read(SALE, [sale_id], mapping_order.SALE_FIELDS)
        return sale_id, sale

    async def get_return(self, rma_id: str) -> ErpReturnState:
        sale_id, sale = await self._return_sale(rma_id)
        order_id = await self.order_id_of_return(sale)
        returns = await self.client.read(SHIPMENT_RETURN, sale["shipment_returns"], ["state"])
        received = bool(returns) and all(r["state"] == "done" for r in returns)
        notes = await self.postings(sale["invoices"], order_id=order_id, rma_id=rma_id)
        return ErpReturnState(
            rma_id=rma_id,
            order_id=order_id or "",
            erp_id=str(sale_id),
            received=received,
            credit_notes=tuple(notes),
        )

    async def order_id_of_return(self, sale: Record) -> str | None:
        origin = reference_of(sale.get("origin"))
        if origin is None or origin[0] != SALE:
            return None
        canonical = await self.canonical_id(EntityKind.ORDER, origin[1])
        if canonical is not None:
            return canonical
        (original,) = await self.client.read(SALE, [origin[1]], ["reference"])
        return original.get("reference")

    async def receive_return(self, rma_id: str) -> ErpReturnState:
        _sale_id, sale = await self._return_sale(rma_id)
        await self._complete_shipments(SHIPMENT_RETURN, sale["shipment_returns"], rma_id)
        return await self.get_return(rma_id)

    async def post_credit_note(self, rma_id: str) -> ErpReturnState:
        _sale_id, sale = await self._return_sale(rma_id)
        await self._post(sale["invoices"], f"post_credit_note({rma_id})")
        return await self.get_return(rma_id)

    async def settle_return(self, rma_id: str, credited: Mapping[str, int]) -> ErpReturnState:
        """Reduce the return's draft credit note to ``credited`` units per SKU.

        Tryton re-invoices whatever part of a sale line no invoice line covers, so the units
        that are not credited cannot simply disappear: they move to a second credit note that
        is cancelled at once (the sale shows it as an invoice exception, the trace finance
        sees). A SKU at 0 leaves the draft credit note; every SKU at 0 cancels the draft.
        Settling again with the same units changes nothing; a posted credit note is refused.
        """
        _sale_id, sale = await self._return_sale(rma_id)
        invoices = await self.client.read(INVOICE, sale["invoices"], ["state", "lines"])
        if any(i["state"] in {"posted", "paid"} for i in invoices):
            raise ErpBusinessError(
                f"the credit note of return {rma_id} is already posted; correct it in the ERP "
                "with a new invoice instead of settling the return",
                operation="settle_return",
            )
        drafts = [i for i in invoices if i["state"] in {"draft", "validated"}]
        line_ids = [line_id for invoice in drafts for line_id in invoice["lines"]]
        lines = await self.client.read(
            INVOICE_LINE, line_ids, ["type", "product", "quantity", "origin", "invoice"]
        )
        lines = [line for line in lines if line["type"] == "line" and line["product"]]
        skus = await self.skus(line["product"] for line in lines)
        unknown = sorted(set(credited) - set(skus.values()))
        if unknown and any(credited[sku] for sku in unknown):
            raise ErpBusinessError(
                f"return {rma_id} has no draft credit for SKU(s) {', '.join(unknown)}",
                operation="settle_return",
            )
        units_left = {sku: max(0, int(units)) for sku, units in credited.items()}
        if drafts and not any(units_left.values()):
            await self.client.button(INVOICE, "cancel", [i["id"] for i in drafts])
            return await self.get_return(rma_id)
        kept: list[tuple[Record, float]] = []
        moved: list[tuple[Record, float]] = []
        for line in lines:
            sku = skus[line["product"]]
            units = abs(float(line["quantity"]))
            sign = -1.0 if float(line["quantity"]) < 0 else 1.0
            keep = float(min(units, units_left.get(sku, 0)))
            units_left[sku] = units_left.get(sku, 0) - int(keep)
            if keep != units:
                kept.append((line, sign * keep))
                moved.append((line, sign * (units - keep)))
        short = {sku: units for sku, units in units_left.items() if units > 0}
        if short:
            raise ErpBusinessError(
                f"return {rma_id} cannot credit more units than it authorized: {short} over",
                operation="settle_return",
            )
        # Order matters: cancelling an invoice makes the ERP re-process the sale, which must
        # then find every unit covered (credited on the draft + moved to the cancelled copy).
        uncredited = await self._uncredited_copy(rma_id, moved) if moved else None
        for line, quantity in kept:
            if quantity:
                await self.client.write(INVOICE_LINE, [line["id"]], {"quantity": quantity})
            else:
                await self.client.call(f"model.{INVOICE_LINE}.delete", [[line["id"]]])
        if uncredited is not None:
            await self.client.button(INVOICE, "cancel", [uncredited])
        return await self.get_return(rma_id)

    async def _uncredited_copy(self, rma_id: str, moved: list[tuple[Record, float]]) -> int:
        """A draft copy of the credit note holding the units that are not credited."""
        (uncredited,) = await self.client.call(
            f"model.{INVOICE}.copy",
            [
                [moved[0][0]["invoice"]],
                {"lines": [], "description": f"Not credited after inspection of {rma_id}"},
            ],
        )
        for line, quantity in moved:
            values = {"invoice": uncredited, "quantity": quantity, "origin": line["origin"]}
            await self.client.call(f"model.{INVOICE_LINE}.copy", [[line["id"]], values])
        return int(uncredited)

    # --- stock -----------------------------------------------------------------------------

    async def get_stock(self, sku: str, location: str) -> InventoryPosition:
        company = await self.company()
        location_id = company.location_id(location)
        ((product_id, _unit),) = (await self._products([sku])).values()
        (record,) = await self.client.with_context(
            "product.product",
            "read",
            [[product_id], ["quantity", "forecast_quantity"]],
            locations=[location_id],
        )
        return mapping_inventory.position(
            sku=sku,
            location=location,
            quantity=record["quantity"],
            forecast_quantity=record["forecast_quantity"],
            as_of=dt.datetime.now(dt.UTC),
        )

    async def adjust_inventory(self, adjustment: InventoryAdjustment) -> InventoryPosition:
        """Apply the delta as a one-line ERP stock count (``stock.inventory``) at the location.

        Tryton only lets clients move stock out of a storage location through documents, so a
        delta becomes a count of "what is there now + delta"; the ERP books the difference
        against the warehouse's lost-and-found location.
        """
        company = await self.company()
        inventory_id = await self.external_id(EntityKind.INVENTORY_ADJUSTMENT, adjustment.id)
        if inventory_id is None:
            location_id = company.location_id(adjustment.location)
            ((product_id, _unit_id),) = (await self._products([adjustment.sku])).values()
            current = await self.get_stock(adjustment.sku, adjustment.location)
            counted = current.on_hand + adjustment.delta
            if counted < 0:
                raise ErpBusinessError(
                    f"adjustment {adjustment.id} would take {adjustment.sku} at "
                    f"{adjustment.location} below zero ({current.on_hand} on hand, "
                    f"delta {adjustment.delta}); count the stock and correct the delta",
                    operation="adjust_inventory",
                )
            values = mapping_inventory.adjustment_inventory_values(
                adjustment,
                product_id=product_id,
                location_id=location_id,
                counted=counted,
                company_id=company.company_id,
            )
            (inventory_id,) = await self.client.create("stock.inventory", [values])
            await self.link(EntityKind.INVENTORY_ADJUSTMENT, adjustment.id, inventory_id)
        (inventory,) = await self.client.read("stock.inventory", [inventory_id], ["state"])
        if inventory["state"] == "draft":
            await self.client.button("stock.inventory", "confirm", [inventory_id])
            (inventory,) = await self.client.read("stock.inventory", [inventory_id], ["state"])
        if inventory["state"] != "done":
            raise ErpOperationNotCarriedOut(
                f"stock count {inventory_id} for adjustment {adjustment.id} was not confirmed",
                operation="adjust_inventory",
                expected_state="done",
                actual_state=inventory["state"],
            )
        return await self.get_stock(adjustment.sku, adjustment.location)
