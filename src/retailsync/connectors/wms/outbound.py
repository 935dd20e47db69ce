"""The :class:`~retailsync.ports.warehouse.WarehousePort` implemented on the WMS contract."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from retailsync.connectors.wms.client import WmsClient
from retailsync.connectors.wms.config import WmsSettings
from retailsync.domain.inventory import InventoryPosition
from retailsync.ports.warehouse import Allocation, ExpectedReturnLine


def _filters(sku: str | None, location: str | None) -> dict[str, str]:
    filters = {}
    if sku:
        filters["sku"] = sku
    if location:
        filters["location"] = location
    return filters


class WmsWarehouse:
    """Warehouse operations over the WMS REST API."""

    def __init__(self, client: WmsClient, settings: WmsSettings) -> None:
        self._client = client
        self._settings = settings

    async def expect_return(
        self,
        *,
        rma_reference: str,
        order_reference: str,
        location: str,
        lines: Sequence[ExpectedReturnLine],
        idempotency_key: str,
    ) -> str:
        body = await self._client.request(
            "POST",
            "/v1/return-expectations",
            json={
                "rma_ref": rma_reference,
                "order_ref": order_reference,
                "location": location,
                "lines": [{"sku": line.sku, "quantity": line.quantity} for line in lines],
            },
            idempotency_key=idempotency_key,
            operation="expect return",
        )
        return str(body["expectation_id"])

    async def cancel_pick_task(self, task_id: str, *, reason: str, idempotency_key: str) -> None:
        await self._client.request(
            "POST",
            f"/v1/pick-tasks/{task_id}/cancel",
            json={"reason": reason},
            idempotency_key=idempotency_key,
            operation="cancel pick task",
        )

    async def iter_positions(
        self, *, sku: str | None = None, location: str | None = None
    ) -> AsyncIterator[InventoryPosition]:
        async for item in self._client.iter_pages(
            "/v1/inventory", _filters(sku, location), operation="list inventory"
        ):
            as_of = datetime.fromisoformat(item["as_of"])
            yield InventoryPosition(
                sku=item["sku"],
                location=item["location"],
                on_hand=int(item["on_hand"]),
                allocated=int(item.get("allocated", 0)),
                reserved=0,
                in_transit=0,
                as_of=as_of,
                version=max(1, int(as_of.timestamp())),
            )

    async def iter_allocations(
        self, *, sku: str | None = None, location: str | None = None
    ) -> AsyncIterator[Allocation]:
        async for item in self._client.iter_pages(
            "/v1/allocations", _filters(sku, location), operation="list allocations"
        ):
            yield Allocation(
                allocation_id=str(item["allocation_id"]),
                order_reference=str(item["order_ref"]),
                sku=item["sku"],
                location=item["location"],
                quantity=int(item["quantity"]),
                updated_at=datetime.fromisoformat(item["updated_at"]),
            )
