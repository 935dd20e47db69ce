"""Read models built from events: the order 360 an agent's screen and the console show.

``tables`` (the read model), ``projection`` (the bus subscription that keeps it current,
version-aware via ``merge``), ``read`` (:func:`order_360`: the answer from the read model
alone), ``service`` (:class:`Order360Service`: the same with a freshness check against the ERP
through the resilience guard, flagged ``stale`` when the ERP cannot confirm), ``eligibility``
(return eligibility of a line by the domain's return policy), ``erp_queries`` (the listing
reads the System APIs need beyond :class:`~retailsync.ports.erp.ErpPort`), ``models`` (what
the answers look like).
May import ``retailsync.domain``, ``retailsync.db``, ``retailsync.ports``,
``retailsync.resilience`` and ``retailsync.bus``; never connectors, workflows or the API.
"""

from __future__ import annotations

from retailsync.views.eligibility import return_eligibility
from retailsync.views.errors import (
    OrderDetailsUnknown,
    OrderNotInReadModel,
    UnknownOrderLine,
    ViewError,
)
from retailsync.views.models import Order360View, ReturnEligibility
from retailsync.views.projection import (
    ORDER_360_EVENT_TYPES,
    apply_event,
    handle_order_360_event,
    order_360_subscription,
)
from retailsync.views.read import order_360
from retailsync.views.service import FreshnessPolicy, Order360Service

__all__ = [
    "ORDER_360_EVENT_TYPES",
    "FreshnessPolicy",
    "Order360Service",
    "Order360View",
    "OrderDetailsUnknown",
    "OrderNotInReadModel",
    "ReturnEligibility",
    "UnknownOrderLine",
    "ViewError",
    "apply_event",
    "handle_order_360_event",
    "order_360",
    "order_360_subscription",
    "return_eligibility",
]
