"""``retailsync clients``: issue, list and revoke API clients (every change is audited)."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from retailsync.api.clients import (
    api_key_pepper,
    create_api_client,
    list_api_clients,
    revoke_api_client,
)
from retailsync.api.errors import UnknownApiClient, UnknownScope
from retailsync.api.scopes import Scope
from retailsync.bootstrap import ConfigurationError, Hub, bootstrap
from retailsync.config import Settings
from retailsync.observability.tracecontext import TraceParent

app = typer.Typer(
    help="API clients: issue keys (shown once), list them, revoke them.",
    no_args_is_help=True,
)
err = Console(stderr=True)


@contextmanager
def _hub() -> Iterator[Hub]:
    try:
        hub = bootstrap(Settings(), configure_logs=False)
    except (ValidationError, ConfigurationError, FileNotFoundError) as exc:
        err.print(f"[red]Invalid configuration:[/red]\n{exc}")
        raise typer.Exit(2) from exc
    try:
        yield hub
    finally:
        hub.close()


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Who uses the key, e.g. 'zendesk-app'.")],
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            "-s",
            help=f"A scope to grant (repeat for more): {', '.join(Scope)}.",
        ),
    ],
) -> None:
    """Issue an API client; its key is printed once and cannot be shown again."""
    try:
        scopes = [Scope.parse(value) for value in scope]
    except UnknownScope as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    with _hub() as hub, hub.engine.begin() as connection:
        try:
            issued = create_api_client(
                connection,
                name=name,
                scopes=scopes,
                pepper=api_key_pepper(hub.settings.secret_key),
                actor=_actor(),
                correlation_id=TraceParent.generate().trace_id,
            )
        except ValueError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
    client = issued.client
    err.print(
        f"Created API client [bold]{client.name}[/bold] (id {client.id}) with scopes "
        f"{' '.join(client.scopes)}.\nStore the key now: it is shown this once and the hub "
        "keeps only a hash of it."
    )
    typer.echo(issued.key)


@app.command("list")
def list_clients() -> None:
    """Every API client, revoked ones included (never their keys)."""
    with _hub() as hub, hub.engine.connect() as connection:
        clients = list_api_clients(connection)
    table = Table("name", "scopes", "created", "created by", "status")
    table.add_column("id", no_wrap=True)
    for client in clients:
        status = f"revoked {client.revoked_at:%Y-%m-%d %H:%M}" if client.revoked_at else "active"
        table.add_row(
            client.name,
            " ".join(client.scopes),
            f"{client.created_at:%Y-%m-%d %H:%M}",
            client.created_by,
            status,
            client.id,
        )
    Console().print(table)


@app.command("revoke")
def revoke(
    client_id: Annotated[str, typer.Argument(metavar="ID", help="The client's id (see list).")],
    reason: Annotated[str | None, typer.Option(help="Why, for the audit log.")] = None,
) -> None:
    """Revoke an API client: its key is refused from now on."""
    with _hub() as hub, hub.engine.begin() as connection:
        try:
            client = revoke_api_client(
                connection,
                client_id,
                actor=_actor(),
                correlation_id=TraceParent.generate().trace_id,
                reason=reason,
            )
        except UnknownApiClient as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
    err.print(f"API client {client.name} (id {client.id}) is revoked since {client.revoked_at}.")
