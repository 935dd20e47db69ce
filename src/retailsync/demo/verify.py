"""Ask each system itself what happened: Tryton over JSON-RPC, the sandboxes over their APIs.

Nothing here reads the hub's memory: the ERP is asked with its own JSON-RPC (login, search,
read), Stripe, Shopify and Zendesk through the vendor API their sandboxes reproduce, the WMS
through its request log. A check that cannot reach a system fails; it never passes by default.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from retailsync.sandbox.shopify import API_VERSION, SANDBOX_ACCESS_TOKEN
from retailsync.sandbox.stripe import SANDBOX_API_KEY

SALE = "sale.sale"


@dataclass(frozen=True)
class Check:
    """One expected outcome, as one system reports it."""

    system: str
    what: str
    ok: bool
    detail: str = ""


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("__class__") == "Decimal":
            return Decimal(value["decimal"])
        return {key: _decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


class ErpProbe:
    """A minimal JSON-RPC reader of the Tryton sandbox, independent of the hub's adapter."""

    def __init__(self, base_url: str, database: str, login: str, password: str) -> None:
        self._url = f"{base_url}/{database}/rpc/"
        self._login = login
        self._password = password
        self._auth: str | None = None
        self._context: dict[str, Any] = {}
        self._http = httpx.AsyncClient(timeout=30)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, method: str, params: list[Any]) -> Any:
        headers = {"Authorization": self._auth} if self._auth else {}
        answer = await self._http.post(
            self._url, json={"id": 1, "method": method, "params": params}, headers=headers
        )
        if answer.status_code in (401, 403):
            raise PermissionError("session expired")
        answer.raise_for_status()
        body = answer.json()
        if body.get("error"):
            raise RuntimeError(f"Tryton {method}: {body['error']}")
        return _decode(body.get("result"))

    async def _ensure_session(self) -> None:
        if self._auth is not None:
            return
        login = [self._login, {"password": self._password}, "en"]
        user_id, token = (await self._post("common.db.login", login))[:2]
        raw = f"{self._login}:{user_id}:{token}".encode()
        self._auth = "Session " + base64.b64encode(raw).decode()
        self._context = await self._post("model.res.user.get_preferences", [True, {}])

    async def call(self, model: str, method: str, *params: Any) -> Any:
        for _attempt in range(2):
            await self._ensure_session()
            try:
                return await self._post(f"model.{model}.{method}", [*params, self._context])
            except PermissionError:
                self._auth = None
        raise RuntimeError("the ERP refused the session twice")

    async def search_read(
        self, model: str, domain: list[Any], fields: list[str], limit: int | None = None
    ) -> list[dict[str, Any]]:
        result = await self.call(model, "search_read", domain, 0, limit, [["id", "ASC"]], fields)
        return list(result or [])

    async def sales(self, reference: str) -> list[dict[str, Any]]:
        """Sales whose reference is ``reference`` (the canonical order or RMA id)."""
        return await self.search_read(
            SALE,
            [["reference", "=", reference]],
            ["id", "state", "shipment_state", "invoice_state", "total_amount", "invoices"],
        )

    async def sale_cancelled(self, sale_id: int) -> bool:
        """Cancelled, or (Tryton's way once processing) every shipment and invoice cancelled."""
        (sale,) = await self.call(SALE, "read", [sale_id], ["state", "shipments", "invoices"])
        if sale["state"] == "cancelled":
            return True
        if sale["state"] != "processing" or not (sale["shipments"] or sale["invoices"]):
            return False
        shipments = await self.call("stock.shipment.out", "read", sale["shipments"], ["state"])
        invoices = await self.invoices(list(sale["invoices"]))
        return all(doc["state"] == "cancelled" for doc in [*shipments, *invoices])

    async def invoices(self, ids: list[int]) -> list[dict[str, Any]]:
        if not ids:
            return []
        return list(
            await self.call("account.invoice", "read", ids, ["state", "total_amount", "type"])
        )

    async def credit_notes(self, reference: str) -> list[dict[str, Any]]:
        """Posted or paid invoices with a negative total on the sales with ``reference``."""
        notes = []
        for sale in await self.sales(reference):
            for invoice in await self.invoices(list(sale["invoices"])):
                if invoice["total_amount"] < 0:
                    notes.append(invoice)
        return notes

    async def stock(self, product_id: int, location_id: int) -> Decimal:
        """Units of a product on hand at a location, as the ERP computes them."""
        await self._ensure_session()
        context = {**self._context, "locations": [location_id]}
        (record,) = await self._post(
            "model.product.product.read", [[product_id], ["quantity"], context]
        )
        return Decimal(str(record["quantity"]))

    async def counts(self) -> dict[str, int]:
        """What the ERP holds, by kind, counted by the ERP."""
        sales = await self.search_read(SALE, [], ["id", "state", "total_amount", "reference"])
        invoices = await self.search_read(
            "account.invoice", [["type", "=", "out"]], ["state", "total_amount"]
        )
        shipments = await self.search_read("stock.shipment.out", [], ["state"])
        returns = await self.search_read("stock.shipment.out.return", [], ["state"])
        orders = [s for s in sales if s["total_amount"] >= 0]
        cancelled = 0
        for sale in orders:
            if sale["state"] in ("cancelled", "processing") and await self.sale_cancelled(
                int(sale["id"])
            ):
                cancelled += 1
        return {
            "sales orders": len(orders),
            "  of which cancelled": cancelled,
            "return sales": len(sales) - len(orders),
            "invoices posted": sum(
                1 for i in invoices if i["total_amount"] >= 0 and i["state"] in ("posted", "paid")
            ),
            "credit notes posted": sum(
                1 for i in invoices if i["total_amount"] < 0 and i["state"] in ("posted", "paid")
            ),
            "shipments done": sum(1 for s in shipments if s["state"] == "done"),
            "return shipments received": sum(
                1 for s in returns if s["state"] in ("received", "done")
            ),
        }


