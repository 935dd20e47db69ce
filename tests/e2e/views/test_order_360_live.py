"""Against a live Tryton: the order 360 answers stale while trytond is stopped and fresh again
once it is back; the System APIs read canonical orders, invoices and stock from it."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from fastapi.testclient import TestClient

from retailsync.api.app import create_app
from retailsync.api.clients import api_key_pepper, create_api_client
from retailsync.api.scopes import Scope
from retailsync.bootstrap import Hub
from retailsync.domain.catalogue import OrderCreated, build_event
from retailsync.domain.customers import Address, AddressRole, Customer
from retailsync.domain.identifiers import EntityKind, new_id
from retailsync.domain.money import Money
from retailsync.domain.orders import Order, OrderLine
from retailsync.sandbox.erp import ErpSandbox
from retailsync.views import apply_event

pytestmark = [pytest.mark.erp, pytest.mark.slow]


def _customer() -> Customer:
    return Customer(
        id=new_id(EntityKind.CUSTOMER),
        email=f"grace-{uuid.uuid4().hex[:8]}@example.com",
        given_name="Grace",
        family_name="Hopper",
        addresses=[
            Address(role=AddressRole.SHIPPING, line1="1 Main St", city="Berlin", country="DE")
        ],
        created_at=dt.datetime.now(dt.UTC),
    )


def _order(customer: Customer) -> Order:
    price = Money.of("19.90", "EUR")
    return Order.place(
        id=new_id(EntityKind.ORDER),
        channel="web",
        currency="EUR",
        lines=[
            OrderLine.priced(
                line_no=1,
                sku="RS-TSHIRT-M",
                quantity=2,
                unit_price=price,
                tax=Money.zero("EUR"),
            )
        ],
        placed_at=dt.datetime.now(dt.UTC),
        customer_id=customer.id,
    )


def _key(hub: Hub, *scopes: Scope) -> dict[str, str]:
    with hub.engine.begin() as connection:
        issued = create_api_client(
            connection,
            name="live agent",
            scopes=list(scopes),
            pepper=api_key_pepper(hub.settings.secret_key),
            actor="test:setup",
            correlation_id=None,
        )
    return {"X-API-Key": issued.key}


def test_the_order_360_goes_stale_while_trytond_is_stopped_and_fresh_when_it_returns(
    live_hub: Hub, erp_sandbox: ErpSandbox
) -> None:
    app = create_app(live_hub)
    headers = _key(live_hub, Scope.EXPERIENCE_READ, Scope.SYSTEM_READ)
    customer = _customer()
    order = _order(customer)
    with TestClient(app, raise_server_exceptions=False) as client:
        submit = client.portal.call(live_hub.adapters["erp"].submit_order, order, customer)
        assert submit.status.value == "processing"
        with live_hub.engine.begin() as connection:
            apply_event(connection, build_event(OrderCreated(order=order), source="test/shop"))
        url = f"/v1/experience/orders/{order.id}"

        fresh = client.get(url, headers=headers).json()
        assert fresh["stale"] is False, fresh
        assert fresh["erp"]["status"] == "processing"
        assert fresh["status"] == "processing"
        assert [line["sku"] for line in fresh["lines"]] == ["RS-TSHIRT-M"]

        canonical = client.get(f"/v1/system/orders/{order.id}", headers=headers)
        assert canonical.status_code == 200, canonical.text
        assert canonical.json()["lines"][0]["quantity"] == 2
        invoices = client.get(f"/v1/system/invoices?order_id={order.id}", headers=headers)
        assert invoices.status_code == 200 and len(invoices.json()["items"]) == 1
        stock = client.get("/v1/system/inventory/positions?sku=RS-TSHIRT-M", headers=headers)
        assert stock.json()["items"][0]["sku"] == "RS-TSHIRT-M"

        erp_sandbox.stop()
        try:
            time.sleep(0.2)
            started = time.perf_counter()
            stale = client.get(url, headers=headers)
            took = time.perf_counter() - started
            assert stale.status_code == 200
            body = stale.json()
            assert body["stale"] is True, body
            assert body["age_seconds"] >= 0.2
            assert body["erp"]["status"] == "processing"  # the last confirmed ERP part
            assert body["lines"] and body["order"]["id"] == order.id
            assert took < 3.5
            again = client.get(url, headers=headers).json()  # the circuit is open now
            assert again["stale"] is True
            down = client.get(f"/v1/system/orders/{order.id}", headers=headers)
            assert down.status_code == 503 and "retry-after" in down.headers
        finally:
            erp_sandbox.start()

        deadline = time.monotonic() + 20
        answer = client.get(url, headers=headers).json()
        while answer["stale"] and time.monotonic() < deadline:
            time.sleep(0.3)
            answer = client.get(url, headers=headers).json()
        assert answer["stale"] is False, answer
        assert answer["age_seconds"] < 1
