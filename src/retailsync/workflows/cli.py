"""``retailsync workflows list|show|approve|reject|takeover|upgrade``: operate workflows.

These commands talk to the workflow system database through a DBOS client: they never run
workflow code, so they are safe to run next to live workers.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import sqlalchemy as sa
import typer
from dbos import DBOSClient
from rich.console import Console
from rich.table import Table

from retailsync.config import Settings
from retailsync.workflows.process import APPROVAL_TOPIC, STATE_EVENT
from retailsync.workflows.runtime import JSON_SERIALIZER, system_database_url

app = typer.Typer(
    help="Durable workflows: list, inspect, approve and hand over.", no_args_is_help=True
)
console = Console()


def _client() -> DBOSClient:
    return DBOSClient(
        system_database_url=system_database_url(Settings()), serializer=JSON_SERIALIZER
    )


@app.command("list")
def list_workflows(
    status: Annotated[str | None, typer.Option(help="PENDING, ENQUEUED, SUCCESS, ERROR...")] = None,
    executor: Annotated[str | None, typer.Option(help="Only this worker's workflows.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
) -> None:
    """Recent workflows with their status, worker and version."""
    client = _client()
    rows = client.list_workflows(
        status=status,
        executor_id=executor,
        limit=limit,
        sort_desc=True,
        load_input=False,
        load_output=False,
    )
    table = Table("workflow id", "workflow", "status", "executor", "version")
    for row in rows:
        table.add_row(
            row.workflow_id, row.name, row.status, row.executor_id or "", row.app_version or ""
        )
    console.print(table)


@app.command()
def show(workflow_id: str) -> None:
    """One workflow's state, trace and steps, as JSON."""
    client = _client()
    status = client.retrieve_workflow(workflow_id).get_status()
    state = client.get_event(workflow_id, STATE_EVENT, timeout_seconds=0)
    steps = client.list_workflow_steps(workflow_id)
    document: dict[str, Any] = {
        "workflow_id": workflow_id,
        "status": status.status,
        "executor_id": status.executor_id,
        "application_version": status.app_version,
        "state": state,
        "steps": [{"name": s["function_name"], "output": s.get("output")} for s in steps],
    }
    typer.echo(json.dumps(document, indent=2, default=str))


def _decide(workflow_id: str, approve: bool, by: str, reason: str | None) -> None:
    client = _client()
    state = client.get_event(workflow_id, STATE_EVENT, timeout_seconds=0) or {}
    if state.get("state") not in {"awaiting_approval", "escalated"}:
        console.print(
            f"[red]{workflow_id} is {state.get('state')!r}, not waiting for an approval.[/red]"
        )
        raise typer.Exit(1)
    client.send(
        workflow_id,
        {"decision": "approve" if approve else "reject", "by": by, "reason": reason},
        topic=APPROVAL_TOPIC,
    )
    console.print(f"{'Approved' if approve else 'Rejected'} {workflow_id} as {by}.")


@app.command()
def approve(
    workflow_id: str,
    by: Annotated[str, typer.Option(help="Who approves.")],
    reason: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Approve a refund that waits for a person."""
    _decide(workflow_id, True, f"cli:{by}", reason)


@app.command()
def reject(
    workflow_id: str,
    by: Annotated[str, typer.Option(help="Who rejects.")],
    reason: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Reject a refund that waits for a person (no money moves)."""
    _decide(workflow_id, False, f"cli:{by}", reason)


@app.command()
def takeover(
    dead_worker: Annotated[str, typer.Argument(help="Executor id of the worker that is gone.")],
    yes: Annotated[bool, typer.Option("--yes", help="The worker is stopped for good.")] = False,
) -> None:
    """Hand a dead worker's pending workflows to the live workers.

    Only for a worker that will not come back (a restarted worker with the same id recovers
    its own). Each pending workflow is put back on its queue; the next live worker to poll it
    resumes from its last checkpoint, and its idempotency keys absorb a repeated step.
    """
    if not yes:
        console.print(
            "[red]Stop the worker for good first, then rerun with --yes: a worker "
            "that is still running would run the same workflows twice.[/red]"
        )
        raise typer.Exit(2)
    client = _client()
    pending = client.list_workflows(
        status="PENDING", executor_id=dead_worker, load_input=False, load_output=False
    )
    for row in pending:
        client.resume_workflow(row.workflow_id)
    console.print(f"Handed {len(pending)} workflow(s) of {dead_worker!r} to the live workers.")


IN_FLIGHT = ("PENDING", "ENQUEUED")


def retag_in_flight(client: DBOSClient, from_version: str, to_version: str) -> int:
    """Move every pending or enqueued workflow of ``from_version`` to ``to_version``.

    DBOS recovers and dequeues only the workflows of a process's own application version;
    this is the step that lets the new version's workers continue the old version's work.
    """
    system = client._sys_db  # the DBOS client exposes no public call for this one update
    status = system.tables.workflow_status
    with system.engine.begin() as connection:
        result = connection.execute(
            sa.update(status)
            .where(status.c.status.in_(IN_FLIGHT))
            .where(status.c.application_version == from_version)
            .values(application_version=to_version)
        )
    return int(result.rowcount or 0)


@app.command()
def upgrade(
    from_version: Annotated[str, typer.Option("--from", help="The version being replaced.")],
    to_version: Annotated[str, typer.Option("--to", help="The version now deployed.")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Every worker of the old version is stopped.")
    ] = False,
) -> None:
    """Hand the in-flight workflows of an old application version to the new one.

    Only for a release whose workflows keep the steps already taken by in-flight work (see
    docs/workflows.md, "Upgrading"); stop every old worker first, run this, start the new ones.
    """
    if not yes:
        console.print(
            "[red]Stop every worker of the old version first, then rerun with --yes: an old "
            "worker still running would keep running the same workflows.[/red]"
        )
        raise typer.Exit(2)
    moved = retag_in_flight(_client(), from_version, to_version)
    console.print(f"Moved {moved} in-flight workflow(s) from {from_version!r} to {to_version!r}.")