class SandboxProbe:
    """The SaaS sandboxes as their vendor APIs (and control APIs) report them."""

    def __init__(self, urls: dict[str, str], *, zendesk_email: str, zendesk_token: str) -> None:
        self.urls = urls
        self._http = httpx.AsyncClient(timeout=20)
        token = base64.b64encode(f"{zendesk_email}/token:{zendesk_token}".encode()).decode()
        self._zendesk_auth = {"Authorization": f"Basic {token}"}

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        answer = await self._http.request(method, url, **kwargs)
        answer.raise_for_status()
        return answer.json()

    # Stripe
    async def stripe_refunds(self, payment_intent: str) -> list[dict[str, Any]]:
        body = await self._json(
            "GET",
            f"{self.urls['stripe']}/v1/refunds",
            params={"payment_intent": payment_intent, "limit": 100},
            headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"},
        )
        return list(body["data"])

    async def stripe_intent(self, payment_intent: str) -> dict[str, Any]:
        body: dict[str, Any] = await self._json(
            "GET",
            f"{self.urls['stripe']}/v1/payment_intents/{payment_intent}",
            headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"},
        )
        return body

    async def stripe_state(self) -> dict[str, Any]:
        body: dict[str, Any] = await self._json("GET", f"{self.urls['stripe']}/_sandbox/state")
        return body

    # Shopify
    async def shopify_order(self, order_id: int) -> dict[str, Any]:
        body = await self._json(
            "GET",
            f"{self.urls['shopify']}/admin/api/{API_VERSION}/orders/{order_id}.json",
            headers={"X-Shopify-Access-Token": SANDBOX_ACCESS_TOKEN},
        )
        return dict(body["order"])

    async def shopify_webhooks(self) -> list[dict[str, Any]]:
        return list(await self._json("GET", f"{self.urls['shopify']}/_sandbox/webhooks"))

    async def shopify_state(self) -> dict[str, Any]:
        body: dict[str, Any] = await self._json("GET", f"{self.urls['shopify']}/_sandbox/state")
        return body

    # Zendesk
    async def zendesk_ticket(self, ticket_id: int) -> dict[str, Any]:
        body = await self._json(
            "GET",
            f"{self.urls['zendesk']}/api/v2/tickets/{ticket_id}.json",
            headers=self._zendesk_auth,
        )
        return dict(body["ticket"])

    async def zendesk_comments(self, ticket_id: int) -> list[dict[str, Any]]:
        body = await self._json(
            "GET",
            f"{self.urls['zendesk']}/api/v2/tickets/{ticket_id}/comments.json",
            headers=self._zendesk_auth,
        )
        return list(body["comments"])

    async def zendesk_tickets(self) -> list[dict[str, Any]]:
        body = await self._json(
            "GET",
            f"{self.urls['zendesk']}/api/v2/tickets.json",
            params={"per_page": 100},
            headers=self._zendesk_auth,
        )
        return list(body["tickets"])

    # WMS
    async def wms_requests(self) -> list[tuple[str, str, int]]:
        body = await self._json("GET", f"{self.urls['wms']}/_sandbox/requests")
        return [(str(m), str(p), int(s)) for m, p, s in body["requests"]]
