"""Experience APIs for service agents (scope ``experience:read``): the order 360 in one call.

``GET /v1/experience/orders/{id}`` answers from the order 360 read model, after a short
freshness check of the ERP-owned part through the resilience guard; when the ERP is slow or
down it still answers, with ``stale: true``, ``as_of`` and ``age_seconds``.
``GET .../lines/{line}/return-eligibility`` applies the retailer's return policy to one line.

:func:`retailsync.api.app.create_app` mounts these with the System APIs. The hub may supply
``adapters["erp"]`` (the ERP port), ``adapters["order360_freshness"]`` (a
:class:`~retailsync.views.FreshnessPolicy`) and ``adapters["return_policy"]``
(a :class:`~retailsync.domain.policies.ReturnPolicy`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from retailsync.api.auth import require_scope
from retailsync.api.problems import ProblemError
from retailsync.api.scopes import Scope
from retailsync.domain.identifiers import ID_PATTERNS, EntityKind
from retailsync.domain.policies import DEFAULT_RETURN_POLICY
from retailsync.views import (
    Order360Service,
    Order360View,
    OrderDetailsUnknown,
    OrderNotInReadModel,
    ReturnEligibility,
    UnknownOrderLine,
    return_eligibility,
)

__all__ = ["order_360_service", "router"]

router = APIRouter(
    prefix="/experience",
    tags=["experience"],
    dependencies=[require_scope(Scope.EXPERIENCE_READ)],
)

OrderIdPath = Annotated[str, Path(pattern=ID_PATTERNS[EntityKind.ORDER])]


def order_360_service(app: Any) -> Order360Service:
    """The application's order 360 service, built on first use from the hub's components."""
    service = getattr(app.state, "order360", None)
    if service is None:
        hub = app.state.hub
        erp = hub.adapters.get("erp")
        service = Order360Service(
            hub.engine,
            erp=erp,
            downstream=hub.downstreams.erp if erp is not None else None,
            policy=hub.adapters.get("order360_freshness"),
        )
        app.state.order360 = service
    return service


def _unknown(exc: OrderNotInReadModel) -> ProblemError:
    return ProblemError(404, "unknown-order", str(exc), title="Unknown order")


@router.get(
    "/orders/{order_id}",
    response_model=Order360View,
    summary="The order 360: order, lines, payment, shipments, returns, refunds, exceptions, cases",
)
async def get_order_360(order_id: OrderIdPath, request: Request) -> Response:
    try:
        body = await order_360_service(request.app).answer_json(order_id)
    except OrderNotInReadModel as exc:
        raise _unknown(exc) from None
    # The view is validated as it is built, and serialized once per change of its inputs.
    return Response(body, media_type="application/json")


@router.get(
    "/orders/{order_id}/lines/{line_no}/return-eligibility",
    response_model=ReturnEligibility,
    summary="May this order line be returned now, and how much of it",
)
async def get_return_eligibility(
    order_id: OrderIdPath,
    line_no: Annotated[int, Path(ge=1, le=10_000)],
    request: Request,
    quantity: Annotated[
        int | None, Query(ge=1, le=1_000_000, description="Units to return; default all")
    ] = None,
) -> ReturnEligibility:
    service = order_360_service(request.app)
    try:
        view = await service.answer(order_id)
        policy = request.app.state.hub.adapters.get("return_policy") or DEFAULT_RETURN_POLICY
        return return_eligibility(view, line_no, quantity=quantity, policy=policy)
    except OrderNotInReadModel as exc:
        raise _unknown(exc) from None
    except (OrderDetailsUnknown, UnknownOrderLine) as exc:
        problem = (
            "order-details-unknown" if isinstance(exc, OrderDetailsUnknown) else "unknown-line"
        )
        raise ProblemError(404, problem, str(exc), title="Unknown order line") from None
