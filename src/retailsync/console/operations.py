"""Overview, trace explorer, approvals, reconciliation and replay pages.

Each page reads what the hub's components offer and says plainly when one is not running in
this process (no workflow runtime, no bus) instead of failing.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import json
import multiprocessing
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from retailsync.api.scopes import Scope
from retailsync.bus import tables as bus_tables
from retailsync.bus.backend import EventBusBackend, ExceptionStatus, ReplayProgress, ReplayRequest
from retailsync.console.errors import ComponentUnavailable
from retailsync.console.queries import human_age
from retailsync.console.web import flash, gate, gate_post, hub_of, redirect, render, unavailable
from retailsync.observability.errors import TraceQueryInvalid
from retailsync.observability.kpi_source import load_kpi_inputs
from retailsync.observability.kpis import Window, build_intervals, summarise
from retailsync.observability.settings import observability_settings
from retailsync.observability.sla import Severity, evaluate_slas
from retailsync.observability.tables import trace_records
from retailsync.observability.traces import Trace, TraceEntry, load_trace

router = APIRouter()

#: Workflow states that mean "a person has to act".
WAITING_STATES = ("awaiting_approval", "escalated")
KPI_WINDOW = timedelta(hours=24)
_OVERVIEW_CACHE_SECONDS = 30.0


# ------------------------------------------------------------------------------------------
# Overview
# ------------------------------------------------------------------------------------------


@dataclass
class WorkflowHealth:
    workflow: str
    running: int = 0
    waiting: int = 0
    failed: int = 0
    succeeded: int = 0


def _workflows_launched() -> bool:
    try:
        from retailsync.workflows.runtime import is_launched
    except ImportError:  # pragma: no cover - the workflows package ships with the hub
        return False
    return is_launched()


async def _workflow_state(workflow_id: str) -> dict[str, Any]:
    from dbos import DBOS

    from retailsync.workflows.process import STATE_EVENT

    state = await DBOS.get_event_async(workflow_id, STATE_EVENT, timeout_seconds=0)
    return state or {}


async def workflow_health(limit: int = 2000) -> list[WorkflowHealth] | None:
    """Counts per workflow type over the most recent ``limit`` runs; None without a runtime."""
    if not _workflows_launched():
        return None
    from dbos import DBOS

    rows = await DBOS.list_workflows_async(
        limit=limit, sort_desc=True, load_input=False, load_output=False
    )
    by_type: dict[str, WorkflowHealth] = {}
    pending: list[tuple[WorkflowHealth, str]] = []
    for row in rows:
        name = str(row.name or "unknown")
        if name.startswith("<temp>"):
            continue
        health = by_type.setdefault(name, WorkflowHealth(workflow=name))
        status = str(row.status)
        if status in ("PENDING", "ENQUEUED"):
            pending.append((health, row.workflow_id))
        elif status in ("ERROR", "MAX_RECOVERY_ATTEMPTS_EXCEEDED", "CANCELLED"):
            health.failed += 1
        elif status == "SUCCESS":
            health.succeeded += 1
    states = await asyncio.gather(*(_workflow_state(wid) for _, wid in pending[:200]))
    for (health, _), state in zip(pending, states, strict=False):
        if state.get("state") in WAITING_STATES:
            health.waiting += 1
        else:
            health.running += 1
    for health, _ in pending[200:]:
        health.running += 1
    return sorted(by_type.values(), key=lambda h: h.workflow)


@dataclass
class SlaRow:
    name: str
    description: str
    role: str
    within: str
    completed: int
    open: int
    p50: str
    p90: str
    breaches: int
    at_risk: int

    @property
    def breached(self) -> bool:
        return self.breaches > 0


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return human_age(timedelta(seconds=value))


def sla_rows(engine: sa.Engine, settings: Any, now: datetime) -> list[SlaRow]:
    """Each SLA with its measure's last-24-hour percentiles, breaches and items at risk."""
    config = observability_settings(settings)
    longest = max((sla.within for sla in config.slas), default=timedelta(0))
    lookback = max(config.kpis.lookback, longest * 2)
    inputs = load_kpi_inputs(engine, now - KPI_WINDOW, now + timedelta(microseconds=1), lookback)
    intervals = build_intervals(inputs, config.kpis)
    findings = evaluate_slas(intervals, config.slas, now)
    window = Window(now - KPI_WINDOW, now)
    rows = []
    for sla in config.slas:
        summary = summarise(intervals.get(sla.measure, ()), window)
        mine = [f for f in findings if f.sla.name == sla.name]
        rows.append(
            SlaRow(
                name=sla.name,
                description=sla.description,
                role=sla.role.value,
                within=human_age(sla.within),
                completed=summary.completed,
                open=summary.open,
                p50=_seconds(summary.p50_seconds),
                p90=_seconds(summary.p90_seconds),
                breaches=sum(1 for f in mine if f.severity is Severity.BREACH),
                at_risk=sum(1 for f in mine if f.severity is Severity.AT_RISK),
            )
        )
    return rows


