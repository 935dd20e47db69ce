"""The reconciliation sources over the live systems the hub is wired to.

:func:`reconcile_sources` (``hub.adapters['reconcile_sources']``) returns a factory
``job -> {system: sorted pages}`` that :func:`~retailsync.reconcile.engine.run_reconciliation`
consumes. What each system contributes, and where it is read:

=============  =================================================================================
inventory      ERP: stock per product at each of ``sources.erp_locations`` (Tryton
               ``product.product`` quantities with a ``locations`` context, a page per call);
               warehouse: on hand and allocated per SKU and location (WMS ``/v1/inventory``,
               cursor pages; locations mapped by ``sources.wms_locations``); storefront: the
               published ``available`` per item and location (Shopify ``GET
               inventory_levels.json``, ``Link`` pages; items and locations mapped to SKU and
               ERP location by ``sources.storefront_items`` / ``storefront_locations``).
orders         storefront: orders updated in the last ``sources.orders_window_days`` (Shopify
               ``orders.json``) as canonical orders, with Shopify's order id (a status
               correction addresses the order by it); ERP: the sales whose reference is one of
               those order ids (one ``search_read`` per page of storefront orders).
refunds        decisions: the hub's own refund records (the order 360 read model, fed by the
               refund workflows' ``refund.requested/approved/completed`` events — agents ask
               for refunds from the service desk, the hub's policy or approver decides, so the
               hub is the system of record of the decision; a Zendesk ticket carries no
               structured refund); ERP: posted credit notes on the hub's return sales
               (reference ``rma_...``), keyed by the refund that return belongs to; payments:
               succeeded refunds at Stripe carrying a canonical ``refund_id`` in metadata.
=============  =================================================================================

Every source is sorted by key through :func:`~retailsync.reconcile.sources.sorted_by_key`
(bounded memory; the systems' own sort orders and collations are not trusted). A storefront
order that cannot be mapped is recorded in the exception queue and left out of the run.
Connector modules are imported here only, and lazily.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from retailsync.domain.money import Money
from retailsync.ports.payments import PaymentsPort
from retailsync.ports.warehouse import WarehousePort
from retailsync.reconcile import wiring
from retailsync.reconcile.drift import ERP, PAYMENTS, SERVICE_DESK, STOREFRONT, WMS
from retailsync.reconcile.errors import SourceNotConfigured
from retailsync.reconcile.policy import LiveSourceSettings
from retailsync.reconcile.records import OrderFigure, PublishedLevel, RefundFigure, StockFigure
from retailsync.reconcile.sources import payment_refunds_source, sorted_by_key, tee_pages

__all__ = ["DECIDED_REFUND_STATUSES", "LiveSources", "reconcile_sources", "refund_decisions"]

Pages = AsyncIterable[Sequence[Any]]
DECIDED_REFUND_STATUSES = ("approved", "completed", "failed")
"""Refund statuses that mean "decided to pay back" (failed: decided, payout failed)."""


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _money(value: Any) -> Money | None:
    if not isinstance(value, Mapping) or "amount" not in value or "currency" not in value:
        return None
    return Money.of(Decimal(str(value["amount"])), str(value["currency"]))


async def refund_decisions(
    engine: sa.Engine, *, page_size: int = 500
) -> AsyncIterator[list[RefundFigure]]:
    """Decided refunds from the order 360 read model (``views_order_parts``), by refund id."""
    from retailsync.views.tables import views_order_parts as parts

    after = ""
    while True:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(parts.c.entity_id, parts.c.status, parts.c.document)
                .where(
                    parts.c.kind == "refund",
                    parts.c.entity_id > after,
                    parts.c.status.in_(DECIDED_REFUND_STATUSES),
                )
                .order_by(parts.c.entity_id)
                .limit(page_size)
            ).all()
        page: list[RefundFigure] = []
        for row in rows:
            document = json.loads(row.document)
            amount = _money(document.get("amount"))
            if amount is None:
                continue
            decided = _parse_time(document.get("approved_at") or document.get("requested_at"))
            page.append(RefundFigure(row.entity_id, row.entity_id, amount, decided))
        if page:
            yield page
        if len(rows) < page_size:
            return
        after = rows[-1].entity_id


def refund_of_return(engine: sa.Engine) -> dict[str, str]:
    """Return id -> refund id, as the hub's refund and credit-note records link them."""
    from retailsync.views.tables import views_order_parts as parts

    links: dict[str, str] = {}
    with engine.connect() as connection:
        for row in connection.execute(
            sa.select(parts.c.kind, parts.c.entity_id, parts.c.rma_id, parts.c.document).where(
                parts.c.kind.in_(("refund", "posting")), parts.c.rma_id.is_not(None)
            )
        ):
            if row.kind == "refund":
                links[row.rma_id] = row.entity_id
            else:
                refund_id = json.loads(row.document).get("refund_id")
                if refund_id:
                    links.setdefault(row.rma_id, str(refund_id))
    return links


