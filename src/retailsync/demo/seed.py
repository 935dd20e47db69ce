"""A small store, seeded idempotently: stock in two warehouses, a few days of orders, an API key.

The ERP template already holds the catalogue, the stock in ``STO`` and three customers
(:mod:`retailsync.sandbox.erp.seed`). On top of that this module puts:

* the warehouse's stock in two locations (``WH1`` main warehouse, ``WH2`` shop backroom) in the
  WMS sandbox, and the same two locations as Shopify inventory levels;
* a few days of order history: each order exists in the shop (Shopify sandbox), is paid
  (Stripe sandbox), is booked in the ERP (shipped and invoiced, or still open), and some have
  a support ticket (Zendesk sandbox);
* the demo's API client, whose key is derived from the demo directory so every run prints the
  same key.

Every seeding call looks before it writes, so seeding twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from retailsync.api.clients import KEY_PREFIX, api_key_pepper, create_api_client, parse_api_key
from retailsync.api.scopes import Scope
from retailsync.api.tables import api_clients
from retailsync.connectors.erp.adapter import TrytonErpAdapter
from retailsync.connectors.shopify.config import ShopifySettings
from retailsync.connectors.shopify.mapping import canonical_order
from retailsync.demo.environment import DemoEnvironment, derived_secret
from retailsync.domain.customers import Customer
from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.domain.inventory import AdjustmentReason, InventoryAdjustment
from retailsync.sandbox.erp.seed import CUSTOMERS, STORAGE, customer_by_email, product_by_sku

DEMO_CLIENT_NAME = "retailsync demo"
WAREHOUSES = {"WH1": 1, "WH2": 2}  # WMS location code -> Shopify location id
WAREHOUSE_SHARE = {"WH1": Decimal("0.8"), "WH2": Decimal("0.2")}


@dataclass(frozen=True)
class HistoricOrder:
    """One order of the store's recent past and what the scenario does with it."""

    key: str
    email: str
    lines: tuple[tuple[str, int], ...]
    days_ago: int
    shipped: bool
    ticket_subject: str | None = None


HISTORY: tuple[HistoricOrder, ...] = (
    HistoricOrder(
        "sneakers",
        "ada@example.com",
        (("RS-SNEAKER-42", 2),),
        4,
        True,
        "Both sneakers arrived with torn soles",
    ),
    HistoricOrder(
        "hoodie-and-cap",
        "grace@example.com",
        (("RS-HOODIE-M", 1), ("RS-CAP", 1)),
        3,
        True,
        "I'd like to send my hoodie and cap back",
    ),
    HistoricOrder(
        "mug-and-tee",
        "alan@example.com",
        (("RS-MUG", 1), ("RS-TSHIRT-M", 1)),
        3,
        True,
        "My mug arrived chipped, can I get another one?",
    ),
    HistoricOrder("cap", "grace@example.com", (("RS-CAP", 1),), 2, True),
    HistoricOrder(
        "tees",
        "ada@example.com",
        (("RS-TSHIRT-L", 2),),
        1,
        False,
        "Please cancel my order, I ordered the wrong size",
    ),
)


@dataclass
class SeededOrder:
    """A historic order as the scenario needs it: its ids in every system."""

    spec: HistoricOrder
    shopify_id: int
    order_id: str
    total: Decimal
    payment_intent: str
    ticket_id: int | None = None


@dataclass
class DemoStore:
    """What seeding produced (ids the scenario and the verification use)."""

    api_key: str
    orders: dict[str, SeededOrder] = field(default_factory=dict)
    inventory_items: dict[str, int] = field(default_factory=dict)  # sku -> Shopify item id


# --- the demo's API client ---------------------------------------------------------------------


def demo_api_key(root: Path) -> tuple[str, str]:
    """``(client_id, key)``: the same for the same demo directory."""
    client_id = derived_secret(root, "api-client-id")[:16]
    secret = derived_secret(root, "api-client-secret")
    return client_id, f"{KEY_PREFIX}_{client_id}_{secret}"


