"""``retailsync reconcile``: run reconciliations with a progress bar, list runs, export reports.

``retailsync reconcile inventory`` reads the systems the hub is wired to
(``adapters['reconcile_sources']``), or CSV exports given with ``--erp``, ``--wms`` and
``--storefront`` (``sku,location,on_hand[,reserved,allocated,in_transit]`` / ``sku,location,
available``, sorted by ``sku@location``).

Corrections are published on the hub's event bus: the command starts the bus (which registers
the hub's subscriptions, so none starts after these events), appends the events durably and
closes it; it does not deliver them. The hub that runs ``retailsync serve`` or ``worker`` on
the same database (and broker) delivers them to the correctors, as it does the events of a
scheduled run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from retailsync.bus.errors import BusError
from retailsync.reconcile import wiring
from retailsync.reconcile.engine import JOBS, run_reconciliation
from retailsync.reconcile.errors import ReconcileError
from retailsync.reconcile.export import iter_csv, iter_json
from retailsync.reconcile.sources import csv_level_source, csv_stock_source
from retailsync.reconcile.store import ReportStore, RunSummary

app = typer.Typer(
    help="Compare ERP, warehouse, storefront, service desk and payments; report and fix drift.",
    no_args_is_help=True,
)
console = Console(stderr=True)

DryRun = Annotated[bool, typer.Option("--dry-run", help="Report only: publish nothing.")]


def _hub() -> Any:
    from retailsync.bootstrap import bootstrap

    return bootstrap(configure_logs=False)


def _run(job: str, sources: dict[str, Any] | None, dry_run: bool) -> RunSummary:
    try:
        summary = asyncio.run(_reconcile(_hub(), job, sources, dry_run))
    except ReconcileError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    except BusError as exc:
        console.print(
            f"[red]The event bus is not available: {exc}[/red] Run with --dry-run to report only."
        )
        raise typer.Exit(1) from exc
    _print_summary(summary)
    return summary


@contextlib.asynccontextmanager
async def _bus_started(bus: Any | None) -> AsyncIterator[None]:
    """``bus`` started for publishing (no delivery) for the block, then closed."""
    if bus is None:
        yield
        return
    await bus.start()
    try:
        yield
    finally:
        await bus.close()


async def _reconcile(
    hub: Any, job: str, sources: dict[str, Any] | None, dry_run: bool
) -> RunSummary:
    """One run with the hub's wiring; corrections go to the hub's bus (or the wired
    ``event_publisher``). Releases what the hub holds open on the way out."""
    try:
        if sources is None:
            factory = wiring.sources_factory(hub)
            if factory is None:
                console.print(
                    f"[red]No sources are wired for the {job} reconciliation.[/red] Configure "
                    "the connectors, or for inventory pass CSV exports with --erp, --wms and "
                    "--storefront."
                )
                raise typer.Exit(2)
            sources = factory(job)
        publisher = wiring.publisher(hub)
        if publisher is None and not dry_run:
            console.print(
                "[yellow]No event publisher is wired: corrections are reported, not sent "
                "(as with --dry-run).[/yellow]"
            )
            dry_run = True
        bus = getattr(hub, "bus", None)
        async with _bus_started(bus if publisher is bus and not dry_run else None):
            with Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                TextColumn("{task.fields[keys]:,} keys compared, {task.fields[drifts]:,} drifts"),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                task = progress.add_task(f"reconcile {job}", total=None, keys=0, drifts=0)

                def update(keys: int, drifts: int) -> None:
                    progress.update(task, keys=keys, drifts=drifts)

                return await run_reconciliation(
                    JOBS[job],
                    sources,
                    store=ReportStore(hub.engine),
                    publisher=publisher,
                    open_exception=wiring.tickets(hub),
                    policy=wiring.policy(hub),
                    trigger="cli",
                    progress=update,
                    dry_run=dry_run,
                )
    finally:
        await hub.aclose()


def _print_summary(summary: RunSummary) -> None:
    table = Table(title=f"{summary.job} reconciliation {summary.id} ({summary.status})")
    table.add_column("drift kind")
    table.add_column("count", justify="right")
    for kind, count in sorted(summary.counts.items()):
        table.add_row(kind, f"{count:,}")
    Console().print(table)
    Console().print(
        f"{summary.keys_compared:,} keys compared; {summary.drift_count:,} drifts: "
        f"{summary.corrections:,} corrected, {summary.exceptions:,} sent to people. "
        f"Report: retailsync reconcile report {summary.id} --format csv"
    )


@app.command()
def inventory(
    erp: Annotated[Path | None, typer.Option(help="ERP stock CSV export.")] = None,
    wms: Annotated[Path | None, typer.Option(help="Warehouse on-hand CSV export.")] = None,
    storefront: Annotated[Path | None, typer.Option(help="Storefront levels CSV.")] = None,
    dry_run: DryRun = False,
) -> None:
    """ERP stock vs warehouse on hand vs storefront levels, per SKU and location."""
    files = (erp, wms, storefront)
    sources: dict[str, Any] | None = None
    if any(files):
        if not all(files):
            console.print("[red]Give all three of --erp, --wms and --storefront, or none.[/red]")
            raise typer.Exit(2)
        assert erp and wms and storefront
        sources = {
            "erp": csv_stock_source(erp),
            "wms": csv_stock_source(wms),
            "storefront": csv_level_source(storefront),
        }
    _run("inventory", sources, dry_run)


@app.command()
def orders(dry_run: DryRun = False) -> None:
    """Storefront orders vs ERP sales: missing, status mismatch, amount mismatch."""
    _run("orders", None, dry_run)


@app.command()
def refunds(dry_run: DryRun = False) -> None:
    """Service-desk refund decisions vs ERP credit notes vs payment refunds."""
    _run("refunds", None, dry_run)


@app.command()
def runs(
    job: Annotated[str | None, typer.Option(help="Only runs of this job.")] = None,
    limit: int = 20,
) -> None:
    """Recent runs with their drift counts."""
    hub = _hub()
    try:
        found = ReportStore(hub.engine).list_runs(job=job, limit=limit)
    finally:
        hub.close()
    table = Table(title="reconciliation runs")
    table.add_column("id", no_wrap=True)
    for column in ("job", "status", "started", "keys", "drifts", "corrected", "to people"):
        table.add_column(column)
    for run in found:
        table.add_row(
            run.id,
            run.job,
            run.status,
            run.started_at.isoformat(timespec="seconds"),
            f"{run.keys_compared:,}",
            f"{run.drift_count:,}",
            f"{run.corrections:,}",
            f"{run.exceptions:,}",
        )
    Console().print(table)


@app.command()
def report(
    run_id: str,
    format: Annotated[str, typer.Option(help="csv or json")] = "csv",
    output: Annotated[Path | None, typer.Option(help="File to write (default: stdout).")] = None,
) -> None:
    """Export a run's drift report."""
    if format not in {"csv", "json"}:
        console.print("[red]--format must be csv or json.[/red]")
        raise typer.Exit(2)
    hub = _hub()
    try:
        store = ReportStore(hub.engine)
        chunks = iter_csv(store, run_id) if format == "csv" else iter_json(store, run_id)
        if output is None:
            for chunk in chunks:
                typer.echo(chunk, nl=False)
        else:
            with output.open("w", encoding="utf-8") as handle:
                handle.writelines(chunks)
    except ReconcileError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    finally:
        hub.close()
