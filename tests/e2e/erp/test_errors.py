"""How ERP failures surface: business errors, silent non-processing, outages, expired sessions."""

from __future__ import annotations

import asyncio
import base64
from decimal import Decimal
from pathlib import Path

import pytest
from erp_e2e_support import ADA, connection_for, make_order

from retailsync.connectors.erp.adapter import TrytonErpAdapter
from retailsync.connectors.erp.client import TrytonClient
from retailsync.connectors.erp.errors import (
    ErpBusinessError,
    ErpNotFound,
    ErpOperationNotCarriedOut,
    ErpTransientError,
)
from retailsync.sandbox.erp import ErpSandbox

pytestmark = [pytest.mark.erp, pytest.mark.slow]


async def test_unknown_product_is_a_business_error_naming_the_sku(
    erp_adapter: TrytonErpAdapter,
) -> None:
    order = make_order(("RS-DOES-NOT-EXIST", 1))
    with pytest.raises(ErpNotFound, match="RS-DOES-NOT-EXIST"):
        await erp_adapter.create_order(order, ADA)


async def test_tryton_user_error_carries_the_erps_message(erp_client: TrytonClient) -> None:
    with pytest.raises(ErpBusinessError) as caught:
        await erp_client.create("sale.sale", [{"reference": "no party"}])
    assert "party" in caught.value.erp_message.lower()
    assert "party" in str(caught.value).lower()
    assert not isinstance(caught.value, ErpTransientError)


async def test_shipped_order_cannot_be_cancelled(erp_adapter: TrytonErpAdapter) -> None:
    order = make_order(("RS-CAP", 1))
    await erp_adapter.submit_order(order, ADA)
    await erp_adapter.record_dispatch(order.id)
    with pytest.raises(ErpBusinessError, match="already shipped"):
        await erp_adapter.cancel_order(order.id)


async def test_confirm_that_leaves_the_sale_unprocessed_is_surfaced_with_the_reason(
    erp_adapter: TrytonErpAdapter, erp_client: TrytonClient
) -> None:
    # A product without accounts: Tryton confirms the sale, then fails to invoice it after the
    # commit and says nothing; the adapter must not report that as success.
    (unit,) = await erp_client.search("product.uom", [("name", "=", "Unit")])
    await erp_client.create(
        "product.template",
        [
            {
                "name": "Gift wrap (no accounts)",
                "code": "RS-GIFTWRAP",
                "type": "goods",
                "salable": True,
                "default_uom": unit,
                "sale_uom": unit,
                "list_price": Decimal("3.00"),
                "products": [["create", [{}]]],
            }
        ],
    )
    order = make_order(("RS-GIFTWRAP", 1))
    with pytest.raises(ErpOperationNotCarriedOut) as caught:
        await erp_adapter.submit_order(order, ADA)
    assert caught.value.actual_state == "confirmed"
    assert "account" in caught.value.erp_message.lower()


async def test_expired_session_is_renewed_transparently(erp_client: TrytonClient) -> None:
    logins = erp_client.logins
    await erp_client.read("res.user", [1], ["login"])
    erp_client._session = base64.b64encode(b"admin:1:expired-token").decode()
    (user,) = await erp_client.read("res.user", [1], ["login"])
    assert user["login"] == "admin"
    assert erp_client.logins == logins + 1


async def test_stopping_the_erp_mid_call_is_a_transient_error(tmp_path: Path) -> None:
    sandbox = ErpSandbox(tmp_path / "erp-outage")
    sandbox.start()
    try:
        async with TrytonClient(connection_for(sandbox)) as client:
            seed = sandbox.seed
            email = "ada@example.com"
            (sale,) = await client.create(
                "sale.sale",
                [
                    {
                        "party": seed.customer_id(email),
                        "invoice_address": seed.addresses[email],
                        "shipment_address": seed.addresses[email],
                        "payment_term": seed.payment_term_id,
                        "lines": [
                            [
                                "create",
                                [
                                    {
                                        "type": "line",
                                        "product": seed.product_id("RS-CAP"),
                                        "unit": 1,
                                        "quantity": 1.0,
                                        "unit_price": Decimal("15.00"),
                                    }
                                ],
                            ]
                        ],
                    }
                ],
            )
            await client.button("sale.sale", "quote", [sale])
            # Confirm+process takes 0.3-1 s: kill the server while the call is in flight.
            call = asyncio.create_task(client.button("sale.sale", "confirm", [sale]))
            await asyncio.sleep(0.1)
            sandbox.kill()
            with pytest.raises(ErpTransientError):
                await call
            with pytest.raises(ErpTransientError, match="could not be reached"):
                await client.read("res.user", [1], ["login"])
    finally:
        sandbox.stop()
