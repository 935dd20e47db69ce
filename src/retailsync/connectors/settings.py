"""Per-retailer connector configuration: each system is optional and validated at start."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from retailsync.connectors.batch.config import BatchSettings
from retailsync.connectors.erp.config import ErpSettings
from retailsync.connectors.shopify.config import ShopifySettings
from retailsync.connectors.stripe.config import StripeSettings
from retailsync.connectors.wms.config import WmsSettings
from retailsync.connectors.zendesk.config import ZendeskSettings


class ConnectorsSettings(BaseModel):
    """``[connectors.<system>]`` sections; a system left out is simply not connected."""

    model_config = ConfigDict(extra="forbid")

    erp: ErpSettings | None = None
    zendesk: ZendeskSettings | None = None
    wms: WmsSettings | None = None
    batch: BatchSettings | None = None
    stripe: StripeSettings | None = None
    shopify: ShopifySettings | None = None
