"""``retailsync replay`` and ``retailsync exceptions ...``: replay and the exception queue.

``app`` holds both (mount with ``add_typer(app)`` or pick ``replay`` / ``exceptions_app``).
Subscriptions come from :func:`retailsync.bus.runtime.registered` (``bootstrap`` registers
them when imported); replay needs the named subscriber's handler in this process.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from retailsync.bus.backend import (
    BulkOutcome,
    Classification,
    EventBusBackend,
    ExceptionFilter,
    ExceptionStatus,
    ReplayProgress,
    ReplayRequest,
)
from retailsync.bus.errors import BusError
from retailsync.config import Settings

app = typer.Typer(no_args_is_help=True, help="Replay events and work the exception queue.")
exceptions_app = typer.Typer(
    no_args_is_help=True, help="The exception queue: list, retry, resolve, discard."
)
app.add_typer(exceptions_app, name="exceptions")
out = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    return Settings()


def _run(factory: Any) -> Any:
    """Open the configured bus, run ``factory(bus)``, close it; bus errors exit with code 1."""

    async def main() -> Any:
        from retailsync.bootstrap import bootstrap

        hub = bootstrap(_settings(), configure_logs=False)
        await hub.bus.start()
        try:
            return await factory(hub.bus)
        finally:
            await hub.bus.close()
            await hub.aclose()

    try:
        return asyncio.run(main())
    except (BusError, LookupError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc


def _when(value: str | None) -> datetime | None:
    """ISO 8601 time, or an age like ``30m``, ``2h``, ``7d`` (that long ago)."""
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[:-1].isdigit() and value[-1] in units:
        return datetime.now(UTC) - timedelta(seconds=int(value[:-1]) * units[value[-1]])
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command()
def replay(
    subscriber: Annotated[str, typer.Argument(help="The subscription to re-deliver to.")],
    since: Annotated[str | None, typer.Option(help="Stored at or after (ISO time or 2h).")] = None,
    until: Annotated[str | None, typer.Option(help="Stored before (ISO time or 30m).")] = None,
    event_type: Annotated[
        list[str] | None, typer.Option("--type", help="Event type glob; repeatable.")
    ] = None,
    partition_key: Annotated[str | None, typer.Option("--key", help="Partition key.")] = None,
    correlation_id: Annotated[str | None, typer.Option("--correlation-id")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Run handlers again even for events already handled.")
    ] = False,
) -> None:
    """Re-deliver stored events to one subscriber; already handled ones are skipped unless
    --force."""
    request = ReplayRequest(
        subscriber=subscriber,
        since=_when(since),
        until=_when(until),
        event_types=tuple(event_type or ()),
        partition_key=partition_key,
        correlation_id=correlation_id,
        force=force,
    )

    async def go(bus: EventBusBackend) -> ReplayProgress:
        with Progress(
            TextColumn("[bold]replay[/bold] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=err,
        ) as progress:
            task = progress.add_task(subscriber, total=None, detail="")

            def show(p: ReplayProgress) -> None:
                progress.update(
                    task,
                    total=p.total,
                    completed=p.delivered + p.skipped + p.failed,
                    detail=f"delivered {p.delivered} skipped {p.skipped} failed {p.failed}",
                )

            return await bus.replay(request, show)

    result: ReplayProgress = _run(go)
    out.print(
        f"replayed to {subscriber}: {result.total} selected, {result.delivered} delivered, "
        f"{result.skipped} skipped, {result.failed} failed"
    )
    if result.failed:
        raise typer.Exit(3)


def _filter(
    status: list[ExceptionStatus] | None,
    subscriber: str | None,
    event_type: str | None,
    system: str | None,
    classification: Classification | None,
    older_than: str | None,
) -> ExceptionFilter:
    return ExceptionFilter(
        subscriber=subscriber,
        event_type=event_type,
        system=system,
        classification=classification,
        statuses=tuple(status or (ExceptionStatus.OPEN,)),
        older_than=_when(older_than),
    )


StatusOpt = Annotated[
    list[ExceptionStatus] | None, typer.Option("--status", help="Default: open; repeatable.")
]
SubscriberOpt = Annotated[str | None, typer.Option("--subscriber")]
TypeOpt = Annotated[str | None, typer.Option("--type", help="Event type glob.")]
SystemOpt = Annotated[str | None, typer.Option("--system", help="Downstream system, e.g. erp.")]
ClassOpt = Annotated[Classification | None, typer.Option("--classification")]
AgeOpt = Annotated[
    str | None, typer.Option("--older-than", help="Created before (ISO time or 2h, 7d).")
]
IdsArg = Annotated[list[int] | None, typer.Argument(help="Entry ids; or select with filters.")]
ActorOpt = Annotated[str, typer.Option("--actor", help="Who is acting (for the audit).")]


@exceptions_app.command("list")
def list_exceptions(
    status: StatusOpt = None,
    subscriber: SubscriberOpt = None,
    event_type: TypeOpt = None,
    system: SystemOpt = None,
    classification: ClassOpt = None,
    older_than: AgeOpt = None,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show exception entries (open ones by default)."""
    selection = _filter(status, subscriber, event_type, system, classification, older_than)
    entries = _run(lambda bus: bus.exceptions.list(selection, limit=limit))
    if as_json:
        rows = [
            {
                "id": e.id,
                "subscriber": e.subscriber,
                "event_type": e.event_type,
                "event_id": e.event_id,
                "system": e.system,
                "classification": e.classification.value,
                "status": e.status.value,
                "error": e.error_message,
                "attempts": len(e.history),
                "manual_retries": e.manual_retry_count,
                "created_at": e.created_at.isoformat(),
            }
            for e in entries
        ]
        out.print_json(json.dumps(rows))
        return
    table = Table("id", "subscriber", "type", "system", "class", "status", "tries", "error")
    for e in entries:
        table.add_row(
            str(e.id),
            e.subscriber,
            e.event_type,
            e.system or "",
            e.classification.value,
            e.status.value,
            f"{len(e.history)}+{e.manual_retry_count}",
            e.error_message[:60],
        )
    out.print(table)


