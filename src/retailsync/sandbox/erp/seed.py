"""The deterministic catalogue, customers and stock every ERP sandbox database starts with.

Tests and the demo refer to these by SKU, customer email and location code; the Tryton ids
that go with them are read from :class:`SandboxSeed` once the database exists.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

COMPANY_NAME = "Retail Sync Demo Store"
CURRENCY = "EUR"
ADMIN_LOGIN = "admin"
ADMIN_PASSWORD = "sandbox-admin"  # a throwaway, loopback-only sandbox; never a real secret
ADMIN_EMAIL = "admin@sandbox.invalid"
PAYMENT_TERM_NAME = "Direct"
COMPLAINT_TYPE_NAME = "Return of goods"
MODULES = ("sale", "stock", "account_invoice", "account_invoice_stock", "sale_complaint")

# Tryton's default stock locations, by code.
WAREHOUSE = "WH"
STORAGE = "STO"
INPUT = "IN"
OUTPUT = "OUT"
CUSTOMER = "CUS"
SUPPLIER = "SUP"
LOST_FOUND = "LF"  # Tryton ships it without a code; the recipe gives it this one
LOCATION_CODES = (WAREHOUSE, STORAGE, INPUT, OUTPUT, CUSTOMER, SUPPLIER, LOST_FOUND)


@dataclass(frozen=True)
class SeedProduct:
    sku: str
    name: str
    list_price: Decimal
    cost_price: Decimal
    stock: int


@dataclass(frozen=True)
class SeedCustomer:
    name: str
    email: str
    street: str
    postal_code: str
    city: str
    country: str


PRODUCTS: tuple[SeedProduct, ...] = (
    SeedProduct("RS-TSHIRT-M", "Organic T-shirt, M", Decimal("19.90"), Decimal("6.00"), 100),
    SeedProduct("RS-TSHIRT-L", "Organic T-shirt, L", Decimal("19.90"), Decimal("6.00"), 100),
    SeedProduct("RS-HOODIE-M", "Hooded sweatshirt, M", Decimal("49.00"), Decimal("18.00"), 40),
    SeedProduct("RS-CAP", "Baseball cap", Decimal("15.00"), Decimal("4.50"), 60),
    SeedProduct("RS-SNEAKER-42", "Canvas sneaker, 42", Decimal("65.00"), Decimal("22.00"), 25),
    SeedProduct("RS-MUG", "Enamel mug (sold out)", Decimal("9.50"), Decimal("3.00"), 0),
)

CUSTOMERS: tuple[SeedCustomer, ...] = (
    SeedCustomer(
        "Ada Lovelace", "ada@example.com", "12 St James's Square", "SW1Y 4JH", "London", "GB"
    ),
    SeedCustomer("Grace Hopper", "grace@example.com", "1 Navy Yard", "20374", "Washington", "US"),
    SeedCustomer(
        "Alan Turing", "alan@example.com", "Bletchley Park", "MK3 6EB", "Milton Keynes", "GB"
    ),
)


def recipe_fingerprint() -> dict[str, Any]:
    """Everything that shapes the initialised database, for the template cache key."""
    return {
        "company": COMPANY_NAME,
        "currency": CURRENCY,
        "admin": [ADMIN_LOGIN, ADMIN_PASSWORD, ADMIN_EMAIL],
        "modules": list(MODULES),
        "products": [asdict(p) for p in PRODUCTS],
        "customers": [asdict(c) for c in CUSTOMERS],
        "payment_term": PAYMENT_TERM_NAME,
        "complaint_type": COMPLAINT_TYPE_NAME,
    }


@dataclass(frozen=True)
class SandboxSeed:
    """The Tryton ids of the seeded records, written next to the database by the recipe."""

    company_id: int
    currency_id: int
    currency: str
    payment_term_id: int
    complaint_type_id: int
    fiscal_years: list[int]
    products: dict[str, int]  # sku -> product.product id
    customers: dict[str, int]  # email -> party.party id
    addresses: dict[str, int]  # email -> party.address id
    locations: dict[str, int]  # location code -> stock.location id
    initial_stock: dict[str, int] = field(default_factory=dict)  # sku -> quantity in STO

    def product_id(self, sku: str) -> int:
        try:
            return self.products[sku]
        except KeyError:
            raise KeyError(
                f"no seeded product with SKU {sku!r}; known: {sorted(self.products)}"
            ) from None

    def customer_id(self, email: str) -> int:
        try:
            return self.customers[email]
        except KeyError:
            raise KeyError(
                f"no seeded customer {email!r}; known: {sorted(self.customers)}"
            ) from None

    @property
    def storage_location_id(self) -> int:
        return self.locations[STORAGE]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SandboxSeed:
        return cls(**json.loads(text))

    @classmethod
    def load(cls, path: Path) -> SandboxSeed:
        return cls.from_json(path.read_text(encoding="utf-8"))


def product_by_sku(sku: str) -> SeedProduct:
    for product in PRODUCTS:
        if product.sku == sku:
            return product
    raise KeyError(f"no seeded product with SKU {sku!r}")


def customer_by_email(email: str) -> SeedCustomer:
    for customer in CUSTOMERS:
        if customer.email == email:
            return customer
    raise KeyError(f"no seeded customer {email!r}")
