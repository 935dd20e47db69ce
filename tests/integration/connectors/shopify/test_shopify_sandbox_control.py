"""The Shopify sandbox's control API and raw REST answers over HTTP."""

from __future__ import annotations

import httpx
from shopify_harness import RunningShopify

from retailsync.sandbox.shopify import SANDBOX_ACCESS_TOKEN


def test_rest_answers_carry_shopifys_headers_and_errors(shopify_sandbox: RunningShopify) -> None:
    """Shopify docs, "REST Admin API rate limits" (X-Shopify-Shop-Api-Call-Limit, 429 with
    Retry-After) and "Make paginated requests to the REST Admin API" (page_info may only be
    combined with limit and fields)."""
    token = {"X-Shopify-Access-Token": SANDBOX_ACCESS_TOKEN}
    with httpx.Client(base_url=shopify_sandbox.base_url) as http:
        for _ in range(3):
            http.post("/_sandbox/orders", json={"lines": [{"sku": "A-1", "price": "2.50"}]})
        first = http.get("/admin/api/2024-10/orders.json", params={"limit": 2}, headers=token)
        assert first.status_code == 200 and len(first.json()["orders"]) == 2
        assert first.headers["X-Shopify-Shop-Api-Call-Limit"].endswith("/40")
        next_url = first.headers["Link"].split(";")[0].strip("<>")
        assert 'rel="next"' in first.headers["Link"]
        second = http.get(next_url, headers=token)
        assert len(second.json()["orders"]) == 1 and 'rel="previous"' in second.headers["Link"]
        mixed = http.get(next_url + "&status=any", headers=token)
        assert mixed.status_code == 400 and "page_info" in mixed.json()["errors"]
        http.post("/_sandbox/faults", json={"rate_limit_next": 1, "retry_after_seconds": 2})
        limited = http.get("/admin/api/2024-10/orders.json", headers=token)
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "2.0"
        denied = http.get("/admin/api/2024-10/orders.json")
        assert denied.status_code == 401 and "Invalid API key" in denied.json()["errors"]