def exception_counts(engine: sa.Engine) -> dict[str, dict[str, int]]:
    """Open exceptions per downstream system and classification."""
    c = bus_tables.exceptions.c
    counts: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for system, classification, n in conn.execute(
            sa.select(c.system, c.classification, sa.func.count())
            .where(c.status == ExceptionStatus.OPEN.value)
            .group_by(c.system, c.classification)
        ):
            counts.setdefault(system or "-", {})[classification] = int(n)
    return counts


def event_lag(engine: sa.Engine) -> dict[str, Any]:
    """Stored events each subscriber's cursors have not passed yet (SQL bus), per subscriber.

    One index range scan per cursor (shard, seq > last delivered), so it stays cheap however
    many events are stored.
    """
    events = bus_tables.events.c
    cursors = bus_tables.cursors.c
    behind_cursor = (
        sa.select(sa.func.count())
        .where(events.shard == cursors.shard, events.seq > cursors.last_seq)
        .correlate(bus_tables.cursors)
        .scalar_subquery()
    )
    with engine.connect() as conn:
        newest = conn.execute(sa.select(sa.func.max(events.seq))).scalar() or 0
        rows = conn.execute(sa.select(cursors.subscriber, behind_cursor)).all()
    behind: dict[str, int] = {}
    for subscriber, count in rows:
        behind[str(subscriber)] = behind.get(str(subscriber), 0) + int(count or 0)
    return {"newest": int(newest), "behind": {s: n for s, n in behind.items() if n}}


def _sla_rows_from_url(database_url: str, settings: Any, now: datetime) -> list[SlaRow]:
    """:func:`sla_rows` in a worker process (its own engine)."""
    from retailsync.db import create_engine_for

    engine = create_engine_for(database_url)
    try:
        return sla_rows(engine, settings, now)
    finally:
        engine.dispose()


_kpi_pool: concurrent.futures.ProcessPoolExecutor | None = None


def _kpi_executor() -> concurrent.futures.ProcessPoolExecutor:
    """One spawned worker process for the KPI computation.

    It parses a day of event envelopes (seconds of pure Python at 100,000 events); in the
    hub's own process that would hold the GIL and slow every request meanwhile.
    """
    global _kpi_pool
    if _kpi_pool is None:
        _kpi_pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn")
        )
        atexit.register(shutdown_kpi_worker)
    return _kpi_pool


def shutdown_kpi_worker() -> None:
    """Stop the KPI worker process (at exit, or when the application stops)."""
    global _kpi_pool
    pool, _kpi_pool = _kpi_pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


