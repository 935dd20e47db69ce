"""The end-of-demo report: each step's verdict, each system's own counts, where to look next."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from retailsync.demo.scenario import StepResult, StepStatus

MARKS = {
    StepStatus.VERIFIED: "[green]verified[/green]",
    StepStatus.FAILED: "[red]FAILED[/red]",
    StepStatus.NOT_AVAILABLE: "[yellow]not available yet[/yellow]",
}


def steps_table(results: list[StepResult]) -> Table:
    table = Table(title="Scenario", title_justify="left", expand=False)
    table.add_column("step")
    table.add_column("result")
    table.add_column("checks", justify="right")
    table.add_column("s", justify="right")
    table.add_column("why not", overflow="fold", max_width=70)
    for result in results:
        passed = sum(1 for c in result.checks if c.ok)
        table.add_row(
            result.title,
            MARKS[result.status],
            f"{passed}/{len(result.checks)}",
            f"{result.seconds:.1f}",
            "" if result.status is StepStatus.VERIFIED else result.note,
        )
    return table


def systems_table(counts: dict[str, dict[str, int | str]]) -> Table:
    """What each system holds at the end, as that system counts it."""
    table = Table(title="What each system shows (asked each system)", title_justify="left")
    table.add_column("system")
    table.add_column("what")
    table.add_column("count", justify="right")
    for system, items in counts.items():
        first = True
        for what, value in items.items():
            table.add_row(system if first else "", what, str(value))
            first = False
    return table


def where_next(console: Console, hub_url: str, api_key: str, order_id: str | None) -> None:
    console.print("\n[bold]Where to look next[/bold]")
    console.print(f"  API docs:  {hub_url}/v1/docs")
    console.print(f"  Console:   {hub_url}/console")
    console.print(f"  Demo API key (the same on every run from this directory): {api_key}")
    console.print(f"  curl -H 'X-API-Key: {api_key}' {hub_url}/v1/health")
    if order_id:
        console.print(f"  curl -H 'X-API-Key: {api_key}' {hub_url}/v1/experience/orders/{order_id}")
    console.print(
        f"  curl -X POST -H 'X-API-Key: {api_key}' -H 'Idempotency-Key: my-first-refund' "
        f"-H 'Content-Type: application/json' {hub_url}/v1/process/refunds -d '{{...}}'"
    )


def print_summary(
    console: Console,
    results: list[StepResult],
    counts: dict[str, dict[str, int | str]],
) -> None:
    console.print()
    console.print(steps_table(results))
    console.print(systems_table(counts))
