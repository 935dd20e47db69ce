"""``retailsync schemas``: export the published contracts and check a change for breakage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retailsync.schemas.compat import check_compatibility
from retailsync.schemas.export import export_schemas

__all__ = ["app"]

app = typer.Typer(
    name="schemas",
    help="Export event and model JSON Schemas plus AsyncAPI, and check compatibility.",
    no_args_is_help=True,
)


@app.command("export")
def export_command(
    directory: Annotated[Path, typer.Argument(help="Folder to write the schemas into.")],
) -> None:
    """Write one JSON Schema per event type and model, the envelope schema and asyncapi.json."""
    files = export_schemas(directory)
    typer.echo(f"wrote {len(files)} files to {directory}")


@app.command("check")
def check_command(
    old_dir: Annotated[Path, typer.Argument(help="Previously exported schemas (the baseline).")],
    against: Annotated[
        Path | None,
        typer.Option(help="Compare with this exported folder instead of the current code."),
    ] = None,
) -> None:
    """Exit 1 and list every breaking change from OLD_DIR to the current code (or --against)."""
    try:
        changes = check_compatibility(old_dir, against)
    except FileNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    target = str(against) if against is not None else "the current code"
    if not changes:
        typer.echo(f"compatible: no breaking changes from {old_dir} to {target}")
        return
    typer.echo(f"{len(changes)} breaking change(s) from {old_dir} to {target}:")
    for change in changes:
        typer.echo(f"  - {change}")
    raise typer.Exit(1)