async def _slow_parts(hub: Any) -> dict[str, Any]:
    """The parts that read a day of events or many workflows: computed off the request."""
    now = datetime.now(UTC)
    workflows = await workflow_health()
    url = hub.settings.resolved_database_url
    loop = asyncio.get_running_loop()
    try:
        slas = await loop.run_in_executor(
            _kpi_executor(), _sla_rows_from_url, url, hub.settings, now
        )
    except (OSError, concurrent.futures.process.BrokenProcessPool):
        slas = await asyncio.to_thread(sla_rows, hub.engine, hub.settings, now)
    return {"workflows": workflows, "slas": slas, "computed_at": now}


async def overview(app: Any, hub: Any, *, wait: float = 0.05) -> dict[str, Any]:
    """Everything the overview page shows.

    Connector health, open exceptions and delivery lag are read on every request (cheap).
    KPIs against SLAs and workflow health read a day of events and many workflows, so they are
    computed in the background, kept for ``_OVERVIEW_CACHE_SECONDS``, and the page waits at
    most ``wait`` seconds for a fresh computation; meanwhile it shows the previous one (with
    its age) or says it is being computed and refreshes that part when it is ready.
    """
    now = datetime.now(UTC)
    cached: tuple[float, dict[str, Any]] | None = getattr(app.state, "console_overview", None)
    task: asyncio.Task[dict[str, Any]] | None = getattr(app.state, "console_overview_task", None)
    fresh = cached is not None and time.monotonic() - cached[0] < _OVERVIEW_CACHE_SECONDS
    if not fresh and (task is None or task.done()):
        task = asyncio.create_task(_slow_parts(hub), name="console-overview")
        app.state.console_overview_task = task

        def keep(done: asyncio.Task[dict[str, Any]]) -> None:
            if not done.cancelled() and done.exception() is None:
                app.state.console_overview = (time.monotonic(), done.result())

        task.add_done_callback(keep)
    if not fresh and task is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), timeout=wait)
    cached = getattr(app.state, "console_overview", None)
    exceptions, lag = await asyncio.gather(
        asyncio.to_thread(exception_counts, hub.engine),
        asyncio.to_thread(event_lag, hub.engine),
    )
    downstreams = getattr(app.state, "downstreams", None) or getattr(hub, "downstreams", None)
    connectors = await downstreams.health() if downstreams is not None else []
    slow = cached[1] if cached is not None else None
    return {
        "computing": slow is None,
        "workflows": slow["workflows"] if slow else None,
        "slas": slow["slas"] if slow else [],
        "computed_at": slow["computed_at"] if slow else None,
        "connectors": connectors,
        "exception_counts": exceptions,
        "lag": lag,
        "generated_at": now,
    }


# ------------------------------------------------------------------------------------------
# Trace explorer
# ------------------------------------------------------------------------------------------

TRACE_KINDS = {"order": "Order id", "case": "Case id", "correlation": "Correlation id"}
MAX_JOURNEYS = 20


def find_trace(engine: sa.Engine, kind: str, entity: str) -> Trace:
    """The timeline of an order, a case or a correlation id.

    For an order or a case the journeys (correlation ids) that touched it are first found
    through indexes (the event store's partition key, the trace records' order and
    case ids) and their timelines merged; only when none is found does it fall back to the
    full search of :func:`load_trace`, which reads every stored envelope.
    """
    if kind == "correlation":
        return load_trace(engine, correlation_id=entity)
    e = bus_tables.events.c
    records = trace_records.c
    column = records.order_id if kind == "order" else records.case_id
    with engine.connect() as conn:
        journeys = set(
            conn.execute(
                sa.select(e.correlation_id)
                .where(e.partition_key == entity, e.correlation_id.is_not(None))
                .distinct()
                .limit(MAX_JOURNEYS)
            ).scalars()
        )
        journeys |= set(
            conn.execute(
                sa.select(records.correlation_id)
                .where(column == entity, records.correlation_id.is_not(None))
                .distinct()
                .limit(MAX_JOURNEYS)
            ).scalars()
        )
    if not journeys:
        if kind == "order":
            return load_trace(engine, order_id=entity)
        return load_trace(engine, case_id=entity)
    entries: dict[tuple[str, str, int, str], TraceEntry] = {}
    truncated = False
    for journey in sorted(journeys)[:MAX_JOURNEYS]:
        trace = load_trace(engine, correlation_id=journey, limit=2000)
        truncated = truncated or trace.truncated
        for entry in trace.entries:
            entries[(entry.origin, entry.kind.value, entry.ref, entry.at.isoformat())] = entry
    ordered = tuple(sorted(entries.values(), key=TraceEntry.sort_key))
    return Trace(
        order_id=entity if kind == "order" else None,
        case_id=entity if kind == "case" else None,
        correlation_id=None,
        correlation_ids=tuple(sorted({x.correlation_id for x in ordered if x.correlation_id})),
        entries=ordered,
        truncated=truncated or len(journeys) > MAX_JOURNEYS,
    )