def ensure_demo_client(engine: Engine, root: Path, secret_key: SecretStr) -> str:
    """The demo's API key (every scope), creating its client once; audited like any client."""
    client_id, key = demo_api_key(root)
    with engine.begin() as connection:
        exists = connection.execute(
            sa.select(api_clients.c.id).where(api_clients.c.id == client_id)
        ).first()
        if exists is None:
            create_api_client(
                connection,
                name=DEMO_CLIENT_NAME,
                scopes=list(Scope),
                pepper=api_key_pepper(secret_key),
                actor="retailsync demo",
                correlation_id=None,
                client_id=client_id,
                secret=parse_api_key(key)[1],
            )
    return key


# --- stock in two locations --------------------------------------------------------------------


async def seed_stock(env: DemoEnvironment, http: httpx.AsyncClient) -> dict[str, int]:
    """WMS stock in WH1 and WH2 and the matching Shopify inventory levels (idempotent)."""
    from retailsync.sandbox.erp.seed import PRODUCTS
    from retailsync.sandbox.wms import WmsSandbox

    urls = env.sandboxes.urls
    wms: WmsSandbox = env.sandboxes.wms
    answer = await http.get(
        f"{urls['wms']}/v1/inventory",
        headers={"Authorization": f"Bearer {wms.api_key}"},
        params={"page_size": 1000},
    )
    answer.raise_for_status()
    present = {(item["sku"], item["location"]) for item in answer.json()["items"]}
    missing = []
    items: dict[str, int] = {}
    for number, product in enumerate(PRODUCTS, start=1):
        items[product.sku] = 40_000_000 + number
        for location, share in WAREHOUSE_SHARE.items():
            units = int(product.stock * share)
            if (product.sku, location) not in present:
                missing.append({"sku": product.sku, "location": location, "on_hand": units})
            level = await http.post(
                f"{urls['shopify']}/_sandbox/inventory_levels",
                json={
                    "inventory_item_id": items[product.sku],
                    "location_id": WAREHOUSES[location],
                    "available": units,
                },
            )
            level.raise_for_status()
    if missing:
        (await http.post(f"{urls['wms']}/_sandbox/inventory", json=missing)).raise_for_status()
    return items


# --- order history ---------------------------------------------------------------------------


