"""Generic warehouse (WMS / 3PL) over REST and signed webhooks (contract: docs/connectors/wms.md).

``config`` (settings), ``signing`` (HMAC-SHA256 over ``timestamp.body``), ``client`` (HTTP,
cursor paging, 429 / 5xx back-off), ``mapping`` (WMS payloads -> canonical, pure), ``inbound``
(the webhook receiver), ``outbound`` (the ``WarehousePort`` implementation). May import
``retailsync.domain``, ``retailsync.ports`` and ``retailsync.resilience``.
"""

from __future__ import annotations

from retailsync.connectors.wms.client import WmsClient
from retailsync.connectors.wms.config import WmsSettings
from retailsync.connectors.wms.inbound import WmsWebhookReceiver
from retailsync.connectors.wms.outbound import WmsWarehouse

__all__ = ["WmsClient", "WmsSettings", "WmsWarehouse", "WmsWebhookReceiver"]