@router.get("/traces")
async def traces(request: Request, kind: str = "order", q: str = "") -> Response:
    user = await gate(request, Scope.ADMIN)
    if isinstance(user, Response):
        return user
    kind = kind if kind in TRACE_KINDS else "order"
    q = q.strip()[:200]
    trace = None
    error = None
    if q:
        try:
            trace = await asyncio.to_thread(find_trace, hub_of(request).engine, kind, q)
        except TraceQueryInvalid as exc:
            error = str(exc)
        if trace is not None and not trace.entries:
            error = (
                f"Nothing is recorded for {TRACE_KINDS[kind].lower()} {q!r}: check the id, or "
                "whether it is older than the retention of events and trace records."
            )
    return render(
        request,
        "traces.html",
        {
            "user": user,
            "title": "Trace explorer",
            "kinds": TRACE_KINDS,
            "kind": kind,
            "q": q,
            "trace": trace,
            "error": error,
        },
        status_code=404 if error and q else 200,
    )


# ------------------------------------------------------------------------------------------
# Approvals
# ------------------------------------------------------------------------------------------


async def waiting_refunds(limit: int = 500) -> list[dict[str, Any]] | None:
    """Refund workflows that wait for a decision, oldest first; None without a runtime."""
    if not _workflows_launched():
        return None
    from dbos import DBOS

    rows = await DBOS.list_workflows_async(
        status="PENDING", limit=limit, sort_desc=False, load_input=True, load_output=False
    )
    candidates = [row for row in rows if str(row.name).endswith("service_refund")]
    states = await asyncio.gather(*(_workflow_state(row.workflow_id) for row in candidates))
    waiting = []
    for row, state in zip(candidates, states, strict=True):
        if state.get("state") not in WAITING_STATES:
            continue
        request: dict[str, Any] = {}
        inputs = getattr(row, "input", None)
        if isinstance(inputs, dict):
            args = inputs.get("args") or ()
            request = args[0] if args and isinstance(args[0], dict) else {}
        amount = request.get("amount") or {}
        created = row.created_at
        created_at = (
            datetime.fromtimestamp(created / 1000, UTC)
            if isinstance(created, int | float)
            else None
        )
        waiting.append(
            {
                "workflow_id": row.workflow_id,
                "state": state.get("state"),
                "order_id": request.get("order_id") or state.get("subject"),
                "amount": f"{amount.get('amount', '?')} {amount.get('currency', '')}".strip(),
                "reason": request.get("reason"),
                "requested_by": request.get("requested_by"),
                "reasons": (state.get("details") or {}).get("reasons", []),
                "case_ref": request.get("case_ref"),
                "correlation_id": state.get("correlation_id"),
                "created_at": created_at,
            }
        )
    return waiting


@router.get("/approvals")
async def approvals(request: Request) -> Response:
    user = await gate(request, Scope.PROCESS_APPROVE)
    if isinstance(user, Response):
        return user
    waiting = await waiting_refunds()
    return render(
        request,
        "approvals.html",
        {"user": user, "title": "Approvals", "waiting": waiting},
    )