def _customer(email: str, shopify_customer_id: int) -> Customer:
    seed = customer_by_email(email)
    given, _, family = seed.name.partition(" ")
    return Customer(
        id=derive_id(EntityKind.CUSTOMER, "shopify", str(shopify_customer_id)),
        email=email,
        given_name=given,
        family_name=family or None,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _shopify_customer_id(email: str) -> int:
    emails = [c.email for c in CUSTOMERS]
    return 7_000_000 + emails.index(email) + 1


def _address(email: str) -> dict[str, Any]:
    seed = customer_by_email(email)
    first, _, last = seed.name.partition(" ")
    return {
        "first_name": first,
        "last_name": last,
        "address1": seed.street,
        "city": seed.city,
        "zip": seed.postal_code,
        "country_code": seed.country,
    }


def _shop_order(env: DemoEnvironment, spec: HistoricOrder) -> dict[str, Any]:
    """The historic order in the shop (imported history: no webhook is sent for it)."""
    shop = env.sandboxes.shopify
    for order in shop.orders.values():
        if order.get("note") == f"demo:{spec.key}":
            return order
    order = shop.create_order(
        lines=[
            {
                "sku": sku,
                "quantity": qty,
                "price": product_by_sku(sku).list_price,
                "title": product_by_sku(sku).name,
            }
            for sku, qty in spec.lines
        ],
        email=spec.email,
        customer_id=_shopify_customer_id(spec.email),
    )
    placed = (datetime.now(UTC) - timedelta(days=spec.days_ago)).replace(microsecond=0)
    first, _, last = customer_by_email(spec.email).name.partition(" ")
    order.update(
        note=f"demo:{spec.key}",
        created_at=placed.isoformat(),
        processed_at=placed.isoformat(),
        shipping_address=_address(spec.email),
        billing_address=_address(spec.email),
        fulfillment_status="fulfilled" if spec.shipped else None,
    )
    order["customer"].update(first_name=first, last_name=last)
    return order


async def seed_history(
    env: DemoEnvironment,
    http: httpx.AsyncClient,
    erp: TrytonErpAdapter,
    shopify_settings: ShopifySettings,
) -> dict[str, SeededOrder]:
    """Each historic order in the shop, paid, booked in the ERP and (some) with a ticket."""
    urls = env.sandboxes.urls
    seeded: dict[str, SeededOrder] = {}
    for spec in HISTORY:
        payload = _shop_order(env, spec)
        order = canonical_order(payload, shopify_settings)
        total = order.grand_total.amount
        intents = [
            intent
            for intent in env.sandboxes.stripe.payment_intents.values()
            if intent.get("metadata", {}).get("order_id") == order.id
        ]
        if intents:
            intent = intents[0]
        else:
            answer = await http.post(
                f"{urls['stripe']}/_sandbox/payment_intents",
                json={
                    "amount": int(total * 100),
                    "currency": "eur",
                    "metadata": {"order_id": order.id, "shopify_order": str(payload["id"])},
                },
            )
            answer.raise_for_status()
            intent = answer.json()
        ticket_id = None
        if spec.ticket_subject:
            ticket_id = await _ensure_ticket(env, http, spec, payload)
        if "RS-MUG" in {sku for sku, _ in spec.lines}:
            await _stock_the_last_mug(erp, order.id)
        customer = _customer(spec.email, _shopify_customer_id(spec.email))
        await erp.submit_order(order, customer)
        if spec.shipped:
            await erp.record_dispatch(order.id)
            await erp.post_invoices(order.id)
        seeded[spec.key] = SeededOrder(
            spec=spec,
            shopify_id=int(payload["id"]),
            order_id=order.id,
            total=total,
            payment_intent=str(intent["id"]),
            ticket_id=ticket_id,
        )
    return seeded


async def _ensure_ticket(
    env: DemoEnvironment, http: httpx.AsyncClient, spec: HistoricOrder, payload: dict[str, Any]
) -> int:
    tag = f"order_{payload['id']}"
    for ticket in env.sandboxes.zendesk.tickets.values():
        if tag in ticket.get("tags", []):
            return int(ticket["id"])
    seed = customer_by_email(spec.email)
    answer = await http.post(
        f"{env.sandboxes.urls['zendesk']}/_sandbox/tickets",
        json={
            "subject": spec.ticket_subject,
            "description": f"About order {payload['name']}: {spec.ticket_subject}.",
            "requester": {"name": seed.name, "email": seed.email},
            "tags": [tag],
            "emit": False,
        },
    )
    answer.raise_for_status()
    return int(answer.json()["ticket"]["id"])


async def _stock_the_last_mug(erp: TrytonErpAdapter, order_id: str) -> None:
    """The mug is sold out in the template: book the one unit this order shipped."""
    await erp.adjust_inventory(
        InventoryAdjustment(
            id=derive_id(EntityKind.INVENTORY_ADJUSTMENT, "demo", order_id, "RS-MUG"),
            sku="RS-MUG",
            location=STORAGE,
            delta=1,
            reason=AdjustmentReason.RECEIVED,
            reference="demo: the last mug in stock",
            occurred_at=datetime.now(UTC),
        )
    )


async def seed_store(
    env: DemoEnvironment,
    http: httpx.AsyncClient,
    erp: TrytonErpAdapter,
    shopify_settings: ShopifySettings,
    *,
    engine: Engine,
    secret_key: SecretStr,
) -> DemoStore:
    """Everything the scenario starts from; safe to call again (nothing is duplicated)."""
    store = DemoStore(api_key=ensure_demo_client(engine, env.root, secret_key))
    store.inventory_items = await seed_stock(env, http)
    store.orders = await seed_history(env, http, erp, shopify_settings)
    return store
