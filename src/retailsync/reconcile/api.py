"""HTTP: available to sell (experience) and reconciliation runs and reports (admin).

``GET /v1/experience/availability`` (scope ``experience:read``) reads the available-to-sell
read model. ``POST /v1/admin/reconciliations`` (scope ``admin``) starts a run in the
background and answers 202 with the run; ``GET`` lists runs, shows one (counts by kind) and
downloads its drift report as CSV or JSON.

What it runs against comes from ``hub.adapters`` (see :mod:`retailsync.reconcile.wiring`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from retailsync.api.auth import require_scope
from retailsync.api.problems import ProblemError, problem_responses
from retailsync.api.scopes import Scope
from retailsync.reconcile import wiring
from retailsync.reconcile.engine import JOBS, run_reconciliation
from retailsync.reconcile.errors import RunNotFound, UnknownJob
from retailsync.reconcile.export import iter_csv, iter_json
from retailsync.reconcile.projection import AvailabilityProjection, AvailabilityView
from retailsync.reconcile.store import ReportStore, RunSummary

__all__ = ["router"]

router = APIRouter()
experience = APIRouter(
    prefix="/experience",
    tags=["experience"],
    dependencies=[require_scope(Scope.EXPERIENCE_READ)],
    responses=problem_responses(404),
)
admin = APIRouter(
    prefix="/admin/reconciliations",
    tags=["reconciliation"],
    dependencies=[require_scope(Scope.ADMIN)],
    responses=problem_responses(404, 409),
)


def _hub(request: Request) -> Any:
    return request.app.state.hub


@experience.get(
    "/availability",
    response_model=AvailabilityView,
    summary="Available to sell of a SKU, per location and per sales channel",
)
def availability(
    request: Request,
    sku: str = Query(min_length=1, max_length=64),
    location: str | None = Query(default=None, max_length=64),
) -> AvailabilityView:
    hub = _hub(request)
    settings = wiring.availability_settings(hub)
    with hub.engine.connect() as connection:
        view = AvailabilityProjection(settings).view(connection, sku, location)
    if not view.locations and not view.channels:
        raise ProblemError(
            404,
            "unknown-sku",
            f"The hub has no stock figures for SKU {sku!r}"
            + (f" at {location!r}" if location else "")
            + "; check the SKU, or whether the ERP and warehouse report it.",
            title="Unknown SKU",
        )
    return view


class StartReconciliation(BaseModel):
    job: Literal["inventory", "orders", "refunds"] = Field(examples=["inventory"])
    dry_run: bool = Field(default=False, description="Report only: no corrections or tickets.")


def _tasks(request: Request) -> set[asyncio.Task[Any]]:
    tasks: set[asyncio.Task[Any]] | None = getattr(request.app.state, "reconcile_tasks", None)
    if tasks is None:
        tasks = set()
        request.app.state.reconcile_tasks = tasks
    return tasks


@admin.post(
    "",
    status_code=202,
    response_model=RunSummary,
    summary="Start a reconciliation run (inventory, orders or refunds) in the background",
)
async def start_reconciliation(request: Request, body: StartReconciliation) -> RunSummary:
    hub = _hub(request)
    factory: Callable[[str], Any] | None = wiring.sources_factory(hub)
    if factory is None:
        raise ProblemError(
            409,
            "reconciliation-not-configured",
            "No reconciliation sources are configured on this hub: wire "
            "adapters['reconcile_sources'] in bootstrap.",
            title="Reconciliation not configured",
        )
    store = ReportStore(hub.engine)
    run_id = f"rcn_{uuid.uuid4().hex[:24]}"
    principal = getattr(request.state, "principal", None)

    refused: list[BaseException] = []

    async def run() -> None:
        try:
            sources = factory(body.job)
            await run_reconciliation(
                JOBS[body.job],
                sources,
                store=store,
                publisher=wiring.publisher(hub),
                open_exception=wiring.tickets(hub),
                policy=wiring.policy(hub),
                trigger="api",
                requested_by=getattr(principal, "client_id", None),
                dry_run=body.dry_run,
                run_id=run_id,
            )
        except Exception as exc:  # recorded on the run as failed, or refused before it began
            refused.append(exc)

    task = asyncio.create_task(run(), name=f"reconcile-{body.job}-{run_id}")
    tasks = _tasks(request)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    for _ in range(100):
        try:
            return await asyncio.to_thread(store.get_run, run_id)
        except RunNotFound:
            if task.done():
                break
            await asyncio.sleep(0.01)
    reason = str(refused[0]) if refused else "it did not start in time"
    raise ProblemError(
        409,
        "reconciliation-not-started",
        f"The {body.job} reconciliation did not start: {reason}. "
        "Check GET /v1/admin/reconciliations.",
        title="Reconciliation not started",
    )


@admin.get("", response_model=list[RunSummary], summary="Recent reconciliation runs")
def list_runs(
    request: Request,
    job: str | None = Query(default=None),
    limit: int = Query(default=50, ge=1, le=500),
) -> list[RunSummary]:
    if job is not None and job not in JOBS:
        raise ProblemError(404, "unknown-job", str(UnknownJob(job, list(JOBS))))
    return ReportStore(_hub(request).engine).list_runs(job=job, limit=limit)


def _run(request: Request, run_id: str) -> tuple[ReportStore, RunSummary]:
    store = ReportStore(_hub(request).engine)
    try:
        return store, store.get_run(run_id)
    except RunNotFound as exc:
        raise ProblemError(404, "unknown-reconciliation-run", str(exc)) from None


@admin.get("/{run_id}", response_model=RunSummary, summary="One run, with drift counts by kind")
def get_run(request: Request, run_id: str) -> RunSummary:
    return _run(request, run_id)[1]


@admin.get("/{run_id}/report.csv", summary="The run's drift report as CSV")
def report_csv(request: Request, run_id: str) -> StreamingResponse:
    store, run = _run(request, run_id)
    return StreamingResponse(
        iter_csv(store, run.id),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{run.id}.csv"'},
    )


@admin.get("/{run_id}/report.json", summary="The run's drift report as JSON")
def report_json(request: Request, run_id: str) -> StreamingResponse:
    store, run = _run(request, run_id)
    return StreamingResponse(
        iter_json(store, run.id),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{run.id}.json"'},
    )


router.include_router(experience)
router.include_router(admin)