class LiveSources:
    """``job -> {system: sorted pages}`` over the wired adapters (see the module docstring)."""

    def __init__(
        self,
        *,
        engine: sa.Engine,
        settings: LiveSourceSettings,
        erp: Any | None = None,
        warehouse: WarehousePort | None = None,
        commerce: Any | None = None,
        payments: PaymentsPort | None = None,
        decisions: Callable[[], Pages] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``erp``: the Tryton adapter (its ``client`` is used); ``commerce``: the Shopify
        adapter (its ``api`` and ``settings``); ``decisions``: refund decisions (default: the
        hub's refund records)."""
        self.engine = engine
        self.settings = settings
        self.erp = erp
        self.warehouse = warehouse
        self.commerce = commerce
        self.payments = payments
        self.decisions = decisions or (
            lambda: refund_decisions(engine, page_size=settings.page_size)
        )
        self.now = now
        self._queries: Any | None = None

    def __call__(self, job: str) -> dict[str, Pages]:
        if job == "inventory":
            return {
                ERP: sorted_by_key(self.erp_stock()),
                WMS: sorted_by_key(self.warehouse_stock()),
                STOREFRONT: sorted_by_key(self.storefront_levels()),
            }
        if job == "orders":
            shop, lookup = tee_pages(sorted_by_key(self.storefront_orders()))
            return {STOREFRONT: shop, ERP: self.erp_sales(lookup)}
        if job == "refunds":
            return {
                SERVICE_DESK: sorted_by_key(self.decisions()),
                ERP: sorted_by_key(self.erp_credit_notes()),
                PAYMENTS: payment_refunds_source(self._need(self.payments, job, PAYMENTS)),
            }
        raise SourceNotConfigured(job, "a live source for this job")

    @staticmethod
    def _need(adapter: Any, job: str, system: str) -> Any:
        if adapter is None:
            raise SourceNotConfigured(job, system)
        return adapter

    def queries(self) -> Any:
        if self._queries is None:
            from retailsync.connectors.erp.reconcile_queries import TrytonReconcileQueries

            erp = self._need(self.erp, "reconcile", ERP)
            self._queries = TrytonReconcileQueries(erp.client)
        return self._queries

    # ---- inventory ----------------------------------------------------------------------

    async def erp_stock(self) -> AsyncIterator[list[StockFigure]]:
        queries = self.queries()
        for location in self.settings.erp_locations:
            async for positions in queries.stock_by_location(
                location, page_size=self.settings.page_size
            ):
                yield [
                    StockFigure.of(p.sku, location, p.on_hand, reserved=p.reserved)
                    for p in positions
                ]

    async def warehouse_stock(self) -> AsyncIterator[list[StockFigure]]:
        warehouse = self._need(self.warehouse, "inventory", WMS)
        mapped = self.settings.wms_locations
        compared = set(self.settings.erp_locations)
        page: list[StockFigure] = []
        async for position in warehouse.iter_positions():
            location = mapped.get(position.location, position.location)
            if location not in compared:
                continue
            page.append(
                StockFigure.of(
                    position.sku, location, position.on_hand, allocated=position.allocated
                )
            )
            if len(page) >= self.settings.page_size:
                yield page
                page = []
        if page:
            yield page

    async def storefront_levels(self) -> AsyncIterator[list[PublishedLevel]]:
        from retailsync.connectors.shopify.levels import ShopifyLevels

        commerce = self._need(self.commerce, "inventory", STOREFRONT)
        settings = self.settings
        locations = {
            ref: code
            for code, ref in settings.storefront_locations.items()
            if code in settings.erp_locations
        }
        if not locations:
            raise SourceNotConfigured(
                "inventory", "storefront locations (reconcile.sources.storefront_locations)"
            )
        skus = {item: sku for sku, item in settings.storefront_items.items()}
        levels = ShopifyLevels(commerce.api, page_size=min(250, settings.page_size))
        page: list[PublishedLevel] = []
        async for level in levels.iter_levels(location_ids=sorted(locations)):
            sku = skus.get(level.inventory_item_ref)
            if sku is None:
                continue  # an item the hub does not sell through this mapping
            location = locations[level.location_ref]
            page.append(
                PublishedLevel.of(
                    sku,
                    location,
                    level.available,
                    item_ref=level.inventory_item_ref,
                    location_ref=level.location_ref,
                )
            )
            if len(page) >= settings.page_size:
                yield page
                page = []
        if page:
            yield page

    # ---- orders -------------------------------------------------------------------------

    async def storefront_orders(self) -> AsyncIterator[list[OrderFigure]]:
        from retailsync.bus.intake import record_intake_failure
        from retailsync.connectors.shopify.errors import ShopifyPayloadError
        from retailsync.connectors.shopify.mapping import canonical_order

        commerce = self._need(self.commerce, "orders", STOREFRONT)
        since = self.now() - timedelta(days=self.settings.orders_window_days)
        params = {"status": "any", "updated_at_min": since.isoformat()}
        page: list[OrderFigure] = []
        async for raw in commerce.api.iter_orders(params):
            try:
                order = canonical_order(raw, commerce.settings)
            except ShopifyPayloadError as exc:
                record_intake_failure(
                    self.engine,
                    "reconcile",
                    reference=f"reconcile-shopify-order-{raw.get('id')}-{raw.get('updated_at')}",
                    reason=f"storefront order left out of the orders reconciliation: {exc}",
                    raw=json.dumps(raw, default=str),
                )
                continue
            page.append(
                OrderFigure(
                    key=order.id,
                    reference=str(raw.get("name") or raw.get("id")),
                    status=order.status,
                    total=order.grand_total,
                    version=order.version,
                    order=order,
                    order_ref=str(raw["id"]),
                )
            )
            if len(page) >= self.settings.page_size:
                yield page
                page = []
        if page:
            yield page

    async def erp_sales(self, orders: AsyncIterable[Sequence[Any]]) -> AsyncIterator[list[Any]]:
        """The ERP's sales for each page of (sorted) storefront orders; absent ones skipped."""
        queries = self.queries()
        async for page in orders:
            sales = await queries.sales_by_reference([figure.key for figure in page])
            found = [
                OrderFigure(
                    key=sale.reference, reference=sale.erp_id, status=sale.status, total=sale.total
                )
                for sale in sales
            ]
            if found:
                yield sorted(found, key=lambda figure: figure.key)

    # ---- refunds ------------------------------------------------------------------------

    async def erp_credit_notes(self) -> AsyncIterator[list[RefundFigure]]:
        links = refund_of_return(self.engine)
        queries = self.queries()
        async for notes in queries.posted_credit_notes(
            page_size=self.settings.page_size,
            reference_like=self.settings.credit_note_references,
        ):
            page = []
            for note in notes:
                reference = note.sale_reference or f"erp-invoice-{note.erp_id}"
                page.append(
                    RefundFigure(
                        links.get(reference, reference), note.number, note.amount, note.posted_at
                    )
                )
            yield page


def reconcile_sources(hub: Any) -> LiveSources:
    """The ``adapters['reconcile_sources']`` factory over the hub's wired adapters."""
    adapters = wiring.wired(hub)
    return LiveSources(
        engine=hub.engine,
        settings=wiring.policy(hub).sources,
        erp=adapters.get("erp"),
        warehouse=adapters.get("warehouse"),
        commerce=adapters.get("commerce"),
        payments=adapters.get("payments"),
    )