def _act(
    action: str,
    ids: list[int] | None,
    selection: ExceptionFilter,
    actor: str,
    text: str | None,
) -> None:
    if not ids and selection == ExceptionFilter():
        err.print("[red]error:[/red] give entry ids or at least one filter (e.g. --system erp)")
        raise typer.Exit(2)
    target: Any = list(ids) if ids else selection

    async def go(bus: EventBusBackend) -> BulkOutcome:
        queue = bus.exceptions
        if action == "retry":
            return await queue.retry(target, actor=actor, reason=text)
        if action == "resolve":
            return await queue.resolve(target, actor=actor, note=text or "")
        return await queue.discard(target, actor=actor, reason=text or "")

    outcome: BulkOutcome = _run(go)
    out.print(f"{action}: {len(outcome.changed)} changed, {len(outcome.skipped)} skipped")
    for entry_id, why in outcome.skipped:
        out.print(f"  {entry_id}: {why}")


@exceptions_app.command()
def retry(
    ids: IdsArg = None,
    actor: ActorOpt = "cli",
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    subscriber: SubscriberOpt = None,
    event_type: TypeOpt = None,
    system: SystemOpt = None,
    classification: ClassOpt = None,
    older_than: AgeOpt = None,
) -> None:
    """Queue open entries for redelivery now (by id or by filter)."""
    selection = _filter(None, subscriber, event_type, system, classification, older_than)
    _act("retry", ids, selection, actor, reason)


@exceptions_app.command()
def resolve(
    note: Annotated[str, typer.Option("--note", help="How it was resolved (required).")],
    ids: IdsArg = None,
    actor: ActorOpt = "cli",
    subscriber: SubscriberOpt = None,
    event_type: TypeOpt = None,
    system: SystemOpt = None,
    classification: ClassOpt = None,
    older_than: AgeOpt = None,
) -> None:
    """Mark entries resolved (fixed elsewhere), with a note."""
    selection = _filter(None, subscriber, event_type, system, classification, older_than)
    _act("resolve", ids, selection, actor, note)


@exceptions_app.command()
def discard(
    reason: Annotated[str, typer.Option("--reason", help="Why it is dropped (required).")],
    ids: IdsArg = None,
    actor: ActorOpt = "cli",
    subscriber: SubscriberOpt = None,
    event_type: TypeOpt = None,
    system: SystemOpt = None,
    classification: ClassOpt = None,
    older_than: AgeOpt = None,
) -> None:
    """Drop entries that need no action, with a reason."""
    selection = _filter(None, subscriber, event_type, system, classification, older_than)
    _act("discard", ids, selection, actor, reason)