@router.post("/approvals/{workflow_id}/{decision}")
async def decide_refund(
    request: Request,
    workflow_id: Annotated[str, Path(max_length=300)],
    decision: Annotated[str, Path(pattern="^(approve|reject)$")],
) -> Response:
    gated = await gate_post(request, Scope.PROCESS_APPROVE)
    if isinstance(gated, Response):
        return gated
    user, form = gated
    response = redirect(f"{request.scope.get('root_path', '')}/console/approvals")
    if not _workflows_launched():
        return unavailable(
            request,
            user,
            ComponentUnavailable("the workflow runtime", "start the hub with its workflows"),
        )
    from retailsync.audit import record_audit
    from retailsync.workflows.errors import NotAwaitingApproval, WorkflowNotFound
    from retailsync.workflows.service import decide

    reason = (form.get("reason") or "").strip()[:200] or None
    try:
        message = await decide(
            workflow_id, approve=decision == "approve", by=user.name, reason=reason
        )
    except (WorkflowNotFound, NotAwaitingApproval) as exc:
        flash(request, response, f"Nothing changed: {exc}", kind="error")
        return response
    hub = hub_of(request)

    def audit() -> None:
        with hub.engine.begin() as connection:
            record_audit(
                connection,
                actor=user.actor,
                action=f"refund.{message['decision']}d",
                entity_kind="workflow",
                entity_id=workflow_id,
                before=None,
                after=message,
                correlation_id=request.headers.get("traceparent"),
                reason=reason,
            )

    await run_in_threadpool(audit)
    # Give the workflow a moment to take the answer, so the list we return is current.
    for _ in range(30):
        if (await _workflow_state(workflow_id)).get("state") not in WAITING_STATES:
            break
        await asyncio.sleep(0.1)
    verb = "Approved" if decision == "approve" else "Rejected"
    flash(request, response, f"{verb} refund {workflow_id}; the workflow continues.")
    return response


# ------------------------------------------------------------------------------------------
# Reconciliation
# ------------------------------------------------------------------------------------------


@router.get("/reconciliation")
async def reconciliation(request: Request) -> Response:
    user = await gate(request, Scope.ADMIN)
    if isinstance(user, Response):
        return user
    from retailsync.reconcile.store import ReportStore

    runs = await asyncio.to_thread(ReportStore(hub_of(request).engine).list_runs, limit=50)
    return render(
        request, "reconciliation.html", {"user": user, "title": "Reconciliation", "runs": runs}
    )


@router.get("/reconciliation/{run_id}")
async def reconciliation_run(
    request: Request, run_id: Annotated[str, Path(max_length=100)]
) -> Response:
    user = await gate(request, Scope.ADMIN)
    if isinstance(user, Response):
        return user
    from retailsync.reconcile.errors import RunNotFound
    from retailsync.reconcile.store import ReportStore

    store = ReportStore(hub_of(request).engine)

    def read() -> tuple[Any, list[Any]]:
        run = store.get_run(run_id)
        drifts = []
        for drift in store.iter_drifts(run.id, page_size=200):
            drifts.append(drift)
            if len(drifts) >= 200:
                break
        return run, drifts

    try:
        run, drifts = await asyncio.to_thread(read)
    except RunNotFound as exc:
        return render(
            request,
            "error.html",
            {"user": user, "title": "No such run", "message": str(exc)},
            status_code=404,
        )
    return render(
        request,
        "reconciliation_run.html",
        {"user": user, "title": f"Run {run.id}", "run": run, "drifts": drifts},
    )


