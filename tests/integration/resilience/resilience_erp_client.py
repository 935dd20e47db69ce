"""A connector in miniature: HTTP calls to the test downstream, errors classified."""

from __future__ import annotations

from typing import Any

import httpx

from retailsync.resilience.http import raise_for_downstream, translate_transport_errors


class MiniErpClient:
    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, limits=httpx.Limits(max_connections=64)
        )

    async def get_order(self, order_id: str) -> dict[str, Any]:
        with translate_transport_errors(downstream="erp", operation="get_order"):
            response = await self.http.get(f"/orders/{order_id}")
        raise_for_downstream(response, downstream="erp", operation="get_order")
        return dict(response.json())

    async def issue_refund(self, payload: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        with translate_transport_errors(downstream="erp", operation="issue_refund"):
            response = await self.http.post("/refunds", json=payload, headers=headers)
        raise_for_downstream(response, downstream="erp", operation="issue_refund")
        return dict(response.json())

    async def aclose(self) -> None:
        await self.http.aclose()


def max_in_window(arrivals: list[float], window: float = 1.0) -> int:
    """The most arrivals in any half-open window ``[t, t + window)`` starting at an arrival."""
    ordered = sorted(arrivals)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best
