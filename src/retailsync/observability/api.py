"""Admin routes of observability (scope ``admin``) and the Prometheus ``/metrics`` route.

- ``GET /v1/admin/traces?order=…|case=…|correlation_id=…``: the ordered timeline across
  systems, from durable records.
- ``GET /v1/admin/kpis?since=…&until=…&group_by=channel|region``: business KPIs for a window
  (default: the last 24 hours).
- ``GET /v1/admin/alerts``: SLA alerts raised, newest first.
- ``GET /metrics`` (``metrics_router``, mounted at the root, no credentials: it carries no
  personal data): the Prometheus text exposition.

The routes read the database from ``request.app.state.hub`` (``engine`` and ``settings``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from retailsync.api.auth import require_scope
from retailsync.api.problems import ProblemError, problem_responses
from retailsync.api.scopes import Scope
from retailsync.observability.errors import KpiQueryInvalid, TraceQueryInvalid
from retailsync.observability.kpi_source import load_kpi_inputs
from retailsync.observability.kpis import Window, compute_kpis
from retailsync.observability.metrics import installed_metrics, metrics_response_body
from retailsync.observability.settings import observability_settings
from retailsync.observability.tables import alerts_sent, trace_records
from retailsync.observability.traces import load_trace

router = APIRouter(
    prefix="/admin", tags=["observability"], dependencies=[require_scope(Scope.ADMIN)]
)
metrics_router = APIRouter(tags=["observability"])


def _hub(request: Request) -> Any:
    return request.app.state.hub


@router.get(
    "/traces",
    summary="The end-to-end timeline of an order, a case or a correlation id",
    description=(
        "With one of `order`, `case` or `correlation_id`: that timeline, in order. With "
        "several, the first of correlation_id, order, case selects the timeline and the others "
        "narrow it to the hops that name them. With none: the most recent correlations, to "
        "pick one from."
    ),
    responses=problem_responses(404),
)
async def get_trace(
    request: Request,
    order: Annotated[str | None, Query(max_length=100, description="Canonical order id")] = None,
    case: Annotated[str | None, Query(max_length=100, description="Canonical case id")] = None,
    correlation_id: Annotated[
        str | None, Query(max_length=200, description="Trace id or a traceparent header")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=20000)] = 5000,
) -> dict[str, Any]:
    engine = _hub(request).engine
    if not (order or case or correlation_id):
        return {"recent": await run_in_threadpool(_recent_correlations, engine, min(limit, 100))}
    primary = (
        {"correlation_id": correlation_id}
        if correlation_id
        else {"order_id": order}
        if order
        else {"case_id": case}
    )
    try:
        trace = await run_in_threadpool(load_trace, engine, limit=limit, **primary)
    except TraceQueryInvalid as exc:
        raise ProblemError(
            422, "invalid-trace-query", str(exc), title="Invalid trace query"
        ) from None
    narrowing = {"order_id": order, "case_id": case}
    narrowing.pop(next(iter(primary)), None)
    entries = tuple(
        entry
        for entry in trace.entries
        if all(value is None or getattr(entry, key) == value for key, value in narrowing.items())
    )
    if not entries:
        what = ", ".join(
            f"{name} {value}"
            for name, value in (("correlation", correlation_id), ("order", order), ("case", case))
            if value
        )
        raise ProblemError(
            404,
            "trace-not-found",
            f"nothing is recorded for {what}: check the id, or whether it is older than the "
            "retention of events and trace records",
            title="Trace not found",
        )
    return replace(trace, entries=entries).to_json()


def _recent_correlations(engine: Any, limit: int) -> list[dict[str, Any]]:
    """The latest correlation ids with their order/case and when they were last seen."""
    last_seen = sa.func.max(trace_records.c.at)
    query = (
        sa.select(
            trace_records.c.correlation_id,
            sa.func.max(trace_records.c.order_id).label("order_id"),
            sa.func.max(trace_records.c.case_id).label("case_id"),
            last_seen.label("last_seen"),
        )
        .where(trace_records.c.correlation_id.is_not(None))
        .group_by(trace_records.c.correlation_id)
        .order_by(last_seen.desc())
        .limit(limit)
    )
    with engine.connect() as connection:
        return [
            {
                "correlation_id": row.correlation_id,
                "order_id": row.order_id,
                "case_id": row.case_id,
                "last_seen": row.last_seen.isoformat() if row.last_seen else None,
            }
            for row in connection.execute(query)
        ]


@router.get(
    "/kpis",
    summary="Business KPIs for a time window, overall and per channel or region",
    responses=problem_responses(422),
)
async def get_kpis(
    request: Request,
    since: Annotated[datetime | None, Query(description="Window start (inclusive)")] = None,
    until: Annotated[datetime | None, Query(description="Window end (exclusive)")] = None,
    group_by: Annotated[Literal["channel", "region"] | None, Query()] = None,
) -> dict[str, Any]:
    hub = _hub(request)
    config = observability_settings(hub.settings)
    end = until or datetime.now(UTC)
    start = since or end - timedelta(hours=24)
    try:
        window = Window(start, end)
    except KpiQueryInvalid as exc:
        raise ProblemError(
            422, "invalid-kpi-window", str(exc), title="Invalid KPI window"
        ) from None
    inputs = await run_in_threadpool(load_kpi_inputs, hub.engine, start, end, config.kpis.lookback)
    return compute_kpis(inputs, window, group_by=group_by, settings=config.kpis).to_json()


@router.get("/alerts", summary="SLA alerts raised, newest first")
async def list_alerts(
    request: Request,
    status: Annotated[Literal["pending", "delivered"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    def read() -> list[dict[str, Any]]:
        query = sa.select(alerts_sent).order_by(alerts_sent.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(alerts_sent.c.status == status)
        with _hub(request).engine.connect() as connection:
            return [
                {
                    "id": row["id"],
                    "sla": row["sla"],
                    "item": row["item"],
                    "severity": row["severity"],
                    "role": row["role"],
                    "status": row["status"],
                    "message": row["message"],
                    "trace_url": row["trace_url"],
                    "sinks": row["sinks"],
                    "raised_at": row["raised_at"].isoformat(),
                }
                for row in connection.execute(query).mappings()
            ]

    return {"alerts": await run_in_threadpool(read)}


@metrics_router.get("/metrics", include_in_schema=False)
def get_metrics(request: Request) -> Response:
    metrics = getattr(request.app.state, "metrics", None) or installed_metrics()
    body, content_type = metrics_response_body(metrics.registry if metrics else None)
    return Response(content=body, media_type=content_type)