@router.get("/reconciliation/{run_id}/report.{fmt}")
async def reconciliation_download(
    request: Request,
    run_id: Annotated[str, Path(max_length=100)],
    fmt: Annotated[str, Path(pattern="^(csv|json)$")],
) -> Response:
    user = await gate(request, Scope.ADMIN)
    if isinstance(user, Response):
        return user
    from retailsync.reconcile.errors import RunNotFound
    from retailsync.reconcile.export import iter_csv, iter_json
    from retailsync.reconcile.store import ReportStore

    store = ReportStore(hub_of(request).engine)
    try:
        run = await asyncio.to_thread(store.get_run, run_id)
    except RunNotFound as exc:
        return render(
            request,
            "error.html",
            {"user": user, "title": "No such run", "message": str(exc)},
            status_code=404,
        )
    body = iter_csv(store, run.id) if fmt == "csv" else iter_json(store, run.id)
    return StreamingResponse(
        body,
        media_type="text/csv" if fmt == "csv" else "application/json",
        headers={"Content-Disposition": f'attachment; filename="{run.id}.{fmt}"'},
    )


# ------------------------------------------------------------------------------------------
# Replay
# ------------------------------------------------------------------------------------------


@dataclass
class ReplayJob:
    id: str
    request: ReplayRequest
    actor: str
    selected: int | None
    started_at: datetime
    progress: ReplayProgress | None = None
    finished_at: datetime | None = None
    error: str | None = None
    task: asyncio.Task[Any] | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.finished_at is not None

    @property
    def percent(self) -> int:
        if self.progress is None or not self.progress.total:
            return 100 if self.done else 0
        p = self.progress
        return min(100, int(100 * (p.delivered + p.skipped + p.failed) / p.total))


def _jobs(app: Any) -> dict[str, ReplayJob]:
    jobs: dict[str, ReplayJob] | None = getattr(app.state, "console_replays", None)
    if jobs is None:
        jobs = {}
        app.state.console_replays = jobs
    return jobs


def subscribers(engine: sa.Engine, bus: EventBusBackend | None) -> list[dict[str, Any]]:
    s = bus_tables.subscriptions.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(s.name, s.filter, s.downstream).order_by(s.name)).all()
    result = []
    for name, raw, downstream in rows:
        try:
            spec = json.loads(raw or "{}")
        except ValueError:
            spec = {}
        result.append(
            {
                "name": name,
                "downstream": downstream,
                "types": tuple(spec.get("types") or ()),
                "subjects": tuple(spec.get("subjects") or ()),
            }
        )
    return result


def _glob_like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def count_replay(
    engine: sa.Engine, request: ReplayRequest, subscription_types: tuple[str, ...]
) -> int:
    """How many stored events a replay would select (before skipping handled ones)."""
    e = bus_tables.events.c
    clauses: list[sa.ColumnElement[bool]] = []
    if request.since is not None:
        clauses.append(e.stored_at >= request.since)
    if request.until is not None:
        clauses.append(e.stored_at < request.until)
    if request.partition_key:
        clauses.append(e.partition_key == request.partition_key)
    if request.correlation_id:
        clauses.append(e.correlation_id == request.correlation_id)
    for patterns in (request.event_types, subscription_types):
        if patterns:
            clauses.append(sa.or_(*[e.type.like(_glob_like(p), escape="\\") for p in patterns]))
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(bus_tables.events).where(*clauses)
            ).scalar_one()
        )


def _parse_when(value: str) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _replay_request(form: dict[str, Any]) -> ReplayRequest:
    types = tuple(t.strip() for t in (form.get("event_types") or "").split(",") if t.strip())
    return ReplayRequest(
        subscriber=(form.get("subscriber") or "").strip(),
        since=_parse_when(form.get("since") or ""),
        until=_parse_when(form.get("until") or ""),
        event_types=types,
        partition_key=(form.get("partition_key") or "").strip() or None,
        correlation_id=(form.get("correlation_id") or "").strip() or None,
        force=form.get("force") == "on",
    )


def _bus_of(request: Request) -> EventBusBackend | None:
    bus = getattr(request.app.state, "bus", None)
    return bus if isinstance(bus, EventBusBackend) else None


