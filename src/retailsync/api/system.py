"""System APIs (scope ``system:read``): governed reads of the ERP's entities, canonical only.

Orders, invoices and credit notes, inventory positions, return authorizations and customer
account status, each read from the ERP through its resilience guard on the agent lane (a
caller is waiting), never straight from the ERP. Listings page with ``cursor`` (the
``next_cursor`` of the page before) and filter with query parameters. When the ERP cannot
answer the route says so with 503 and ``Retry-After``; it never answers from a guess. On a
hub without an ERP connector the resources do not exist (404 ``erp-not-configured``).

The hub supplies ``adapters["erp"]`` (the :class:`~retailsync.ports.erp.ErpPort`) and
``adapters["erp_queries"]`` (:class:`~retailsync.views.erp_queries.ErpQueries`; built from a
Tryton adapter when not given).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from retailsync.api.auth import require_scope
from retailsync.api.problems import PROBLEM_JSON, Problem, ProblemError, problem_responses
from retailsync.api.scopes import Scope
from retailsync.domain.finance import FinancialPosting, PostingKind, PostingStatus
from retailsync.domain.identifiers import ID_PATTERNS, EntityKind
from retailsync.domain.inventory import InventoryPosition
from retailsync.domain.orders import Order, OrderStatus
from retailsync.domain.returns import ReturnAuthorization, ReturnStatus
from retailsync.resilience.config import Lane
from retailsync.resilience.errors import BusinessError, TransientError, UnknownReference
from retailsync.resilience.guard import Downstream
from retailsync.resilience.lanes import using_lane
from retailsync.views.erp_queries import CustomerAccount, ErpQueries
from retailsync.views.service import port_is_guarded

__all__ = ["ERP_REFUSED_DOC", "router"]

T = TypeVar("T")

ERP_REFUSED_DOC: dict[int | str, dict[str, Any]] = {
    **problem_responses(404),
    502: {
        "model": Problem,
        "content": {PROBLEM_JSON: {}},
        "description": "The ERP refused the read for a business or data reason",
    },
}

router = APIRouter(
    prefix="/system",
    tags=["system"],
    dependencies=[require_scope(Scope.SYSTEM_READ)],
    responses=ERP_REFUSED_DOC,
)

Cursor = Annotated[
    str | None,
    Query(max_length=40, pattern=r"^[0-9]{1,18}$", description="`next_cursor` of the page before"),
]
Limit = Annotated[int, Query(ge=1, le=200)]
OrderIdPath = Annotated[str, Path(pattern=ID_PATTERNS[EntityKind.ORDER])]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


def _hub(request: Request) -> Any:
    return request.app.state.hub


def erp_queries(request: Request) -> ErpQueries:
    """The hub's ERP listings (built once from a Tryton adapter when not wired explicitly)."""
    hub = _hub(request)
    queries = hub.adapters.get("erp_queries")
    if queries is None and hasattr(hub.adapters.get("erp"), "client"):
        from retailsync.connectors.erp.queries import TrytonErpQueries

        queries = hub.adapters["erp_queries"] = TrytonErpQueries(hub.adapters["erp"])
    if queries is None:
        raise _not_configured()
    return queries  # type: ignore[no-any-return]


def _not_configured() -> ProblemError:
    # Not a server failure: on a hub without an ERP these resources do not exist.
    return ProblemError(
        404,
        "erp-not-configured",
        "This hub has no ERP connector configured, so the System APIs have nothing to read; "
        "configure the ERP connection (RETAILSYNC_CONNECTORS__ERP__...) and restart the hub.",
        title="No ERP on this hub",
    )


async def read_from_erp(request: Request, operation: str, fn: Callable[[], Awaitable[T]]) -> T:
    """Run one ERP read through the resilience guard; ERP failures become problem answers."""
    hub = _hub(request)
    downstream: Downstream = hub.downstreams.erp
    try:
        if port_is_guarded(hub.adapters.get("erp"), downstream):
            with using_lane(Lane.AGENT):  # each ERP request passes the guard already
                return await fn()
        return await downstream.call(operation, fn, lane=Lane.AGENT)
    except TransientError as exc:
        retry_after = max(1, math.ceil(exc.retry_after or 5))
        raise ProblemError(
            503,
            "erp-unavailable",
            f"The ERP cannot answer right now ({exc}); try again later.",
            title="ERP unavailable",
            headers={"Retry-After": str(retry_after)},
        ) from None
    except BusinessError as exc:
        if isinstance(exc, UnknownReference) or type(exc).__name__ == "ErpNotFound":
            raise ProblemError(404, "not-in-erp", str(exc), title="Not in the ERP") from None
        raise ProblemError(502, "erp-refused", str(exc), title="The ERP refused") from None


