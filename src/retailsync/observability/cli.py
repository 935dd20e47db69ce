"""``retailsync trace ORDER_OR_CASE`` and the ``observability`` commands (KPIs, SLA check).

The trace command prints the same timeline as ``GET /v1/admin/traces``, read from the
configured database, so it works on a stopped hub.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table

from retailsync.observability.errors import ObservabilityError
from retailsync.observability.tracecontext import normalise_correlation_id
from retailsync.observability.traces import Trace, TraceEntry, load_trace


class GroupChoice(StrEnum):
    CHANNEL = "channel"
    REGION = "region"


app = typer.Typer(help="Traces, business KPIs and SLA checks.", no_args_is_help=True)
err = Console(stderr=True)


def _engine() -> sa.Engine:
    from pydantic import ValidationError

    from retailsync.config import Settings
    from retailsync.db import create_engine_for

    try:
        settings = Settings()
    except ValidationError as exc:
        err.print(f"[red]Invalid configuration:[/red]\n{exc}")
        raise typer.Exit(2) from exc
    return create_engine_for(settings.resolved_database_url)


def _query_for(identifier: str) -> dict[str, str]:
    """``ord_…`` is an order, ``case_…`` a case, a trace id or traceparent a correlation."""
    if identifier.startswith("ord_"):
        return {"order_id": identifier}
    if identifier.startswith("case_"):
        return {"case_id": identifier}
    correlation = normalise_correlation_id(identifier)
    return {"correlation_id": correlation or identifier}


def _latency(entry: TraceEntry) -> str:
    return "" if entry.latency_ms is None else f"{entry.latency_ms:.1f} ms"


def render_trace(trace: Trace, console: Console) -> None:
    """The timeline as a table: offset from the first hop, kind, system, operation, outcome."""
    if not trace.entries:
        return
    start = trace.entries[0].at
    console.print(
        f"[bold]Trace[/bold] {trace.order_id or trace.case_id or trace.correlation_id}: "
        f"{len(trace.entries)} hops across {', '.join(trace.systems)}; started "
        f"{start.isoformat()}"
    )
    console.print(f"correlation id(s): {', '.join(trace.correlation_ids) or '-'}")
    table = Table(show_lines=False, header_style="bold")
    for column in ("+time", "kind", "system", "operation", "status", "attempt", "latency"):
        table.add_column(column, no_wrap=column in {"+time", "kind"})
    for entry in trace.entries:
        offset = (entry.at - start).total_seconds()
        status = entry.status
        if status in {"ok", "stored", "accepted", "delivered", "sent"}:
            status = f"[green]{status}[/green]"
        elif entry.kind.value == "exception" or status in {"failed", "gave_up", "error"}:
            status = f"[red]{status}[/red]"
        table.add_row(
            f"+{offset:,.3f}s",
            entry.kind.value,
            entry.system,
            entry.operation,
            status,
            "" if entry.attempt is None else str(entry.attempt),
            _latency(entry),
        )
    console.print(table)
    if trace.truncated:
        console.print("[yellow]Only the first hops are shown; raise --limit to see all.[/yellow]")


@app.command("trace")
def trace(
    identifier: Annotated[
        str, typer.Argument(help="An order id (ord_…), a case id (case_…) or a correlation id.")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the JSON the API returns.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many hops.")] = 5000,
) -> None:
    """Print the end-to-end timeline of an order, a case or a correlation id."""
    engine = _engine()
    try:
        found = load_trace(engine, limit=limit, **_query_for(identifier))
    except ObservabilityError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    except sa.exc.OperationalError as exc:
        err.print(
            "[red]The trace store is not reachable or not migrated.[/red] Run "
            f"`retailsync db upgrade` against this database first. ({exc.orig})"
        )
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    if not found.entries:
        err.print(f"Nothing is recorded for {identifier}.")
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(found.to_json(), indent=2))
    else:
        render_trace(found, Console())


@app.command("kpis")
def kpis(
    hours: Annotated[float, typer.Option(min=0.01, help="Window: the last N hours.")] = 24.0,
    group_by: Annotated[GroupChoice | None, typer.Option(help="Split the KPIs.")] = None,
) -> None:
    """Print the business KPIs of the last N hours as JSON."""
    from retailsync.config import Settings
    from retailsync.observability.kpi_source import load_kpi_inputs
    from retailsync.observability.kpis import Window, compute_kpis
    from retailsync.observability.settings import observability_settings

    config = observability_settings(Settings())
    engine = _engine()
    until = datetime.now(UTC)
    since = until - timedelta(hours=hours)
    try:
        inputs = load_kpi_inputs(engine, since, until, config.kpis.lookback)
        report = compute_kpis(
            inputs,
            Window(since, until),
            group_by=None if group_by is None else group_by.value,
            settings=config.kpis,
        )
    except ObservabilityError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    typer.echo(json.dumps(report.to_json(), indent=2))


@app.command("sla-check")
def sla_check() -> None:
    """Look for SLA breaches and items at risk now, and send their alerts (once each)."""
    from retailsync.config import Settings
    from retailsync.observability.monitor import SlaMonitor
    from retailsync.observability.settings import observability_settings

    config = observability_settings(Settings())
    engine = _engine()
    try:
        report = asyncio.run(SlaMonitor(engine, config).run_once())
    finally:
        engine.dispose()
    summary: dict[str, Any] = {
        "at": report.at.isoformat(),
        "breaches": sum(1 for f in report.findings if f.severity == "breach"),
        "at_risk": sum(1 for f in report.findings if f.severity == "at_risk"),
        "alerts_raised": report.raised,
        "deliveries": report.delivered,
        "failed_deliveries": report.failed,
    }
    typer.echo(json.dumps(summary, indent=2))
    if report.failed:
        raise typer.Exit(1)