@router.get("/replay")
async def replay_page(request: Request) -> Response:
    user = await gate(request, Scope.ADMIN)
    if isinstance(user, Response):
        return user
    engine = hub_of(request).engine
    subs = await asyncio.to_thread(subscribers, engine, _bus_of(request))
    jobs = sorted(_jobs(request.app).values(), key=lambda j: j.started_at, reverse=True)
    return render(
        request,
        "replay.html",
        {
            "user": user,
            "title": "Replay",
            "subscribers": subs,
            "jobs": jobs[:20],
            "bus_running": _bus_of(request) is not None,
            "form": {},
        },
    )


@router.post("/replay/preview")
async def replay_preview(request: Request) -> Response:
    """Step 1: count what the replay would touch and ask for confirmation."""
    gated = await gate_post(request, Scope.ADMIN)
    if isinstance(gated, Response):
        return gated
    user, form = gated
    engine = hub_of(request).engine
    subs = await asyncio.to_thread(subscribers, engine, _bus_of(request))
    error = None
    selected: int | None = None
    confirm = False
    try:
        replay = _replay_request(form)
        sub = next((s for s in subs if s["name"] == replay.subscriber), None)
        if sub is None:
            raise ValueError(f"choose a subscriber; {replay.subscriber!r} is not registered")
        if replay.since and replay.until and replay.since >= replay.until:
            raise ValueError("the range is empty: 'from' must be before 'until'")
        bus = _bus_of(request)
        # On NATS the events live in the stream, not in a SQL table: counted as it runs.
        if bus is None or bus.name == "sql":
            selected = await asyncio.to_thread(count_replay, engine, replay, sub["types"])
        confirm = True
    except ValueError as exc:
        error = f"Cannot replay: {exc}."
    return render(
        request,
        "replay.html",
        {
            "user": user,
            "title": "Replay",
            "subscribers": subs,
            "jobs": [],
            "bus_running": _bus_of(request) is not None,
            "form": form,
            "selected": selected,
            "confirm": confirm,
            "error": error,
        },
        status_code=422 if error else 200,
    )


@router.post("/replay")
async def replay_start(request: Request) -> Response:
    """Step 2: the operator confirmed; run the replay in the background and show progress."""
    gated = await gate_post(request, Scope.ADMIN)
    if isinstance(gated, Response):
        return gated
    user, form = gated
    bus = _bus_of(request)
    if bus is None:
        return unavailable(
            request, user, ComponentUnavailable("the event bus", "start the hub with its bus")
        )
    try:
        replay = _replay_request(form)
    except ValueError as exc:
        response = redirect("/console/replay")
        flash(request, response, f"Cannot replay: {exc}.", kind="error")
        return response
    selected = int(form["selected"]) if str(form.get("selected", "")).isdigit() else None
    job = ReplayJob(
        id=f"rpl_{uuid.uuid4().hex[:16]}",
        request=replay,
        actor=user.actor,
        selected=selected,
        started_at=datetime.now(UTC),
    )

    def on_progress(progress: ReplayProgress) -> None:
        job.progress = progress

    async def run() -> None:
        try:
            job.progress = await bus.replay(replay, on_progress)
        except Exception as exc:  # shown on the job's page; the bus keeps its own records
            job.error = f"{type(exc).__name__}: {exc}"
        finally:
            job.finished_at = datetime.now(UTC)

    job.task = asyncio.create_task(run(), name=f"console-replay-{job.id}")
    _jobs(request.app)[job.id] = job
    return redirect(f"/console/replay/{job.id}")


@router.get("/replay/{job_id}")
async def replay_job(request: Request, job_id: Annotated[str, Path(max_length=40)]) -> Response:
    user = await gate(request, Scope.ADMIN)
    if isinstance(user, Response):
        return user
    job = _jobs(request.app).get(job_id)
    if job is None:
        return render(
            request,
            "error.html",
            {
                "user": user,
                "title": "No such replay",
                "message": f"No replay {job_id} ran in this process since it started.",
            },
            status_code=404,
        )
    partial = request.headers.get("HX-Request") == "true"
    return render(
        request,
        "replay_progress.html" if partial else "replay_job.html",
        {"user": user, "title": f"Replay {job.id}", "job": job},
    )