@router.get("/orders", response_model=Page[Order], summary="Orders in the ERP, oldest first")
async def list_orders(
    request: Request,
    status: OrderStatus | None = None,
    customer_id: Annotated[str | None, Query(pattern=ID_PATTERNS[EntityKind.CUSTOMER])] = None,
    changed_since: Annotated[datetime | None, Query(description="Created or changed since")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[Order]:
    queries = erp_queries(request)
    page = await read_from_erp(
        request,
        "list_orders",
        lambda: queries.list_orders(
            status=status,
            customer_id=customer_id,
            changed_since=changed_since,
            cursor=cursor,
            limit=limit,
        ),
    )
    return Page[Order](items=page.items, next_cursor=page.next_cursor)


@router.get("/orders/{order_id}", response_model=Order, summary="One order as the ERP holds it")
async def get_order(order_id: OrderIdPath, request: Request) -> Order:
    queries = erp_queries(request)
    return await read_from_erp(request, "get_order", lambda: queries.order_document(order_id))


@router.get(
    "/invoices",
    response_model=Page[FinancialPosting],
    summary="Invoices and credit notes in the ERP, oldest first",
)
async def list_invoices(
    request: Request,
    order_id: Annotated[str | None, Query(pattern=ID_PATTERNS[EntityKind.ORDER])] = None,
    kind: PostingKind | None = None,
    status: PostingStatus | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[FinancialPosting]:
    queries = erp_queries(request)
    page = await read_from_erp(
        request,
        "list_invoices",
        lambda: queries.list_invoices(
            order_id=order_id, kind=kind, status=status, cursor=cursor, limit=limit
        ),
    )
    return Page[FinancialPosting](items=page.items, next_cursor=page.next_cursor)


@router.get(
    "/invoices/{posting_id}",
    response_model=FinancialPosting,
    summary="One invoice or credit note",
)
async def get_invoice(
    posting_id: Annotated[str, Path(pattern=ID_PATTERNS[EntityKind.POSTING])], request: Request
) -> FinancialPosting:
    queries = erp_queries(request)
    return await read_from_erp(request, "get_invoice", lambda: queries.invoice(posting_id))


@router.get(
    "/inventory/positions",
    response_model=Page[InventoryPosition],
    summary="Stock positions per SKU at one ERP location",
)
async def list_positions(
    request: Request,
    location: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$",
            description="Location code; the warehouse's storage location when left out",
        ),
    ] = None,
    sku: Annotated[
        list[str] | None,
        Query(max_length=100, description="Only these SKUs (repeat the parameter)"),
    ] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[InventoryPosition]:
    queries = erp_queries(request)
    page = await read_from_erp(
        request,
        "list_positions",
        lambda: queries.list_positions(location=location, skus=sku, cursor=cursor, limit=limit),
    )
    return Page[InventoryPosition](items=page.items, next_cursor=page.next_cursor)


@router.get(
    "/return-authorizations",
    response_model=Page[ReturnAuthorization],
    summary="Return authorizations in the ERP, oldest first",
)
async def list_returns(
    request: Request,
    order_id: Annotated[str | None, Query(pattern=ID_PATTERNS[EntityKind.ORDER])] = None,
    status: ReturnStatus | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[ReturnAuthorization]:
    queries = erp_queries(request)
    page = await read_from_erp(
        request,
        "list_returns",
        lambda: queries.list_returns(order_id=order_id, status=status, cursor=cursor, limit=limit),
    )
    return Page[ReturnAuthorization](items=page.items, next_cursor=page.next_cursor)


@router.get(
    "/return-authorizations/{rma_id}",
    response_model=ReturnAuthorization,
    summary="One return authorization",
)
async def get_return(
    rma_id: Annotated[str, Path(pattern=ID_PATTERNS[EntityKind.RETURN])], request: Request
) -> ReturnAuthorization:
    queries = erp_queries(request)
    return await read_from_erp(request, "get_return", lambda: queries.return_authorization(rma_id))


@router.get(
    "/customers/{customer_id}/account-status",
    response_model=CustomerAccount,
    summary="Whether a customer may order, and what they owe",
)
async def customer_account_status(
    customer_id: Annotated[str, Path(pattern=ID_PATTERNS[EntityKind.CUSTOMER])], request: Request
) -> CustomerAccount:
    queries = erp_queries(request)
    return await read_from_erp(
        request, "customer_account", lambda: queries.customer_account(customer_id)
    )
